package broker

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"
)

// startBroker runs a broker with every listener on 127.0.0.1:0.
func startBroker(t *testing.T, mutate func(*Options)) *Broker {
	t.Helper()
	o := DefaultOptions()
	o.MQTTAddr, o.MQTTWSAddr, o.OCPPAddr, o.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	o.OCPP.MaxQueue = 100
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if mutate != nil {
		mutate(&o)
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	})
	return b
}

// mqttClient is an MQTT 5 test client that queues what it receives.
type mqttClient struct {
	c    *paho.Client
	msgs chan *paho.Publish
	gone chan *paho.Disconnect
}

func dialMQTT(t *testing.T, addr net.Addr, id string) *mqttClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	m := &mqttClient{msgs: make(chan *paho.Publish, 1000), gone: make(chan *paho.Disconnect, 1)}
	m.c = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			m.msgs <- pr.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) { m.gone <- d },
		OnClientError:      func(error) {},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := m.c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
	if err != nil || ack.ReasonCode != 0 {
		t.Fatalf("mqtt connect %s: %v %v", id, ack, err)
	}
	t.Cleanup(func() { m.c.Disconnect(&paho.Disconnect{}) })
	return m
}

func (m *mqttClient) subscribe(t *testing.T, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := m.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 2}}}); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	// mochi sends SUBACK before the retained messages of a subscription, so
	// a message retained in between would arrive twice (live and retained).
	// A second SUBSCRIBE is a barrier: mochi handles one client's packets in
	// order, so when its SUBACK is back, the first one's retained messages
	// have been sent.
	if _, err := m.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "test/barrier", QoS: 0}}}); err != nil {
		t.Fatalf("subscribe barrier: %v", err)
	}
}

// publish sends a QoS 1 message and returns the PUBACK reason code.
func (m *mqttClient) publish(t *testing.T, topic, payload string, qos byte, retain bool) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := m.c.Publish(ctx, &paho.Publish{Topic: topic, Payload: []byte(payload), QoS: qos, Retain: retain})
	if err != nil && resp == nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	if resp == nil {
		return 0
	}
	return resp.ReasonCode
}

// next returns the next message, which must be on topic.
func (m *mqttClient) next(t *testing.T, topic string) map[string]any {
	t.Helper()
	select {
	case p := <-m.msgs:
		if p.Topic != topic {
			t.Fatalf("got message on %s (%s), want %s", p.Topic, p.Payload, topic)
		}
		var v map[string]any
		if err := json.Unmarshal(p.Payload, &v); err != nil {
			t.Fatalf("payload on %s: %s: %v", topic, p.Payload, err)
		}
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no message on %s within 5s", topic)
	}
	return nil
}

// chargePoint is a raw OCPP-J client.
type chargePoint struct {
	ws *websocket.Conn
}

func dialCP(t *testing.T, b *Broker, cid string) *chargePoint {
	t.Helper()
	ws, _, err := websocket.Dial(context.Background(), "ws://"+b.Addr(ListenerOCPP).String()+"/ocpp/"+cid,
		&websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}})
	if err != nil {
		t.Fatalf("dial %s: %v", cid, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &chargePoint{ws: ws}
}

func (cp *chargePoint) send(t *testing.T, frame string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cp.ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		t.Fatal(err)
	}
}

func (cp *chargePoint) recv(t *testing.T) []any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := cp.ws.Read(ctx)
	if err != nil {
		t.Fatalf("charge point read: %v", err)
	}
	var v []any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func jsonEq(t *testing.T, got any, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	g, _ := json.Marshal(got)
	wb, _ := json.Marshal(w)
	if string(g) != string(wb) {
		t.Fatalf("got %s\nwant %s", g, wb)
	}
}

