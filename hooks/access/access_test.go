package access

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/chargemq/chargemq/hooks/internal/mqtttest"
)

const gateway = "ocpp"

// isDownstream stands in for topic.Downstream.Match of "ocpp/cs/${cid}" (hooks may not import it).
func isDownstream(topic string) bool {
	cid, ok := strings.CutPrefix(topic, "ocpp/cs/")
	return ok && cid != "" && !strings.ContainsAny(cid, "/+#")
}

// denials records OnDenied calls.
type denials struct {
	mu  sync.Mutex
	got []string
}

func (d *denials) record(clientID, topic string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got = append(d.got, clientID+" "+topic)
}

func (d *denials) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.got...)
}

func newHook(t *testing.T, d *denials) *Hook {
	t.Helper()
	opts := Options{Mountpoint: "ocpp/", IsDownstream: isDownstream, GatewayListener: gateway}
	if d != nil {
		opts.OnDenied = d.record
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestNewRequiresOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{
		{Mountpoint: "ocpp/", GatewayListener: gateway},
		{Mountpoint: "ocpp/", IsDownstream: isDownstream},
	} {
		if _, err := New(o); !errors.Is(err, ErrOptions) {
			t.Errorf("New(%+v) = %v, want ErrOptions", o, err)
		}
	}
}

func TestProvides(t *testing.T) {
	t.Parallel()
	h := newHook(t, nil)
	for _, b := range []byte{mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck} {
		if !h.Provides(b) {
			t.Errorf("Provides(%d) = false", b)
		}
	}
	for _, b := range []byte{mqtt.OnPublish, mqtt.OnSubscribe, mqtt.OnWill, mqtt.OnDisconnect, mqtt.StoredClients} {
		if h.Provides(b) {
			t.Errorf("Provides(%d) = true for an event the hook does not implement", b)
		}
	}
}

func TestACLCheck(t *testing.T) {
	t.Parallel()
	real := func(id string) *mqtt.Client {
		cl := &mqtt.Client{ID: id}
		cl.Net.Listener = "tcp"
		return cl
	}
	inline := func(id, listener string) *mqtt.Client {
		cl := &mqtt.Client{ID: id}
		cl.Net.Inline, cl.Net.Listener = true, listener
		return cl
	}
	cases := []struct {
		name  string
		cl    *mqtt.Client
		topic string
		write bool
		want  bool
	}{
		{"read upstream", real("c"), "ocpp/cp/CP1", false, true},
		{"read filter everything", real("c"), "#", false, true},
		{"read filter mountpoint", real("c"), "ocpp/#", false, true},
		{"read presence", real("c"), "ocpp/presence/CP1", false, true},
		{"write downstream", real("c"), "ocpp/cs/CP1", true, true},
		{"write upstream", real("c"), "ocpp/cp/CP1", true, false},
		{"write reply", real("c"), "ocpp/cp/CP1/Reply", true, false},
		{"write presence", real("c"), "ocpp/presence/CP1", true, false},
		{"write downstream extra level", real("c"), "ocpp/cs/CP1/x", true, false},
		{"write downstream empty cid", real("c"), "ocpp/cs/", true, false},
		{"write mountpoint itself", real("c"), "ocpp/", true, false},
		{"write unknown under mountpoint", real("c"), "ocpp/other", true, false},
		{"write outside mountpoint", real("c"), "sensors/1", true, true},
		{"write mountpoint without slash", real("c"), "ocpp", true, true},
		{"write look-alike", real("c"), "ocppx/cp/CP1", true, true},
		{"write alias only", real("c"), "", true, true},
		{"real client named like a charge point", real("CP1"), "ocpp/cp/CP1", true, false},
		{"real client named like the listener", real(gateway), "ocpp/cp/CP1", true, false},
		{"gateway virtual client", inline("CP1", gateway), "ocpp/cp/CP1", true, true},
		{"gateway virtual client presence", inline("CP1", gateway), "ocpp/presence/CP1", true, true},
		{"other inline client", inline("embed", "app"), "ocpp/cp/CP1", true, false},
		{"non-inline on the gateway listener", func() *mqtt.Client { c := real("CP1"); c.Net.Listener = gateway; return c }(), "ocpp/cp/CP1", true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var d denials
			h := newHook(t, &d)
			if got := h.OnACLCheck(c.cl, c.topic, c.write); got != c.want {
				t.Errorf("OnACLCheck(%s@%s, %q, write=%v) = %v, want %v", c.cl.ID, c.cl.Net.Listener, c.topic, c.write, got, c.want)
			}
			if n := len(d.list()); (n == 1) != !c.want || n > 1 {
				t.Errorf("OnDenied called %d times", n)
			}
		})
	}
}

