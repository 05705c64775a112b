package broker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"
)

// rawConnect opens a TCP connection and sends an MQTT 3.1.1 CONNECT; it
// returns the connection and the CONNACK return code.
func rawConnect(t *testing.T, addr net.Addr, id string) (net.Conn, byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, byte(len(id))}, id...)
	if _, err := c.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		t.Fatalf("CONNACK: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	return c, ack[3]
}

// waitClosed waits until the server closes c (a read returns an error
// other than a timeout of ours).
func waitClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: connection still open", what)
	}
}

// connectV5 connects an MQTT 5 client with cfg's handlers and returns the
// CONNACK.
func connectV5(t *testing.T, addr net.Addr, cp *paho.Connect, cfg paho.ClientConfig) (*paho.Client, *paho.Connack) {
	t.Helper()
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Conn = conn
	if cfg.OnClientError == nil {
		cfg.OnClientError = func(error) {}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if err != nil && ack == nil {
		t.Fatalf("connect %s: %v", cp.ClientID, err)
	}
	t.Cleanup(func() { conn.Close() })
	return c, ack
}

// TestMQTTPacketTooLarge: a packet over mqtt.max_packet_size closes the
// connection, with DISCONNECT 0x95 for MQTT 5, on both MQTT listeners.
func TestMQTTPacketTooLarge(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.MQTT.MaxPacketSize = 64 << 10 })
	big := bytes.Repeat([]byte("x"), 128<<10)

	t.Run("v5", func(t *testing.T) {
		gone := make(chan *paho.Disconnect, 1)
		c, _ := connectV5(t, b.Addr(ListenerMQTT), &paho.Connect{ClientID: "big5", CleanStart: true, KeepAlive: 30},
			paho.ClientConfig{OnServerDisconnect: func(d *paho.Disconnect) { gone <- d }})
		// Below the bound is fine.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.Publish(ctx, &paho.Publish{Topic: "t/ok", QoS: 1, Payload: big[:32<<10]}); err != nil {
			t.Fatalf("publish under the bound: %v", err)
		}
		go c.Publish(ctx, &paho.Publish{Topic: "t/big", QoS: 0, Payload: big})
		select {
		case d := <-gone:
			if d.ReasonCode != 0x95 {
				t.Fatalf("DISCONNECT reason %#x, want 0x95", d.ReasonCode)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no DISCONNECT for a packet over the bound")
		}
	})
	t.Run("v3", func(t *testing.T) {
		c, code := rawConnect(t, b.Addr(ListenerMQTT), "big3")
		if code != 0 {
			t.Fatalf("CONNACK %d", code)
		}
		// A PUBLISH header announcing 128 KiB: refused before the body.
		n := len(big) + 5
		hdr := []byte{0x30, byte(n&0x7f | 0x80), byte(n>>7&0x7f | 0x80), byte(n >> 14)}
		c.Write(hdr)
		waitClosed(t, c, "v3 client after a too-large header")
	})
	t.Run("websocket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws://"+b.Addr(ListenerMQTTWS).String()+"/mqtt", &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
		if err != nil {
			t.Fatal(err)
		}
		nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
		defer nc.Close()
		gone := make(chan *paho.Disconnect, 1)
		c := paho.NewClient(paho.ClientConfig{Conn: nc, OnClientError: func(error) {},
			OnServerDisconnect: func(d *paho.Disconnect) { gone <- d }})
		if _, err := c.Connect(ctx, &paho.Connect{ClientID: "bigws", CleanStart: true, KeepAlive: 30}); err != nil {
			t.Fatal(err)
		}
		go c.Publish(ctx, &paho.Publish{Topic: "t/big", QoS: 0, Payload: big[:100<<10]})
		select {
		case d := <-gone:
			if d.ReasonCode != 0x95 {
				t.Fatalf("DISCONNECT reason %#x, want 0x95", d.ReasonCode)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no DISCONNECT over WebSocket")
		}
	})
	waitFor(t, "three too-large packets counted", func() bool { return b.Stats().MQTTPacketTooLarge == 3 })
}