// TestWalkthrough drives the EMQX walkthrough (README quickstart steps 3–6)
// with a real charge point socket and a real MQTT client.
func TestWalkthrough(t *testing.T) {
	b := startBroker(t, nil)
	sub := dialMQTT(t, b.Addr(ListenerMQTT), "csms")
	sub.subscribe(t, "ocpp/#")
	cp := dialCP(t, b, "CP001")
	if m := sub.next(t, "ocpp/presence/CP001"); m["state"] != "online" {
		t.Fatalf("presence %v", m)
	}

	// 3. BootNotification upstream.
	cp.send(t, `[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]`)
	jsonEq(t, sub.next(t, "ocpp/cp/CP001"), `{"MessageTypeId":2,"UniqueId":"b1","Action":"BootNotification","Payload":{"chargePointVendor":"V","chargePointModel":"M"}}`)

	// 4. Its answer from MQTT.
	sub.publish(t, "ocpp/cs/CP001", `{"MessageTypeId":3,"UniqueId":"b1","Payload":{"currentTime":"2026-11-25T18:00:00Z","interval":300,"status":"Accepted"},"Action":"BootNotification"}`, 1, false)
	jsonEq(t, cp.recv(t), `[3,"b1",{"currentTime":"2026-11-25T18:00:00Z","interval":300,"status":"Accepted"}]`)
	sub.next(t, "ocpp/cs/CP001") // the command itself is ordinary MQTT traffic too

	// 5. A command and its answer on the Reply topic, with Action added.
	sub.publish(t, "ocpp/cs/CP001", `{"MessageTypeId":2,"UniqueId":"c1","Action":"RemoteStartTransaction","Payload":{"idTag":"T1"}}`, 1, false)
	jsonEq(t, cp.recv(t), `[2,"c1","RemoteStartTransaction",{"idTag":"T1"}]`)
	sub.next(t, "ocpp/cs/CP001")
	cp.send(t, `[3,"c1",{"status":"Accepted"}]`)
	jsonEq(t, sub.next(t, "ocpp/cp/CP001/Reply"), `{"MessageTypeId":3,"UniqueId":"c1","Action":"RemoteStartTransaction","Payload":{"status":"Accepted"}}`)

	// 6. CALLERRORs both ways keep code, description and details.
	sub.publish(t, "ocpp/cs/CP001", `{"MessageTypeId":2,"UniqueId":"c2","Action":"Reset","Payload":{"type":"Soft"}}`, 1, false)
	cp.recv(t)
	sub.next(t, "ocpp/cs/CP001")
	cp.send(t, `[4,"c2","InternalError","busy",{"retry":true}]`)
	jsonEq(t, sub.next(t, "ocpp/cp/CP001/Reply"), `{"MessageTypeId":4,"UniqueId":"c2","Action":"Reset","ErrorCode":"InternalError","ErrorDescription":"busy","ErrorDetails":{"retry":true}}`)

	cp.send(t, `[2,"h1","Heartbeat",{}]`)
	sub.next(t, "ocpp/cp/CP001")
	sub.publish(t, "ocpp/cs/CP001", `{"MessageTypeId":4,"UniqueId":"h1","ErrorCode":"NotSupported","ErrorDescription":"no","ErrorDetails":{"why":"test"}}`, 1, false)
	jsonEq(t, cp.recv(t), `[4,"h1","NotSupported","no",{"why":"test"}]`)
	sub.next(t, "ocpp/cs/CP001")

	// The counter moves after mochi has handed the message to subscribers.
	waitFor(t, "publishes counted", func() bool { return b.Stats().Published == 5 })
	st := b.Stats()
	if st.OCPP.FramesIn["call"] != 2 || st.OCPP.FramesIn["callresult"] != 1 || st.OCPP.FramesIn["callerror"] != 1 ||
		st.OCPP.FramesOut["call"] != 2 || st.OCPP.FramesOut["callresult"] != 1 || st.OCPP.FramesOut["callerror"] != 1 {
		t.Fatalf("stats %+v", st.OCPP)
	}
	if st.Published != 5 { // four frames and the presence message
		t.Fatalf("published %d, want 5", st.Published)
	}
}