func TestACLEmptyMountpoint(t *testing.T) {
	t.Parallel()
	h, err := New(Options{IsDownstream: func(s string) bool { return strings.HasPrefix(s, "cs/") }, GatewayListener: gateway})
	if err != nil {
		t.Fatal(err)
	}
	cl := &mqtt.Client{ID: "c"}
	if h.OnACLCheck(cl, "sensors/1", true) {
		t.Error("with an empty mountpoint every topic is the gateway's; write to sensors/1 allowed")
	}
	if !h.OnACLCheck(cl, "cs/CP1", true) {
		t.Error("downstream write refused")
	}
	if h.OnACLCheck(cl, "ocpp/cs/CP1", false) != true {
		t.Error("read refused")
	}
}

func TestV5SpoofRefused(t *testing.T) {
	t.Parallel()
	var d denials
	_, addr := mqtttest.StartServer(t, newHook(t, &d))
	sub := mqtttest.MustDialV5(t, addr, "sub")
	sub.Subscribe(t, "ocpp/#")
	pub := mqtttest.MustDialV5(t, addr, "pub")

	for _, topic := range []string{"ocpp/cp/CP1", "ocpp/cp/CP1/Reply", "ocpp/presence/CP1"} {
		if rc := pub.Publish(t, topic, 1, false, "forged"); rc != packets.ErrNotAuthorized.Code {
			t.Errorf("QoS 1 publish to %s: PUBACK %#x, want 0x87", topic, rc)
		}
	}
	if rc := pub.Publish(t, "ocpp/cp/CP1", 2, false, "forged"); rc != packets.ErrNotAuthorized.Code {
		t.Errorf("QoS 2 publish: PUBREC %#x, want 0x87", rc)
	}
	pub.Publish(t, "ocpp/cp/CP1", 0, false, "forged") // QoS 0: dropped silently
	if rc := pub.Publish(t, "ocpp/cs/CP1", 1, false, "marker"); rc != 0 {
		t.Fatalf("downstream publish: PUBACK %#x, want 0", rc)
	}
	sub.ExpectNext(t, "ocpp/cs/CP1", "marker") // nothing forged arrived before it
	if got := len(d.list()); got != 5 {
		t.Errorf("OnDenied called %d times, want 5: %q", got, d.list())
	}
	if got := d.list()[0]; got != "pub ocpp/cp/CP1" {
		t.Errorf("OnDenied(%q), want \"pub ocpp/cp/CP1\"", got)
	}
}

// A real client whose id equals a charge point id gets no gateway rights.
func TestClientNamedLikeChargePoint(t *testing.T) {
	t.Parallel()
	_, addr := mqtttest.StartServer(t, newHook(t, nil))
	cp := mqtttest.MustDialV5(t, addr, "CP1")
	if rc := cp.Publish(t, "ocpp/cp/CP1", 1, false, "forged"); rc != packets.ErrNotAuthorized.Code {
		t.Errorf("PUBACK %#x, want 0x87", rc)
	}
}

func TestV5AllowedWrites(t *testing.T) {
	t.Parallel()
	_, addr := mqtttest.StartServer(t, newHook(t, nil))
	sub := mqtttest.MustDialV5(t, addr, "sub")
	sub.Subscribe(t, "#")
	pub := mqtttest.MustDialV5(t, addr, "pub")
	for _, topic := range []string{"ocpp/cs/CP1", "sensors/1", "ocppx/cp/CP1"} {
		if rc := pub.Publish(t, topic, 1, false, topic); rc != 0 {
			t.Errorf("publish to %s: PUBACK %#x, want 0", topic, rc)
		}
		sub.ExpectNext(t, topic, topic)
	}
}

func TestV3QoS0SpoofDropped(t *testing.T) {
	t.Parallel()
	var d denials
	_, addr := mqtttest.StartServer(t, newHook(t, &d))
	sub := mqtttest.MustDialV5(t, addr, "sub")
	sub.Subscribe(t, "ocpp/#")
	pub, rc := mqtttest.DialV3(t, addr, "pub3", nil)
	if rc != 0 {
		t.Fatalf("CONNACK %d", rc)
	}
	pub.Publish(t, "ocpp/cp/CP1", 0, 0, "forged")
	pub.Publish(t, "ocpp/cs/CP1", 0, 0, "marker")
	sub.ExpectNext(t, "ocpp/cs/CP1", "marker")
	if got := d.list(); len(got) != 1 || got[0] != "pub3 ocpp/cp/CP1" {
		t.Errorf("OnDenied calls %q", got)
	}
}

