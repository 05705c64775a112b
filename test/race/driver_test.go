package race

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// driver is the load the race test puts on a running chargemq: charge points
// over OCPP-J WebSockets and MQTT clients over TCP and WebSocket, all on
// loopback. Every loop is bounded; every blocking call is bounded by runCtx,
// which the test cancels once the process has exited, so wg.Wait returns.
// Errors are counted, never reported: during the churn and the shutdown they
// are expected.
type driver struct {
	ocppURL    string // ws://HOST:PORT/ocpp/
	mqttAddr   string
	mqttWSAddr string

	runCtx context.Context
	stop   chan struct{} // closed after SIGTERM: start nothing new
	wg     sync.WaitGroup

	mu      sync.Mutex
	clients []*mqttClient

	// counters for the summary
	dials, connects, dialErrs   atomic.Int64
	framesSent, callsIn         atomic.Int64
	callsAnswered, callResults  atomic.Int64
	published, publishErrs      atomic.Int64
	mqttIn, mqttReplies, mqttGW atomic.Int64
	takeovers, floods           atomic.Int64
	mqttSessions                atomic.Int64
}

type mqttClient struct {
	name string
	c    *paho.Client
	conn net.Conn
}

func newDriver(ctx context.Context, addrs map[string]string) *driver {
	return &driver{
		ocppURL:    "ws://" + addrs["ocpp"] + "/ocpp/",
		mqttAddr:   addrs["mqtt"],
		mqttWSAddr: addrs["mqtt-ws"],
		runCtx:     ctx,
		stop:       make(chan struct{}),
	}
}

// spawn runs f in a goroutine the test waits for.
func (d *driver) spawn(f func()) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		f()
	}()
}

func (d *driver) stopped() bool {
	select {
	case <-d.stop:
		return true
	case <-d.runCtx.Done():
		return true
	default:
		return false
	}
}

// pause paces a bounded loop; it reports false when the driver is stopping.
func (d *driver) pause(dur time.Duration) bool {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-d.stop:
		return false
	case <-d.runCtx.Done():
		return false
	}
}

// --- charge points ---

func (d *driver) dial(cid string) (*websocket.Conn, error) {
	d.dials.Add(1)
	c, _, err := websocket.Dial(d.runCtx, d.ocppURL+cid, &websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}})
	if err != nil {
		d.dialErrs.Add(1)
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	d.connects.Add(1)
	return c, nil
}

// read reads c until it fails (the server closed it, or runCtx ended),
// answering each CALL with a CALLRESULT {"status":"Accepted"} when answer is
// set. done is closed when it returns.
func (d *driver) read(c *websocket.Conn, answer bool) (done chan struct{}) {
	done = make(chan struct{})
	d.spawn(func() {
		defer close(done)
		for {
			typ, msg, err := c.Read(d.runCtx)
			if err != nil {
				return
			}
			if typ != websocket.MessageText {
				continue
			}
			var f []json.RawMessage
			if json.Unmarshal(msg, &f) != nil || len(f) < 3 {
				continue
			}
			switch string(f[0]) {
			case "2":
				d.callsIn.Add(1)
				if answer {
					if d.send(c, fmt.Sprintf(`[3,%s,{"status":"Accepted"}]`, f[1])) == nil {
						d.callsAnswered.Add(1)
					}
				}
			case "3":
				d.callResults.Add(1)
			}
		}
	})
	return done
}

func (d *driver) send(c *websocket.Conn, frame string) error {
	err := c.Write(d.runCtx, websocket.MessageText, []byte(frame))
	if err == nil {
		d.framesSent.Add(1)
	}
	return err
}

// end waits until the server closes c (or runCtx ends), then frees it.
func (d *driver) end(c *websocket.Conn, done chan struct{}) {
	select {
	case <-done:
	case <-d.runCtx.Done():
	}
	c.CloseNow()
	<-done
}

func boot(n int) string {
	return fmt.Sprintf(`[2,"b%d","BootNotification",{"chargePointVendor":"Race","chargePointModel":"Churn"}]`, n)
}