// TestMQTTConnectTimeout: a connection that sends no CONNECT, and a
// WebSocket upgrade request that is never finished, are closed.
func TestMQTTConnectTimeout(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.MQTT.ConnectTimeout = 500 * time.Millisecond })
	tcp, err := net.Dial("tcp", b.Addr(ListenerMQTT).String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	half, err := net.Dial("tcp", b.Addr(ListenerMQTTWS).String())
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	half.Write([]byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n")) // never finished
	waitClosed(t, tcp, "silent MQTT connection")
	waitClosed(t, half, "half-sent upgrade")
	waitFor(t, "connect timeout counted", func() bool { return b.Stats().Refused["mqtt_connect_timeout"] == 1 })
}

// TestMQTTMaxClients: beyond mqtt.max_clients, CONNACK server busy (v5)
// or server unavailable (3.1.1), counted.
func TestMQTTMaxClients(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.MQTT.MaxClients = 1 })
	dialMQTT(t, b.Addr(ListenerMQTT), "first")
	if _, code := rawConnect(t, b.Addr(ListenerMQTT), "second3"); code != 3 {
		t.Fatalf("3.1.1 CONNACK %d, want 3", code)
	}
	if _, ack := connectV5(t, b.Addr(ListenerMQTT), &paho.Connect{ClientID: "second5", CleanStart: true}, paho.ClientConfig{}); ack.ReasonCode != 0x89 {
		t.Fatalf("v5 CONNACK %#x, want 0x89", ack.ReasonCode)
	}
	waitFor(t, "refusals counted", func() bool { return b.Stats().Refused["mqtt_max_clients"] == 2 })
}

// TestMQTTSessionBounds: a session expiry asked for beyond
// mqtt.max_session_expiry is cut to it, and a disconnected session keeps
// at most mqtt.max_queued_messages.
func TestMQTTSessionBounds(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) {
		o.MQTT.MaxSessionExpiry = time.Hour
		o.MQTT.MaxQueuedMessages = 5
	})
	expiry := uint32(math.MaxUint32)
	_, ack := connectV5(t, b.Addr(ListenerMQTT), &paho.Connect{ClientID: "forever", CleanStart: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}, paho.ClientConfig{})
	if ack.Properties == nil || ack.Properties.SessionExpiryInterval == nil || *ack.Properties.SessionExpiryInterval != 3600 {
		t.Fatalf("CONNACK session expiry %+v, want 3600", ack.Properties)
	}

	// A persistent session subscribes, goes away, and 20 messages are
	// published for it; it comes back to at most 5.
	keep := uint32(600)
	props := &paho.ConnectProperties{SessionExpiryInterval: &keep}
	sub, _ := connectV5(t, b.Addr(ListenerMQTT), &paho.Connect{ClientID: "sleeper", CleanStart: true, Properties: props}, paho.ClientConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "q/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	sub.Disconnect(&paho.Disconnect{})
	waitFor(t, "session offline", func() bool {
		cl, ok := b.MQTT().Clients.Get("sleeper")
		return ok && cl.Closed()
	})
	pub := dialMQTT(t, b.Addr(ListenerMQTT), "publisher")
	for i := range 20 {
		pub.publish(t, "q/x", fmt.Sprintf("m%d", i), 1, false)
	}
	// mochi fans a QoS 1 message out after its PUBACK, on the publisher's
	// goroutine; the PUBACK of the next packet means m19's fan-out is done.
	pub.publish(t, "barrier", "", 1, false)
	got := make(chan string, 100)
	connectV5(t, b.Addr(ListenerMQTT), &paho.Connect{ClientID: "sleeper", CleanStart: false, Properties: props},
		paho.ClientConfig{OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			got <- string(pr.Packet.Payload)
			return true, nil
		}}})
	// The marker goes out once the resent messages are acknowledged (a
	// full inflight quota would drop it).
	waitFor(t, "resent messages acknowledged", func() bool {
		cl, ok := b.MQTT().Clients.Get("sleeper")
		return ok && !cl.Closed() && cl.State.Inflight.Len() == 0
	})
	pub.publish(t, "q/x", "marker", 1, false)
	kept := map[string]bool{} // QoS 1 may deliver one twice; count distinct messages
	for {
		select {
		case m := <-got:
			if m == "marker" {
				if n := len(kept); n == 0 || n > 5 {
					t.Fatalf("session kept %d messages (%v), want 1 to 5", n, kept)
				}
				return
			}
			kept[m] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("no marker after %d messages", len(kept))
		}
	}
}