func TestV3QoS1SpoofDisconnects(t *testing.T) {
	t.Parallel()
	for _, qos := range []byte{1, 2} {
		_, addr := mqtttest.StartServer(t, newHook(t, nil))
		pub, rc := mqtttest.DialV3(t, addr, "pub3", nil)
		if rc != 0 {
			t.Fatalf("CONNACK %d", rc)
		}
		pub.Publish(t, "ocpp/cp/CP1", qos, 1, "forged")
		pub.ExpectClosed(t)
	}
}

func TestV3DownstreamAllowed(t *testing.T) {
	t.Parallel()
	_, addr := mqtttest.StartServer(t, newHook(t, nil))
	pub, _ := mqtttest.DialV3(t, addr, "pub3", nil)
	pub.Publish(t, "ocpp/cs/CP1", 1, 7, "cmd")
	if ack := pub.ExpectPacket(t, packets.Puback); ack.PacketID != 7 {
		t.Errorf("PUBACK for packet %d, want 7", ack.PacketID)
	}
}

// The gateway's virtual client publishes upstream through InjectPacket and reaches subscribers.
func TestGatewayInlineClientPublishes(t *testing.T) {
	t.Parallel()
	srv, addr := mqtttest.StartServer(t, newHook(t, nil))
	sub := mqtttest.MustDialV5(t, addr, "sub")
	sub.Subscribe(t, "ocpp/#")
	cp := srv.NewClient(nil, gateway, "CP1", true)
	for i, topic := range []string{"ocpp/cp/CP1", "ocpp/presence/CP1"} {
		err := srv.InjectPacket(cp, packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			TopicName:   topic, PacketID: 1, Payload: []byte{byte('0' + i)},
		})
		if err != nil {
			t.Fatalf("InjectPacket: %v", err)
		}
		sub.ExpectNext(t, topic, string([]byte{byte('0' + i)}))
	}
}

func TestWillTopicChecked(t *testing.T) {
	t.Parallel()
	var d denials
	srv, addr := mqtttest.StartServer(t, newHook(t, &d))

	for _, topic := range []string{"ocpp/presence/CP1", "ocpp/cp/CP1", "$SYS/broker/uptime"} {
		_, ca, err := mqtttest.DialV5(t, addr, "w5", &paho.WillMessage{Topic: topic, Payload: []byte("offline"), Retain: true, QoS: 1})
		if err == nil || ca == nil || ca.ReasonCode != packets.ErrNotAuthorized.Code {
			t.Errorf("v5 will on %s: CONNACK %+v, %v; want 0x87", topic, ca, err)
		}
		_, rc := mqtttest.DialV3(t, addr, "w3", &packets.ConnectParams{WillTopic: topic, WillPayload: []byte("offline"), WillRetain: true})
		if rc != packets.Err3NotAuthorized.Code {
			t.Errorf("v3 will on %s: CONNACK %d, want 5", topic, rc)
		}
	}
	if got := len(d.list()); got != 6 {
		t.Errorf("OnDenied called %d times, want 6: %q", got, d.list())
	}
	for _, topic := range []string{"ocpp/cs/CP1", "clients/w5/state"} {
		if _, _, err := mqtttest.DialV5(t, addr, "ok5", &paho.WillMessage{Topic: topic, Payload: []byte("x")}); err != nil {
			t.Errorf("v5 will on %s refused: %v", topic, err)
		}
		if _, rc := mqtttest.DialV3(t, addr, "ok3", &packets.ConnectParams{WillTopic: topic, WillPayload: []byte("x")}); rc != 0 {
			t.Errorf("v3 will on %s: CONNACK %d", topic, rc)
		}
	}
	if msgs := srv.Topics.Messages("ocpp/#"); len(msgs) != 0 {
		t.Errorf("retained under ocpp/: %v", msgs)
	}
}

func TestSubscribeAllowed(t *testing.T) {
	t.Parallel()
	_, addr := mqtttest.StartServer(t, newHook(t, nil))
	c := mqtttest.MustDialV5(t, addr, "sub")
	for _, f := range []string{"ocpp/#", "ocpp/cp/+", "ocpp/cs/+", "#"} {
		c.Subscribe(t, f)
	}
}
