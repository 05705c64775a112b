package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"
)

// presence reads the next presence message and checks its state and reason.
func expectPresence(t *testing.T, sub *mqttClient, cid, state, reason string) {
	t.Helper()
	m := sub.next(t, "ocpp/presence/"+cid)
	if m["cid"] != cid || m["state"] != state || m["protocol"] != "ocpp1.6" || m["at"] == nil || m["remote"] == nil {
		t.Fatalf("presence %v, want %s", m, state)
	}
	if got, _ := m["reason"].(string); got != reason {
		t.Fatalf("presence reason %q, want %q", got, reason)
	}
}

func TestPresence(t *testing.T) {
	b := startBroker(t, nil)
	sub := dialMQTT(t, b.Addr(ListenerMQTT), "watcher")
	sub.subscribe(t, "ocpp/presence/#")

	cp := dialCP(t, b, "CP1")
	expectPresence(t, sub, "CP1", "online", "")
	// A takeover: the charge point stays online; the replaced socket's close
	// publishes nothing.
	cp2 := dialCP(t, b, "CP1")
	expectPresence(t, sub, "CP1", "online", "")
	cp.ws.Read(context.Background()) // answers the server's close
	cp2.ws.Close(websocket.StatusNormalClosure, "")
	expectPresence(t, sub, "CP1", "offline", "closed")

	// The retained message is the current state.
	late := dialMQTT(t, b.Addr(ListenerMQTT), "late")
	late.subscribe(t, "ocpp/presence/#")
	expectPresence(t, late, "CP1", "offline", "closed")

	dialCP(t, b, "CP2").ws.CloseRead(context.Background())
	expectPresence(t, sub, "CP2", "online", "")
	b.OCPP().Kick("CP2", 0)
	expectPresence(t, sub, "CP2", "offline", "kicked")
}