// TestFDReserve: when the listeners' share of descriptors is used up, a
// new connection is closed at once, counted, and the admin API still
// answers.
func TestFDReserve(t *testing.T) {
	t.Parallel()
	limit := openFileLimit()
	if limit == 0 {
		t.Skip("no descriptor limit on this platform")
	}
	b := startBroker(t, func(o *Options) { o.FDReserve = int(limit) - 3 })
	for range 3 {
		c, err := net.Dial("tcp", b.Addr(ListenerMQTT).String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	waitFor(t, "three connections accepted", func() bool { return b.budget.inUse.Load() == 3 })
	extra, err := net.Dial("tcp", b.Addr(ListenerOCPP).String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	waitClosed(t, extra, "connection beyond the budget")
	resp, err := http.Get("http://" + b.Addr(ListenerHTTP).String() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz with the budget spent: %v %v", resp, err)
	}
	resp.Body.Close()
	waitFor(t, "refusal counted", func() bool { return b.Stats().Refused["fd_reserve"] == 1 })
}

// tempError is a temporary accept error, as EMFILE is.
type tempError struct{}

func (tempError) Error() string   { return "too many open files" }
func (tempError) Timeout() bool   { return false }
func (tempError) Temporary() bool { return true }

// flakyListener fails Accept with a temporary error n times, then accepts.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fails > 0 {
		l.fails--
		return nil, tempError{}
	}
	return l.Listener.Accept()
}

// TestAcceptOutlastsEMFILE: temporary accept errors are retried with a
// back-off, not returned, so the accept loop survives a descriptor
// shortage; Close ends a back-off under way.
func TestAcceptOutlastsEMFILE(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var retries int
	l := newLimitListener(&flakyListener{Listener: ln, fails: 3}, &fdBudget{limit: 10}, func() {},
		func(error, time.Duration) { retries++ })
	defer l.Close()
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	c.Close()
	if retries != 3 {
		t.Fatalf("retries = %d, want 3", retries)
	}

	stuck := newLimitListener(&flakyListener{Listener: ln, fails: math.MaxInt}, &fdBudget{limit: 10}, func() {},
		func(error, time.Duration) {})
	done := make(chan error, 1)
	go func() { _, err := stuck.Accept(); done <- err }()
	stuck.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the back-off")
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) lines(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			n++
		}
	}
	return n
}