func heartbeat(n int) string { return fmt.Sprintf(`[2,"h%d","Heartbeat",{}]`, n) }

// chargePoint connects as cid, boots, sends beats Heartbeats and leaves,
// abruptly (CloseNow) or with a close handshake, then reconnects; up to
// rounds times. It answers commands when answer is set. When the driver
// stops it keeps its connection for the shutdown to close.
func (d *driver) chargePoint(cid string, answer, abrupt bool, beats, rounds int) {
	n := 0
	for round := 0; round < rounds && !d.stopped(); round++ {
		c, err := d.dial(cid)
		if err != nil {
			if !d.pause(50 * time.Millisecond) {
				return
			}
			continue
		}
		done := d.read(c, answer)
		n++
		_ = d.send(c, boot(n))
		for i := 0; i < beats; i++ {
			if !d.pause(40 * time.Millisecond) {
				break
			}
			n++
			if d.send(c, heartbeat(n)) != nil {
				break
			}
		}
		if d.stopped() {
			d.end(c, done)
			return
		}
		if abrupt {
			c.CloseNow()
		} else {
			_ = c.Close(websocket.StatusNormalClosure, "bye")
		}
		<-done
	}
}

// takeover keeps replacing cid's connection with a new one while the old one
// is still open, and every third round dials two at the same moment.
func (d *driver) takeover(cid string, rounds int) {
	type live struct {
		c    *websocket.Conn
		done chan struct{}
	}
	var conns []live
	var mu sync.Mutex
	connect := func(n int) {
		c, err := d.dial(cid)
		if err != nil {
			return
		}
		done := d.read(c, true)
		_ = d.send(c, boot(n))
		d.takeovers.Add(1)
		mu.Lock()
		conns = append(conns, live{c, done})
		mu.Unlock()
	}
	for round := 0; round < rounds && !d.stopped(); round++ {
		if round%3 == 2 {
			var two sync.WaitGroup
			for k := 0; k < 2; k++ {
				two.Add(1)
				d.spawn(func() {
					defer two.Done()
					connect(round*2 + k)
				})
			}
			two.Wait()
		} else {
			connect(round * 2)
		}
		// Free the connections the server has replaced.
		mu.Lock()
		kept := conns[:0]
		for _, l := range conns {
			select {
			case <-l.done:
				l.c.CloseNow()
			default:
				kept = append(kept, l)
			}
		}
		conns = kept
		mu.Unlock()
		if !d.pause(100 * time.Millisecond) {
			break
		}
	}
	for _, l := range conns {
		d.end(l.c, l.done)
	}
}

// flood sends one charge point's worth of garbage: malformed text frames,
// then a binary frame (closed 1003) or an oversized one (closed 1009), and
// reconnects.
func (d *driver) flood(cid string, rounds int) {
	bad := []string{
		"nope", "[", "[]", "[2]", `[2,"a"]`, `[9,"x","y",{}]`, `{"a":1}`, `null`,
		`[2,"m1","Heartbeat",{"x":1}]`, `[2,"m2","NoSuchAction",{}]`, `[2,"m3","Reset",{"type":"Soft"}]`,
		`[3,"zz",{}]`, `[4,"zz","InternalError","x",{}]`, string([]byte{0xff, 0xfe, '[', '2'}),
		`[2,"` + strings.Repeat("u", 40) + `","Heartbeat",{}]`, `[2,"b","BootNotification",{}]`,
	}
	big := strings.Repeat("x", 70<<10)
	for round := 0; round < rounds && !d.stopped(); round++ {
		c, err := d.dial(cid)
		if err != nil {
			if !d.pause(50 * time.Millisecond) {
				return
			}
			continue
		}
		done := d.read(c, false)
		for i := 0; i < 150; i++ {
			if d.send(c, bad[i%len(bad)]) != nil {
				break
			}
			d.floods.Add(1)
		}
		switch round % 3 {
		case 0:
			_ = c.Write(d.runCtx, websocket.MessageBinary, []byte{2, 0, 1})
		case 1:
			_ = c.Write(d.runCtx, websocket.MessageText, []byte(`[2,"big","DataTransfer",{"vendorId":"`+big+`"}]`))
		case 2:
			_ = c.Write(d.runCtx, websocket.MessageBinary, []byte(big))
		}
		d.floods.Add(1)
		d.end(c, done)
		if !d.pause(20 * time.Millisecond) {
			return
		}
	}
}