// TestGatewayErrors checks what bad commands get: one gateway error on the
// Reply topic, and for MQTT 5 QoS 1 the PUBACK reason code of docs/topics.md.
func TestGatewayErrors(t *testing.T) {
	b := startBroker(t, func(o *Options) { o.OCPP.MaxQueue = 1 })
	sub := dialMQTT(t, b.Addr(ListenerMQTT), "csms")
	sub.subscribe(t, "ocpp/cp/#")
	cmd := dialMQTT(t, b.Addr(ListenerMQTT), "commander")
	cp := dialCP(t, b, "CP1")
	waitFor(t, "charge point connected", func() bool { return b.Stats().OCPP.Connected == 1 })

	gwErr := func(id, reason, code string) {
		t.Helper()
		m := sub.next(t, "ocpp/cp/CP1/Reply")
		d, _ := m["ErrorDetails"].(map[string]any)
		if m["MessageTypeId"] != float64(4) || m["UniqueId"] != id || m["ErrorCode"] != code || d["origin"] != "gateway" || d["reason"] != reason {
			t.Fatalf("gateway error %v, want id %q reason %s code %s", m, id, reason, code)
		}
	}
	tests := []struct {
		name, payload string
		puback        byte
		id, reason    string
		code          string
	}{
		{"not json", `nope`, 0x99, "", "malformed", "FormationViolation"},
		{"no type", `{"UniqueId":"x1","Action":"Reset","Payload":{}}`, 0x99, "x1", "malformed", "FormationViolation"},
		{"payload not object", `{"MessageTypeId":2,"UniqueId":"x2","Action":"Reset","Payload":[]}`, 0x99, "x2", "malformed", "FormationViolation"},
		{"unknown answer", `{"MessageTypeId":3,"UniqueId":"x3","Payload":{}}`, 0x99, "x3", "unknown_call", "GenericError"},
		{"too large", `{"MessageTypeId":2,"UniqueId":"x4","Action":"DataTransfer","Payload":{"d":"` + strings.Repeat("x", 70<<10) + `"}}`, 0x95, "x4", "too_large", "GenericError"},
	}
	for _, tc := range tests {
		if rc := cmd.publish(t, "ocpp/cs/CP1", tc.payload, 1, false); rc != tc.puback {
			t.Fatalf("%s: PUBACK 0x%x, want 0x%x", tc.name, rc, tc.puback)
		}
		gwErr(tc.id, tc.reason, tc.code)
	}
	// Queue: one outstanding, one waiting, the third refused.
	for _, id := range []string{"q1", "q2"} {
		if rc := cmd.publish(t, "ocpp/cs/CP1", `{"MessageTypeId":2,"UniqueId":"`+id+`","Action":"Reset","Payload":{"type":"Soft"}}`, 1, false); rc != 0 {
			t.Fatalf("PUBACK 0x%x", rc)
		}
	}
	if rc := cmd.publish(t, "ocpp/cs/CP1", `{"MessageTypeId":2,"UniqueId":"q1","Action":"Reset","Payload":{"type":"Soft"}}`, 1, false); rc != 0x99 {
		t.Fatalf("duplicate: PUBACK 0x%x", rc)
	}
	gwErr("q1", "duplicate_id", "GenericError")
	if rc := cmd.publish(t, "ocpp/cs/CP1", `{"MessageTypeId":2,"UniqueId":"q3","Action":"Reset","Payload":{"type":"Soft"}}`, 1, false); rc != 0x97 {
		t.Fatalf("queue full: PUBACK 0x%x", rc)
	}
	gwErr("q3", "queue_full", "GenericError")
	// The charge point leaves: the outstanding and the queued one fail offline, in order.
	cp.recv(t)
	cp.ws.Close(websocket.StatusNormalClosure, "")
	gwErr("q1", "offline", "GenericError")
	gwErr("q2", "offline", "GenericError")
	// Offline charge point: the command is accepted (PUBACK 0) and fails offline.
	if rc := cmd.publish(t, "ocpp/cs/CP1", `{"MessageTypeId":2,"UniqueId":"o1","Action":"Reset","Payload":{"type":"Soft"}}`, 1, false); rc != 0 {
		t.Fatalf("offline: PUBACK 0x%x", rc)
	}
	gwErr("o1", "offline", "GenericError")

	st := b.Stats()
	want := map[string]uint64{"malformed": 3, "unknown_call": 1, "too_large": 1, "duplicate_id": 1, "queue_full": 1, "offline": 3}
	for k, v := range want {
		if st.GatewayErrors[k] != v {
			t.Fatalf("gateway errors %v, want %v", st.GatewayErrors, want)
		}
	}
}

// TestNoSpoofing checks that MQTT clients cannot publish as the gateway and
// that a real client with a charge point's id does not displace it.
func TestNoSpoofing(t *testing.T) {
	b := startBroker(t, nil)
	sub := dialMQTT(t, b.Addr(ListenerMQTT), "csms")
	sub.subscribe(t, "ocpp/#")
	cp := dialCP(t, b, "CP1")
	sub.next(t, "ocpp/presence/CP1")

	// A client named like the charge point connects normally…
	impostor := dialMQTT(t, b.Addr(ListenerMQTT), "CP1")
	// …but may not publish upstream.
	if rc := impostor.publish(t, "ocpp/cp/CP1", `{"MessageTypeId":2,"UniqueId":"f","Action":"Heartbeat","Payload":{}}`, 1, false); rc != 0x87 {
		t.Fatalf("spoofed upstream publish: PUBACK 0x%x, want 0x87", rc)
	}
	if rc := impostor.publish(t, "ocpp/presence/CP1", `{"state":"online"}`, 1, true); rc != 0x87 {
		t.Fatalf("forged presence: PUBACK 0x%x, want 0x87", rc)
	}
	// The charge point is still there and still publishes.
	cp.send(t, `[2,"h1","Heartbeat",{}]`)
	if m := sub.next(t, "ocpp/cp/CP1"); m["UniqueId"] != "h1" {
		t.Fatalf("got %v", m)
	}
	if b.Stats().Denied != 2 {
		t.Fatalf("denied %d", b.Stats().Denied)
	}
}