func TestPresenceOnShutdown(t *testing.T) {
	b := startBroker(t, nil)
	sub := dialMQTT(t, b.Addr(ListenerMQTT), "watcher")
	sub.subscribe(t, "ocpp/presence/#")
	cp := dialCP(t, b, "CP1")
	cp.ws.CloseRead(context.Background())
	expectPresence(t, sub, "CP1", "online", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.OCPP().Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	expectPresence(t, sub, "CP1", "offline", "shutdown")
}

func TestPresenceOnHeartbeatTimeout(t *testing.T) {
	b := startBroker(t, func(o *Options) {
		o.OCPP.IdleTimeout = -1
		o.OCPP.HeartbeatInterval = 30 * time.Millisecond
	})
	sub := dialMQTT(t, b.Addr(ListenerMQTT), "watcher")
	sub.subscribe(t, "ocpp/presence/#")
	dialCP(t, b, "CP1").ws.CloseRead(context.Background())
	expectPresence(t, sub, "CP1", "online", "")
	expectPresence(t, sub, "CP1", "offline", "heartbeat_timeout")
}

// TestResponseTopic: an MQTT 5 command with Response Topic and Correlation
// Data gets its final message there too.
// TestResponseTopic: an MQTT 5 command's final message, answer or gateway
// error, also goes to its Response Topic with its Correlation Data. The
// timeout case runs on a second broker with a short call_timeout, so no
// answer ever has to beat a timer.
func TestResponseTopic(t *testing.T) {
	b := startBroker(t, func(o *Options) { o.OCPP.CallTimeout = time.Hour })
	quick := startBroker(t, func(o *Options) { o.OCPP.CallTimeout = 50 * time.Millisecond })
	csms := dialMQTT(t, b.Addr(ListenerMQTT), "csms")
	csms.subscribe(t, "csms/replies/#")
	cp := dialCP(t, b, "CP1")
	waitFor(t, "connected", func() bool { return b.Stats().OCPP.Connected == 1 })

	ask := func(csms *mqttClient, id, responseTopic string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := csms.c.Publish(ctx, &paho.Publish{Topic: "ocpp/cs/CP1", QoS: 1,
			Payload:    []byte(`{"MessageTypeId":2,"UniqueId":"` + id + `","Action":"Reset","Payload":{"type":"Soft"}}`),
			Properties: &paho.PublishProperties{ResponseTopic: responseTopic, CorrelationData: []byte("corr-" + id)}})
		if err != nil {
			t.Fatal(err)
		}
	}
	expectReply := func(csms *mqttClient, id string, mtype float64) {
		t.Helper()
		select {
		case p := <-csms.msgs:
			if p.Topic != "csms/replies/1" || string(p.Properties.CorrelationData) != "corr-"+id {
				t.Fatalf("reply on %s with correlation %q", p.Topic, p.Properties.CorrelationData)
			}
			var m map[string]any
			jsonUnmarshal(t, p.Payload, &m)
			if m["UniqueId"] != id || m["MessageTypeId"] != mtype {
				t.Fatalf("reply %v", m)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no reply on the response topic")
		}
	}
	ask(csms, "r1", "csms/replies/1")
	cp.recv(t)
	cp.send(t, `[3,"r1",{"status":"Accepted"}]`)
	expectReply(csms, "r1", 3)
	// The gateway error of a timed-out command goes there too.
	qcsms := dialMQTT(t, quick.Addr(ListenerMQTT), "csms")
	qcsms.subscribe(t, "csms/replies/#")
	qcp := dialCP(t, quick, "CP1")
	waitFor(t, "connected", func() bool { return quick.Stats().OCPP.Connected == 1 })
	ask(qcsms, "r2", "csms/replies/1")
	qcp.recv(t)
	expectReply(qcsms, "r2", 4)
	// A Response Topic under the mountpoint is ignored and counted.
	ask(csms, "r3", "ocpp/cp/CP1/Reply")
	cp.recv(t)
	waitFor(t, "ignored response topic counted", func() bool { return b.Stats().ResponseTopicsIgnored == 1 })
}

// TestManyChargePointsRace runs about 200 charge points that connect, get
// commands, answer some, let others time out, and reconnect, all at once,
// under the race detector. Every command must end in exactly one final
// message.
func TestManyChargePointsRace(t *testing.T) {
	const cps, rounds = 200, 3
	b := startBroker(t, func(o *Options) {
		o.OCPP.CallTimeout = 100 * time.Millisecond
		o.OCPP.OfflineTTL = 2 * time.Second
		// The test's one subscriber must not fall behind and lose finals
		// on a loaded machine: what is checked is the gateway, not mochi's
		// queue bound (TestDroppedMessagesAreCountedAndLogged).
		o.MQTT.MaxQueuedMessages = 65535
	})
	sub := dialMQTT(t, b.Addr(ListenerMQTT), "csms")
	sub.subscribe(t, "ocpp/cp/+/Reply")
	cmd := dialMQTT(t, b.Addr(ListenerMQTT), "commander")

	// Every command ends in one final message: an answer or a gateway
	// error. They are collected while the charge points run, so the
	// subscriber never falls behind its queue.
	type result struct {
		finals int
		err    error
	}
	collected := make(chan result, 1)
	stop := make(chan struct{})
	go func() {
		finals := map[string]int{}
		for len(finals) < cps*rounds*2 {
			select {
			case p := <-sub.msgs:
				var m map[string]any
				if err := json.Unmarshal(p.Payload, &m); err != nil {
					collected <- result{len(finals), err}
					return
				}
				if m["Late"] == true {
					continue
				}
				id, _ := m["UniqueId"].(string)
				if finals[id]++; finals[id] > 1 {
					collected <- result{len(finals), fmt.Errorf("command %s ended twice: %v", id, m)}
					return
				}
			case <-stop:
				collected <- result{len(finals), nil}
				return
			}
		}
		collected <- result{len(finals), nil}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, cps)
	for i := range cps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cid := fmt.Sprintf("CP%03d", i)
			for r := range rounds {
				ws, _, err := websocket.Dial(context.Background(), "ws://"+b.Addr(ListenerOCPP).String()+"/ocpp/"+cid,
					&websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}})
				if err != nil {
					errs <- err
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				// Two commands per round: the first is answered, the second times out.
				for k := range 2 {
					id := fmt.Sprintf("%s-%d-%d", cid, r, k)
					payload := `{"MessageTypeId":2,"UniqueId":"` + id + `","Action":"Reset","Payload":{"type":"Soft"}}`
					if _, err := cmd.c.Publish(ctx, &paho.Publish{Topic: "ocpp/cs/" + cid, QoS: 1, Payload: []byte(payload)}); err != nil {
						errs <- err
						cancel()
						return
					}
				}
				_, data, err := ws.Read(ctx)
				if err != nil {
					errs <- fmt.Errorf("%s read: %w", cid, err)
					cancel()
					return
				}
				var frame []any
				if err := json.Unmarshal(data, &frame); err != nil || len(frame) < 2 {
					errs <- fmt.Errorf("%s frame %s: %v", cid, data, err)
					cancel()
					return
				}
				id, _ := frame[1].(string)
				ws.Write(ctx, websocket.MessageText, []byte(`[3,"`+id+`",{"status":"Accepted"}]`))
				ws.Read(ctx) // the second command; left unanswered
				cancel()
				ws.Close(websocket.StatusNormalClosure, "")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-collected:
	case <-time.After(60 * time.Second):
		close(stop)
		r = <-collected
	}
	if r.err != nil || r.finals != cps*rounds*2 {
		t.Fatalf("%d of %d commands ended: %v (stats %+v)", r.finals, cps*rounds*2, r.err, b.Stats())
	}
}

// TestRetainedPresenceNeverAgesOut: mochi, by default, deletes retained
// messages older than a day regardless of their expiry, which would drop
// the presence of a charge point connected for longer. The broker turns
// that off (time cannot be faked here, so the setting is what is checked).
func TestRetainedPresenceNeverAgesOut(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	if got := b.MQTT().Options.Capabilities.MaximumMessageExpiryInterval; got < 10*365*24*3600 {
		t.Fatalf("mochi forces retained messages out after %d s", got)
	}
}