// --- MQTT ---

// mqtt connects an MQTT 5 client over TCP, or over WebSocket at /mqtt.
func (d *driver) mqtt(name string, ws bool, onPublish func(paho.PublishReceived) (bool, error)) (*paho.Client, error) {
	var conn net.Conn
	if ws {
		c, _, err := websocket.Dial(d.runCtx, "ws://"+d.mqttWSAddr+"/mqtt", &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
		if err != nil {
			return nil, err
		}
		conn = packets.NewThreadSafeConn(websocket.NetConn(d.runCtx, c, websocket.MessageBinary))
	} else {
		var dl net.Dialer
		c, err := dl.DialContext(d.runCtx, "tcp", d.mqttAddr)
		if err != nil {
			return nil, err
		}
		conn = c
	}
	cfg := paho.ClientConfig{
		Conn:               conn,
		OnClientError:      func(error) {},
		OnServerDisconnect: func(*paho.Disconnect) {},
	}
	if onPublish != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){onPublish}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(d.runCtx, 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: name, CleanStart: true, KeepAlive: 30}); err != nil {
		conn.Close()
		return nil, err
	}
	d.mu.Lock()
	d.clients = append(d.clients, &mqttClient{name, c, conn})
	d.mu.Unlock()
	return c, nil
}

// closeMQTT closes every MQTT client's connection and waits (bounded) for
// paho to notice.
func (d *driver) closeMQTT() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range d.clients {
		m.conn.Close()
		select {
		case <-m.c.Done():
		case <-time.After(5 * time.Second):
		}
	}
}

type boot2answer struct{ cid, uid, action string }

