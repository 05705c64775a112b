package route

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/chargemq/chargemq/hooks/internal/mqtttest"
)

const gateway = "ocpp"

// match stands in for topic.Downstream.Match of "ocpp/cs/${cid}" (hooks may not import it).
func match(topic string) (string, bool) {
	cid, ok := strings.CutPrefix(topic, "ocpp/cs/")
	if !ok || cid == "" || strings.ContainsAny(cid, "/+#") {
		return "", false
	}
	return cid, true
}

// allowAll admits every client and every access, standing in for hooks/access (mochi's own
// auth hook would pull yaml into go.sum).
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "allow-all" }
func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

// delivery is one Deliver call as the test saw it.
type delivery struct {
	client, cid, topic, payload string
	qos                         byte
	retain                      bool
}

// newRoute returns a route hook whose Deliver answers code and reports each call on the channel.
func newRoute(t *testing.T, code packets.Code) (*Hook, chan delivery) {
	t.Helper()
	calls := make(chan delivery, 100)
	h, err := New(Options{
		Match: match,
		Deliver: func(cl *mqtt.Client, cid string, pk packets.Packet) packets.Code {
			calls <- delivery{cl.ID, cid, pk.TopicName, string(pk.Payload), pk.FixedHeader.Qos, pk.FixedHeader.Retain}
			return code
		},
		GatewayListener: gateway,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, calls
}

// startRouted starts a server with an allow-all auth hook and a route hook answering code.
func startRouted(t *testing.T, code packets.Code) (*mqtt.Server, string, chan delivery) {
	t.Helper()
	h, calls := newRoute(t, code)
	srv, addr := mqtttest.StartServer(t, new(allowAll), h)
	return srv, addr, calls
}

func nextDelivery(t *testing.T, calls chan delivery) delivery {
	t.Helper()
	select {
	case d := <-calls:
		return d
	case <-time.After(mqtttest.Timeout):
		t.Fatal("Deliver not called in time")
		return delivery{}
	}
}

// expectNoDelivery fails if Deliver was called. Call it after a marker publish whose own
// delivery has been awaited: everything published before it has been handled by then.
func expectNoDelivery(t *testing.T, calls chan delivery) {
	t.Helper()
	select {
	case d := <-calls:
		t.Fatalf("unexpected Deliver call: %+v", d)
	default:
	}
}

func TestNewRequiresOptions(t *testing.T) {
	t.Parallel()
	deliver := func(*mqtt.Client, string, packets.Packet) packets.Code { return packets.CodeSuccess }
	for _, o := range []Options{
		{Deliver: deliver, GatewayListener: gateway},
		{Match: match, GatewayListener: gateway},
		{Match: match, Deliver: deliver},
	} {
		if _, err := New(o); !errors.Is(err, ErrOptions) {
			t.Errorf("New = %v, want ErrOptions", err)
		}
	}
}

func TestProvides(t *testing.T) {
	t.Parallel()
	h, _ := newRoute(t, packets.CodeSuccess)
	for _, b := range []byte{mqtt.OnPublish, mqtt.OnWill, mqtt.OnWillSent} {
		if !h.Provides(b) {
			t.Errorf("Provides(%d) = false", b)
		}
	}
	for _, b := range []byte{mqtt.OnACLCheck, mqtt.OnConnectAuthenticate, mqtt.OnPublished, mqtt.OnSubscribe} {
		if h.Provides(b) {
			t.Errorf("Provides(%d) = true for an event the hook does not implement", b)
		}
	}
}

func TestOnPublishUnit(t *testing.T) {
	t.Parallel()
	refuse := packets.ErrQuotaExceeded
	cases := []struct {
		name     string
		version  byte
		inline   bool
		listener string
		topic    string
		qos      byte
		code     packets.Code
		routed   bool
		wantErr  bool
	}{
		{"v5 qos1 success", 5, false, "tcp", "ocpp/cs/CP1", 1, packets.CodeSuccess, true, false},
		{"v5 qos1 refused", 5, false, "tcp", "ocpp/cs/CP1", 1, refuse, true, true},
		{"v5 qos0 refused", 5, false, "tcp", "ocpp/cs/CP1", 0, refuse, true, false},
		{"v5 qos2 refused", 5, false, "tcp", "ocpp/cs/CP1", 2, refuse, true, false},
		{"v3 qos1 refused", 4, false, "tcp", "ocpp/cs/CP1", 1, refuse, true, false},
		{"v5 qos1 success code 0x10", 5, false, "tcp", "ocpp/cs/CP1", 1, packets.CodeNoMatchingSubscribers, true, false},
		{"upstream topic", 5, false, "tcp", "ocpp/cp/CP1", 1, refuse, false, false},
		{"other topic", 5, false, "tcp", "sensors/1", 1, refuse, false, false},
		{"gateway virtual client", 5, true, gateway, "ocpp/cs/CP1", 1, refuse, false, false},
		{"embedding inline client", 5, true, "app", "ocpp/cs/CP1", 1, refuse, true, true},
		{"real client on a listener named like the gateway", 5, false, gateway, "ocpp/cs/CP1", 1, refuse, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h, calls := newRoute(t, c.code)
			cl := &mqtt.Client{ID: "pub"}
			cl.Properties.ProtocolVersion = c.version
			cl.Net.Inline, cl.Net.Listener = c.inline, c.listener
			in := packets.Packet{
				FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: c.qos, Retain: true},
				TopicName:   c.topic, Payload: []byte("p"),
			}
			out, err := h.OnPublish(cl, in)
			if (err != nil) != c.wantErr {
				t.Fatalf("error = %v, want error %v", err, c.wantErr)
			}
			if c.wantErr {
				var code packets.Code
				if !errors.As(err, &code) || code != c.code {
					t.Errorf("error %v is not the packets.Code %v", err, c.code)
				}
			}
			if c.routed {
				if d := nextDelivery(t, calls); d.cid != "CP1" || d.payload != "p" || d.retain {
					t.Errorf("Deliver got %+v", d)
				}
				if out.FixedHeader.Retain {
					t.Error("returned packet still has Retain set")
				}
			} else {
				expectNoDelivery(t, calls)
				if !out.FixedHeader.Retain || out.TopicName != c.topic {
					t.Error("packet of a non-routed publish was changed")
				}
			}
		})
	}
}