// TestRefusedCommandsDoNotFloodTheLog: one MQTT client's 2,000 malformed
// commands write the first ten lines and a sample, not 2,000.
func TestRefusedCommandsDoNotFloodTheLog(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	b := startBroker(t, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	m := dialMQTT(t, b.Addr(ListenerMQTT), "flooder")
	const n = 2000
	for range n - 1 {
		m.publish(t, "ocpp/cs/CP1", "not json", 0, false)
	}
	m.publish(t, "ocpp/cs/CP1", "not json", 1, false) // in order: all handled once acked
	waitFor(t, "all refused", func() bool { return b.Stats().GatewayErrors["malformed"] == n })
	if got := logs.lines("command refused"); got > 12 {
		t.Fatalf("%d log lines for %d refused commands", got, n)
	}
	m.c.Disconnect(&paho.Disconnect{})
	waitFor(t, "sampler dropped with the connection", func() bool {
		k := 0
		b.bridge.refusals.Range(func(any, any) bool { k++; return true })
		return k == 0
	})
}

// TestShutdownEndsWhateverPeersDo: a charge point that never answers the
// close handshake, an MQTT connection that never sent CONNECT and a
// half-sent WebSocket upgrade cannot hold up Shutdown past its timeout;
// what was forced is logged.
func TestShutdownEndsWhateverPeersDo(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	o := DefaultOptions()
	o.MQTTAddr, o.MQTTWSAddr, o.OCPPAddr, o.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	o.ShutdownTimeout = 2 * time.Second
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	dialCP(t, b, "DEAF") // never reads: the close frame is never answered
	waitFor(t, "charge point connected", func() bool { return b.Stats().OCPP.Connected == 1 })
	silent, err := net.Dial("tcp", b.Addr(ListenerMQTT).String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	half, err := net.Dial("tcp", b.Addr(ListenerMQTTWS).String())
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	half.Write([]byte("GET /mqtt HTTP/1.1\r\n"))
	dialMQTT(t, b.Addr(ListenerMQTT), "client")
	waitFor(t, "mqtt connections accepted", func() bool { return b.budget.inUse.Load() >= 4 })

	done := make(chan error, 1)
	go func() { done <- b.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not end")
	}
	if logs.lines("forced") == 0 {
		t.Fatalf("nothing logged as forced:\n%s", logs.b.String())
	}
	waitClosed(t, silent, "MQTT connection without CONNECT")
}

// TestDroppedMessagesAreCountedAndLogged: a subscriber that stops reading
// loses messages once mqtt.max_queued_messages wait for it; the loss is
// counted and logged (sampled), never silent.
func TestDroppedMessagesAreCountedAndLogged(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	b := startBroker(t, func(o *Options) {
		o.MQTT.MaxQueuedMessages = 5
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	// A 3.1.1 subscriber that never reads its socket.
	c, code := rawConnect(t, b.Addr(ListenerMQTT), "stalled")
	if code != 0 {
		t.Fatalf("CONNACK %d", code)
	}
	sub := []byte{0x82, 0, 0, 1, 0, 3, 'd', '/', '#', 0}
	sub[1] = byte(len(sub) - 2)
	if _, err := c.Write(sub); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 5)); err != nil { // SUBACK; nothing is read after it
		t.Fatal(err)
	}
	pub := dialMQTT(t, b.Addr(ListenerMQTT), "publisher")
	payload := string(bytes.Repeat([]byte("x"), 32<<10))
	for i := 0; b.Stats().MQTTDropped < 100; i++ {
		if i == 5000 {
			t.Fatalf("no drops after 5,000 messages of 32 KiB: %+v", b.Stats())
		}
		pub.publish(t, "d/x", payload, 0, false)
	}
	if got := logs.lines("message dropped"); got == 0 || got > 13 {
		t.Fatalf("%d log lines for %d drops", got, b.Stats().MQTTDropped)
	}
}

// TestShutdownLeavesNoGoroutines: every goroutine the broker starts, for
// listeners, charge points and MQTT clients, has ended when Shutdown
// returns (its owners wait for them). Not parallel, so that no other
// test's goroutines are counted.
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	o := DefaultOptions()
	o.MQTTAddr, o.MQTTWSAddr, o.OCPPAddr, o.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	o.OCPP.PingInterval = time.Second // the pinger too
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	cp := dialCP(t, b, "CP1")
	reading := make(chan struct{})
	go func() { // reads, so the close handshake is answered
		defer close(reading)
		for {
			if _, _, err := cp.ws.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	mq, _ := rawConnect(t, b.Addr(ListenerMQTT), "client")
	silent, err := net.Dial("tcp", b.Addr(ListenerMQTT).String()) // never sends CONNECT
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "charge point connected", func() bool { return b.Stats().OCPP.Connected == 1 })
	cmd := dialMQTT(t, b.Addr(ListenerMQTT), "commander")
	cmd.publish(t, "ocpp/cs/CP1", `{"MessageTypeId":2,"UniqueId":"r1","Action":"Reset","Payload":{"type":"Soft"}}`, 1, false)
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	cp.ws.CloseNow()
	mq.Close()
	silent.Close()
	cmd.c.Disconnect(&paho.Disconnect{})
	<-reading
	// The clients' own goroutines (paho, coder/websocket) end on their side's close.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Shutdown, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