// TestRetainedCommandIsNotStored: a retained command is delivered once and
// never replayed to later subscribers. The late subscriber may still see
// the original publish live (mochi can fan it out after the PUBACK), but
// never as a retained message.
func TestRetainedCommandIsNotStored(t *testing.T) {
	b := startBroker(t, nil)
	cmd := dialMQTT(t, b.Addr(ListenerMQTT), "commander")
	cp := dialCP(t, b, "CP1")
	waitFor(t, "charge point connected", func() bool { return b.Stats().OCPP.Connected == 1 })
	cmd.publish(t, "ocpp/cs/CP1", `{"MessageTypeId":2,"UniqueId":"r1","Action":"Reset","Payload":{"type":"Soft"}}`, 1, true)
	if got := cp.recv(t); got[1] != "r1" {
		t.Fatalf("got %v", got)
	}
	late := dialMQTT(t, b.Addr(ListenerMQTT), "late")
	late.subscribe(t, "ocpp/cs/#")
	cmd.publish(t, "ocpp/cs/CP1", `{"MessageTypeId":2,"UniqueId":"marker","Action":"Reset","Payload":{"type":"Soft"}}`, 1, false)
	for {
		select {
		case p := <-late.msgs:
			var m map[string]any
			jsonUnmarshal(t, p.Payload, &m)
			if p.Retain {
				t.Fatalf("late subscriber got %v as a retained message", m)
			}
			if m["UniqueId"] == "marker" {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no marker")
		}
	}
}

func jsonUnmarshal(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
}

// TestTopicTemplates: a mountpoint, per-action CALL topics and templates
// with ${action}, ${id} and ${type}, escaped where a value could break a
// topic.
func TestTopicTemplates(t *testing.T) {
	b := startBroker(t, func(o *Options) {
		o.Mountpoint = "depot1/"
		o.TopicOverrides = map[string]string{"MeterValues": "meter/${cid}"}
		o.ReplyTopic = "cp/${cid}/reply/${action}/${id}"
		o.ErrorTopic = "cp/${cid}/error/${type}"
		o.DownstreamTopic = "cmd/${cid}"
	})
	sub := dialMQTT(t, b.Addr(ListenerMQTT), "csms")
	sub.subscribe(t, "depot1/+/#")
	cp := dialCP(t, b, "CP1")
	sub.next(t, "depot1/presence/CP1")

	cp.send(t, `[2,"m1","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2026-11-25T18:00:00Z","sampledValue":[{"value":"1"}]}]}]`)
	sub.next(t, "depot1/meter/CP1")
	cp.send(t, `[2,"h1","Heartbeat",{}]`)
	sub.next(t, "depot1/cp/CP1")

	sub.publish(t, "depot1/cmd/CP1", `{"MessageTypeId":2,"UniqueId":"a/b+c","Action":"Reset","Payload":{"type":"Soft"}}`, 1, false)
	sub.next(t, "depot1/cmd/CP1")
	cp.recv(t)
	cp.send(t, `[3,"a/b+c",{"status":"Accepted"}]`)
	if m := sub.next(t, "depot1/cp/CP1/reply/Reset/a%2Fb%2Bc"); m["UniqueId"] != "a/b+c" {
		t.Fatalf("got %v", m)
	}
	sub.publish(t, "depot1/cmd/CP1", `nope`, 1, false) // refused with 0x99: not fanned out
	sub.next(t, "depot1/cp/CP1/error/4")
}

// TestTemplateErrors: bad templates are startup errors naming the key.
func TestTemplateErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"unknown placeholder", func(o *Options) { o.UpstreamTopic = "cp/${foo}" }, "ocpp.upstream.topic"},
		{"overlap", func(o *Options) { o.DownstreamTopic = "cp/${cid}" }, "ocpp.dnstream.topic"},
		{"bad override", func(o *Options) { o.TopicOverrides = map[string]string{"Heartbeat": "hb/${nope}"} }, "ocpp.upstream.topic_override_mapping.Heartbeat"},
		{"bad mode", func(o *Options) { o.Checking = "strict" }, "ocpp.message_format_checking"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.mutate(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