func TestOnPublishNoAllocOnOtherTopics(t *testing.T) {
	h, _ := newRoute(t, packets.CodeSuccess)
	cl := &mqtt.Client{ID: "pub"}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "ocpp/cp/CP1"}
	if n := testing.AllocsPerRun(100, func() { _, _ = h.OnPublish(cl, pk) }); n != 0 {
		t.Errorf("OnPublish allocates %v times on a non-downstream topic", n)
	}
}

func TestDownstreamDelivered(t *testing.T) {
	t.Parallel()
	_, addr, calls := startRouted(t, packets.CodeSuccess)
	sub := mqtttest.MustDialV5(t, addr, "audit")
	sub.Subscribe(t, "ocpp/cs/#")
	pub := mqtttest.MustDialV5(t, addr, "csms")
	for _, qos := range []byte{0, 1, 2} {
		payload := `[2,"` + string('a'+rune(qos)) + `","Reset",{"type":"Soft"}]`
		if rc := pub.Publish(t, "ocpp/cs/CP1", qos, false, payload); rc >= 0x80 {
			t.Fatalf("QoS %d: reason code %#x", qos, rc)
		}
		d := nextDelivery(t, calls)
		want := delivery{client: "csms", cid: "CP1", topic: "ocpp/cs/CP1", payload: payload, qos: qos}
		if d != want {
			t.Errorf("QoS %d: Deliver got %+v, want %+v", qos, d, want)
		}
		sub.ExpectNext(t, "ocpp/cs/CP1", payload) // commands still fan out
	}
}

func TestOtherTopicsNotDelivered(t *testing.T) {
	t.Parallel()
	_, addr, calls := startRouted(t, packets.CodeSuccess)
	pub := mqtttest.MustDialV5(t, addr, "pub")
	for _, topic := range []string{"ocpp/cp/CP1", "ocpp/cs/CP1/x", "ocpp/cs/", "sensors/1"} {
		pub.Publish(t, topic, 1, false, "x")
	}
	pub.Publish(t, "ocpp/cs/marker", 1, false, "m")
	if d := nextDelivery(t, calls); d.cid != "marker" {
		t.Fatalf("Deliver got %+v before the marker", d)
	}
	expectNoDelivery(t, calls)
}

func TestRetainedCommandNotStored(t *testing.T) {
	t.Parallel()
	srv, addr, calls := startRouted(t, packets.CodeSuccess)
	pub := mqtttest.MustDialV5(t, addr, "csms")
	for _, qos := range []byte{0, 1, 2} {
		pub.Publish(t, "ocpp/cs/CP1", qos, true, "cmd")
		if d := nextDelivery(t, calls); d.retain || d.cid != "CP1" {
			t.Errorf("QoS %d: Deliver got %+v", qos, d)
		}
	}
	pub.Publish(t, "other/state", 1, true, "kept") // control: retained elsewhere is stored
	if msgs := srv.Topics.Messages("ocpp/#"); len(msgs) != 0 {
		t.Errorf("retained store holds %d messages under ocpp/", len(msgs))
	}
	if msgs := srv.Topics.Messages("other/#"); len(msgs) != 1 {
		t.Errorf("control retained message not stored: %d", len(msgs))
	}

	late := mqtttest.MustDialV5(t, addr, "late")
	late.Subscribe(t, "ocpp/cs/#")
	pub.Publish(t, "ocpp/cs/CP2", 1, false, "marker")
	late.ExpectNext(t, "ocpp/cs/CP2", "marker") // no retained command came first
	nextDelivery(t, calls)
	expectNoDelivery(t, calls) // each command delivered once
}