// subscriber watches ocpp/# and resp/#, and answers the charge points'
// BootNotification and Heartbeat CALLs from MQTT (they go out ahead of the
// command queue).
func (d *driver) subscriber() error {
	calls := make(chan boot2answer, 256)
	c, err := d.mqtt("race-sub", false, func(pr paho.PublishReceived) (bool, error) {
		d.mqttIn.Add(1)
		t := pr.Packet.Topic
		var m struct {
			MessageTypeId int
			UniqueId      string
			Action        string
			ErrorDetails  struct{ Origin string }
		}
		if json.Unmarshal(pr.Packet.Payload, &m) != nil {
			return true, nil
		}
		switch {
		case strings.HasSuffix(t, "/Reply"):
			d.mqttReplies.Add(1)
			if m.ErrorDetails.Origin == "gateway" {
				d.mqttGW.Add(1)
			}
		case strings.HasPrefix(t, "ocpp/cp/") && m.MessageTypeId == 2 && (m.Action == "BootNotification" || m.Action == "Heartbeat"):
			select {
			case calls <- boot2answer{strings.TrimPrefix(t, "ocpp/cp/"), m.UniqueId, m.Action}:
			default:
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(d.runCtx, 10*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "ocpp/#", QoS: 1}, {Topic: "resp/#", QoS: 0},
	}}); err != nil {
		return err
	}
	d.spawn(func() {
		for {
			var a boot2answer
			select {
			case a = <-calls:
			case <-d.stop:
				return
			case <-d.runCtx.Done():
				return
			}
			now := time.Now().UTC().Format(time.RFC3339)
			p := fmt.Sprintf(`{"currentTime":%q}`, now)
			if a.action == "BootNotification" {
				p = fmt.Sprintf(`{"currentTime":%q,"interval":300,"status":"Accepted"}`, now)
			}
			uid, _ := json.Marshal(a.uid)
			msg := fmt.Sprintf(`{"MessageTypeId":3,"UniqueId":%s,"Action":%q,"Payload":%s}`, uid, a.action, p)
			if _, err := c.Publish(d.runCtx, &paho.Publish{Topic: "ocpp/cs/" + a.cid, QoS: 0, Payload: []byte(msg)}); err != nil {
				d.publishErrs.Add(1)
			} else {
				d.published.Add(1)
			}
		}
	})
	return nil
}

// commander publishes commands for the cids in turn at qos: valid Resets and
// other actions, duplicates of a UniqueId, malformed and invalid payloads,
// answers to calls that do not exist, some with an MQTT 5 response topic.
func (d *driver) commander(name string, ws bool, qos byte, cids []string, max int) {
	c, err := d.mqtt(name, ws, nil)
	if err != nil {
		d.publishErrs.Add(1)
		return
	}
	pub := func(cid string, payload []byte, props *paho.PublishProperties) {
		ctx, cancel := context.WithTimeout(d.runCtx, 5*time.Second)
		defer cancel()
		_, err := c.Publish(ctx, &paho.Publish{Topic: "ocpp/cs/" + cid, QoS: qos, Payload: payload, Properties: props})
		if err != nil {
			d.publishErrs.Add(1)
		} else {
			d.published.Add(1)
		}
	}
	for i := 0; i < max && !d.stopped(); i++ {
		cid := cids[i%len(cids)]
		uid := fmt.Sprintf("%s-%d", name, i)
		cmd := func(action, payload string) []byte {
			return []byte(fmt.Sprintf(`{"MessageTypeId":2,"UniqueId":%q,"Action":%q,"Payload":%s}`, uid, action, payload))
		}
		var props *paho.PublishProperties
		if qos == 1 && i%4 == 0 {
			props = &paho.PublishProperties{ResponseTopic: "resp/" + name, CorrelationData: []byte(uid)}
		}
		switch i % 12 {
		case 0, 1, 2, 3:
			pub(cid, cmd("Reset", `{"type":"Soft"}`), props)
		case 4:
			pub(cid, cmd("TriggerMessage", `{"requestedMessage":"Heartbeat"}`), props)
		case 5:
			pub(cid, cmd("ClearCache", `{}`), props)
		case 6: // the same UniqueId twice
			pub(cid, cmd("Reset", `{"type":"Hard"}`), props)
			pub(cid, cmd("Reset", `{"type":"Hard"}`), props)
		case 7:
			pub(cid, []byte("nope"), props)
		case 8:
			pub(cid, []byte{0, 0xff, '{'}, props)
		case 9:
			pub(cid, cmd("Reset", `{"type":"Sideways"}`), props)
		case 10:
			pub(cid, []byte(fmt.Sprintf(`{"MessageTypeId":3,"UniqueId":"nocall-%d","Action":"Heartbeat","Payload":{}}`, i)), props)
		case 11:
			pub(cid, cmd("ChangeConfiguration", `{"key":"HeartbeatInterval","value":"300"}`), props)
		}
		if !d.pause(6 * time.Millisecond) {
			return
		}
	}
}

// --- the end ---

// idleTCP opens a TCP connection that never sends anything.
func (d *driver) idleTCP(addr string) net.Conn {
	var dl net.Dialer
	c, err := dl.DialContext(d.runCtx, "tcp", addr)
	if err != nil {
		return nil
	}
	return c
}

// halfUpgrade opens a connection to the MQTT WebSocket listener and sends an
// upgrade request without its final empty line.
func (d *driver) halfUpgrade() net.Conn {
	c := d.idleTCP(d.mqttWSAddr)
	if c == nil {
		return nil
	}
	fmt.Fprintf(c, "GET /mqtt HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n", d.mqttWSAddr)
	return c
}

// storm starts n handshakes that all begin when gate is closed; every third
// one shares its cid with others (takeovers in flight). Each one that
// succeeds boots and stays until the server closes it. progress gets one
// value per handshake that has finished (either way).
func (d *driver) storm(n int, gate chan struct{}, progress chan<- struct{}, ok, failed *atomic.Int64) {
	for i := 0; i < n; i++ {
		d.spawn(func() {
			select {
			case <-gate:
			case <-d.runCtx.Done():
				return
			}
			cid := fmt.Sprintf("STORM-%03d", i)
			if i%3 == 0 {
				cid = fmt.Sprintf("STORM-SHARED-%d", i%5)
			}
			c, err := d.dial(cid)
			if err != nil {
				failed.Add(1)
				progress <- struct{}{}
				return
			}
			ok.Add(1)
			progress <- struct{}{}
			done := d.read(c, true)
			_ = d.send(c, boot(i))
			d.end(c, done)
		})
	}
}

// mqttChurn connects short-lived raw MQTT clients over TCP, alternately
// 3.1.1 and 5, each publishing one QoS 1 command and then leaving with a
// DISCONNECT or by dropping the connection. It ignores stop: it goes on
// through the shutdown until the listener has refused it 20 times in a row
// (or max clients), so connections arrive while the broker closes.
func (d *driver) mqttChurn(name string, cids []string, max int) {
	refused := 0
	for i := 0; i < max && refused < 20 && d.runCtx.Err() == nil; i++ {
		if d.rawClient(fmt.Sprintf("%s-%d", name, i), byte(4+i%2), cids[i%len(cids)], i) {
			refused = 0
		} else {
			refused++
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-t.C:
		case <-d.runCtx.Done():
		}
		t.Stop()
	}
}

// rawClient is one MQTT session of protocol version 4 (3.1.1) or 5; it
// reports whether the broker accepted the connection.
func (d *driver) rawClient(id string, version byte, cid string, i int) bool {
	var dl net.Dialer
	c, err := dl.DialContext(d.runCtx, "tcp", d.mqttAddr)
	if err != nil {
		return false
	}
	defer c.Close()
	stopWatch := context.AfterFunc(d.runCtx, func() { c.Close() })
	defer stopWatch()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))

	var props []byte
	if version == 5 {
		props = []byte{0}
	}
	connect := append([]byte{0, 4, 'M', 'Q', 'T', 'T', version, 2, 0, 30}, props...)
	connect = append(connect, mqttString(id)...)
	if _, err := c.Write(mqttPacket(0x10, connect)); err != nil {
		return false
	}
	typ, body, err := readPacket(c)
	if err != nil || typ>>4 != 2 || len(body) < 2 || body[1] != 0 {
		return false
	}
	d.mqttSessions.Add(1)
	uid := fmt.Sprintf("%s-%d", id, i)
	payload := fmt.Sprintf(`{"MessageTypeId":2,"UniqueId":%q,"Action":"Reset","Payload":{"type":"Soft"}}`, uid)
	if i%5 == 4 {
		payload = "not json"
	}
	pub := append(mqttString("ocpp/cs/"+cid), 0, 1)
	pub = append(pub, props...)
	pub = append(pub, payload...)
	if _, err := c.Write(mqttPacket(0x32, pub)); err != nil {
		d.publishErrs.Add(1)
		return true
	}
	// Wait for the PUBACK (other packets may come first).
	for {
		typ, _, err := readPacket(c)
		if err != nil {
			d.publishErrs.Add(1)
			return true
		}
		if typ>>4 == 4 {
			d.published.Add(1)
			break
		}
	}
	if i%3 != 0 {
		_, _ = c.Write(mqttPacket(0xe0, props))
	}
	return true
}

func mqttString(s string) []byte {
	return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...)
}

func mqttPacket(header byte, body []byte) []byte {
	p := []byte{header}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		p = append(p, b)
		if n == 0 {
			break
		}
	}
	return append(p, body...)
}

func readPacket(c net.Conn) (byte, []byte, error) {
	var h [1]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for k := 0; k < 4; k++ {
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return 0, nil, err
		}
		n += int(b[0]&0x7f) * mul
		mul *= 128
		if b[0]&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	_, err := io.ReadFull(c, body)
	return h[0], body, err
}