func TestRefusedV5QoS1GetsReasonCode(t *testing.T) {
	t.Parallel()
	for _, code := range []packets.Code{packets.ErrQuotaExceeded, packets.ErrPayloadFormatInvalid, packets.ErrPacketTooLarge} {
		_, addr, calls := startRouted(t, code)
		sub := mqtttest.MustDialV5(t, addr, "audit")
		sub.Subscribe(t, "#")
		pub := mqtttest.MustDialV5(t, addr, "csms")
		if rc := pub.Publish(t, "ocpp/cs/CP1", 1, true, "refused"); rc != code.Code {
			t.Errorf("PUBACK %#x, want %#x", rc, code.Code)
		}
		nextDelivery(t, calls)
		pub.Publish(t, "marker", 1, false, "m")
		sub.ExpectNext(t, "marker", "m") // the refused command was not fanned out
	}
}

func TestRefusedQoS2AndQoS0NotRefused(t *testing.T) {
	t.Parallel()
	_, addr, calls := startRouted(t, packets.ErrQuotaExceeded)
	sub := mqtttest.MustDialV5(t, addr, "audit")
	sub.Subscribe(t, "ocpp/cs/#")
	pub := mqtttest.MustDialV5(t, addr, "csms")
	for _, qos := range []byte{2, 0} {
		if rc := pub.Publish(t, "ocpp/cs/CP1", qos, false, "cmd"); rc != 0 {
			t.Errorf("QoS %d: reason code %#x, want success", qos, rc)
		}
		nextDelivery(t, calls)
		sub.ExpectNext(t, "ocpp/cs/CP1", "cmd")
	}
}

func TestRefusedV3QoS1Acked(t *testing.T) {
	t.Parallel()
	srv, addr, calls := startRouted(t, packets.ErrQuotaExceeded)
	pub, rc := mqtttest.DialV3(t, addr, "csms3", nil)
	if rc != 0 {
		t.Fatalf("CONNACK %d", rc)
	}
	pub.Publish(t, "ocpp/cs/CP1", 1, 9, "cmd")
	if ack := pub.ExpectPacket(t, packets.Puback); ack.PacketID != 9 {
		t.Errorf("PUBACK for %d, want 9", ack.PacketID)
	}
	if d := nextDelivery(t, calls); d.cid != "CP1" || d.client != "csms3" {
		t.Errorf("Deliver got %+v", d)
	}
	pub.Send(t, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName:   "ocpp/cs/CP1", PacketID: 10, Payload: []byte("retained"),
	})
	pub.ExpectPacket(t, packets.Puback)
	nextDelivery(t, calls)
	if msgs := srv.Topics.Messages("ocpp/#"); len(msgs) != 0 {
		t.Errorf("v3 retained command stored: %d", len(msgs))
	}
}

// The gateway's own virtual clients are never routed (no loops); other inline clients are.
func TestInlineClients(t *testing.T) {
	t.Parallel()
	srv, addr, calls := startRouted(t, packets.CodeSuccess)
	sub := mqtttest.MustDialV5(t, addr, "audit")
	sub.Subscribe(t, "ocpp/#")
	inject := func(cl *mqtt.Client, topic, payload string) {
		t.Helper()
		err := srv.InjectPacket(cl, packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			TopicName:   topic, PacketID: 1, Payload: []byte(payload),
		})
		if err != nil {
			t.Fatalf("InjectPacket: %v", err)
		}
	}
	cp := srv.NewClient(nil, gateway, "CP1", true)
	inject(cp, "ocpp/cp/CP1", "upstream")
	sub.ExpectNext(t, "ocpp/cp/CP1", "upstream")
	inject(cp, "ocpp/cs/CP2", "from-gateway")
	sub.ExpectNext(t, "ocpp/cs/CP2", "from-gateway")
	expectNoDelivery(t, calls)

	app := srv.NewClient(nil, "app", "embedder", true)
	inject(app, "ocpp/cs/CP2", "from-app")
	if d := nextDelivery(t, calls); d.client != "embedder" || d.cid != "CP2" || d.payload != "from-app" {
		t.Errorf("Deliver got %+v", d)
	}
	sub.ExpectNext(t, "ocpp/cs/CP2", "from-app")
}

// A Will on a downstream topic is a command too: delivered once, never retained.
func TestWillCommand(t *testing.T) {
	t.Parallel()
	srv, addr, calls := startRouted(t, packets.CodeSuccess)
	sub := mqtttest.MustDialV5(t, addr, "audit")
	sub.Subscribe(t, "ocpp/cs/#")
	_, _, err := mqtttest.DialV5(t, addr, "dying", &paho.WillMessage{Topic: "ocpp/cs/CP1", Payload: []byte("last"), Retain: true, QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Drop the connection without DISCONNECT so that the Will is sent.
	if cl, ok := srv.Clients.Get("dying"); ok {
		cl.Stop(errors.New("test: connection lost"))
	} else {
		t.Fatal("client not found")
	}
	if d := nextDelivery(t, calls); d.cid != "CP1" || d.payload != "last" || d.retain || d.client != "dying" {
		t.Errorf("Deliver got %+v", d)
	}
	sub.ExpectNext(t, "ocpp/cs/CP1", "last")
	if msgs := srv.Topics.Messages("ocpp/#"); len(msgs) != 0 {
		t.Errorf("retained Will command stored: %d", len(msgs))
	}
}
