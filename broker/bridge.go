package broker

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/chargemq/chargemq/broker/topic"
	"github.com/chargemq/chargemq/ocpp"
)

// gatewayListener is the listener name of the gateway's virtual clients.
// The ACL recognises them by it (and by being inline), never by client id.
const gatewayListener = "ocpp"

// gatewayClientID is the origin of messages the gateway publishes for a
// charge point that has no connection (gateway errors for offline ones).
const gatewayClientID = "chargemq-gateway"

// topics holds the parsed topic templates.
type topics struct {
	mountpoint string
	call       topic.Template
	overrides  map[string]topic.Template
	reply      topic.Template
	errors     topic.Template
	presence   topic.Template
	down       topic.Downstream
}

func (t *topics) forCall(action string) topic.Template {
	if o, ok := t.overrides[action]; ok {
		return o
	}
	return t.call
}

// bridge joins the two sides: it is the ocpp.Handler that turns frames into
// MQTT publishes from each charge point's virtual client, and the Deliver
// function of the route hook that turns downstream publishes into commands.
// Every publish goes through publish, the one path a bridge to a cloud
// cluster or a metrics tap can hook.
type bridge struct {
	mqtt   *mqtt.Server
	ocpp   *ocpp.Server
	topics topics
	qos    byte
	log    *slog.Logger

	gateway *mqtt.Client
	// mayRead is the ACL's read check, for MQTT 5 Response Topics.
	mayRead func(cl *mqtt.Client, topic string) bool

	mu      sync.Mutex
	clients map[string]*virtualClient

	gatewayErrors reasonCounters
	published     atomic.Uint64
	publishFailed atomic.Uint64
	denied        atomic.Uint64
	// responseIgnored counts Response Topics that were not honoured.
	responseIgnored atomic.Uint64
}

// replyTo is where an MQTT 5 requester asked for the final message of its
// command (Response Topic and Correlation Data); it rides as Command.Ref.
type replyTo struct {
	topic       string
	correlation []byte
}

// virtualClient is a charge point's client inside the broker; conns counts
// its connections (two during a takeover).
type virtualClient struct {
	cl    *mqtt.Client
	conns int
}

func newBridge(srv *mqtt.Server, t topics, qos byte, log *slog.Logger) *bridge {
	return &bridge{
		mqtt:    srv,
		topics:  t,
		qos:     qos,
		log:     log,
		gateway: newVirtualClient(srv, gatewayClientID),
		clients: make(map[string]*virtualClient),
	}
}

// newVirtualClient makes an inline client on the gateway listener. It
// speaks MQTT 5 so that properties (correlation data) survive injection.
func newVirtualClient(srv *mqtt.Server, id string) *mqtt.Client {
	cl := srv.NewClient(nil, gatewayListener, id, true)
	cl.Properties.ProtocolVersion = 5
	return cl
}

// client returns the virtual client of cid, or the gateway's when the
// charge point has none (it is offline).
func (b *bridge) client(cid string) *mqtt.Client {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v := b.clients[cid]; v != nil {
		return v.cl
	}
	return b.gateway
}

// Connected implements ocpp.Handler.
func (b *bridge) Connected(s ocpp.SessionInfo) {
	b.mu.Lock()
	v := b.clients[s.CID]
	if v == nil {
		v = &virtualClient{cl: newVirtualClient(b.mqtt, s.CID)}
		b.clients[s.CID] = v
	}
	v.conns++
	cl := v.cl
	b.mu.Unlock()
	b.publishPresence(cl, s, true, "")
}

// publishPresence publishes the retained presence of a charge point. The
// ocpp server calls Connected and Disconnected in order per charge point,
// and a replaced connection publishes nothing, so the retained message is
// always the charge point's current state.
func (b *bridge) publishPresence(cl *mqtt.Client, s ocpp.SessionInfo, online bool, reason ocpp.Reason) {
	t := b.topics.presence.Render(topic.Values{CID: s.CID})
	b.inject(cl, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName:   t,
		Payload:     appendPresence(nil, s, online, reason, time.Now()),
		PacketID:    1,
	})
}

// Disconnected implements ocpp.Handler.
func (b *bridge) Disconnected(s ocpp.SessionInfo, reason ocpp.Reason, replaced bool) {
	cl := b.gateway
	b.mu.Lock()
	if v := b.clients[s.CID]; v != nil {
		cl = v.cl
		if v.conns--; v.conns <= 0 {
			delete(b.clients, s.CID)
		}
	}
	b.mu.Unlock()
	if !replaced {
		b.publishPresence(cl, s, false, reason)
	}
}

// Received implements ocpp.Handler: it publishes a charge point's frame.
func (b *bridge) Received(s ocpp.SessionInfo, in ocpp.Inbound) {
	v := topic.Values{CID: s.CID, Action: in.Action, ID: in.UniqueID, Type: int(in.Type)}
	var t topic.Template
	switch in.Type {
	case ocpp.TypeCall:
		t = b.topics.forCall(in.Action)
	case ocpp.TypeCallResult:
		t = b.topics.reply
	default:
		t = b.topics.errors
	}
	cl := b.client(s.CID)
	payload := appendUpstream(nil, &in)
	b.publish(cl, t.Render(v), payload, b.qos)
	if in.Command != nil {
		b.respond(cl, in.Command.Ref, payload)
	}
}

// CommandFailed implements ocpp.Handler.
func (b *bridge) CommandFailed(cid string, cmd *ocpp.Command, err *ocpp.GatewayError) {
	b.publishGatewayError(cid, cmd.Frame.UniqueID, cmd.Frame.Action, err, cmd.Ref)
}

// publishGatewayError publishes the final gateway error of a command on
// the charge point's error topic (and its Response Topic) and counts it.
func (b *bridge) publishGatewayError(cid, id, action string, err *ocpp.GatewayError, ref any) {
	b.gatewayErrors.add(err.Reason)
	b.log.Info("command refused", "cid", cid, "unique_id", id, "action", action, "reason", err.Reason, "error", err.Description)
	code := ocpp.OCPP16.Spell(err.Code)
	v := topic.Values{CID: cid, Action: action, ID: id, Type: int(ocpp.TypeCallError)}
	cl := b.client(cid)
	payload := appendGatewayError(nil, id, action, code, err)
	b.publish(cl, b.topics.errors.Render(v), payload, b.qos)
	b.respond(cl, ref, payload)
}

// respond publishes a command's final message to the Response Topic its
// MQTT 5 requester gave, with the same Correlation Data.
func (b *bridge) respond(cl *mqtt.Client, ref any, payload []byte) {
	r, ok := ref.(*replyTo)
	if !ok || r == nil {
		return
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: b.qos},
		TopicName:   r.topic,
		Payload:     payload,
	}
	pk.Properties.CorrelationData = r.correlation
	if b.qos > 0 {
		pk.PacketID = 1
	}
	b.inject(cl, pk)
}

// replyTarget returns the Response Topic of an MQTT 5 command when it may
// be honoured (WIRE.md): the requester may subscribe to it, and it is a
// topic name outside the mountpoint and $SYS. Others are ignored and
// counted.
func (b *bridge) replyTarget(cl *mqtt.Client, pk *packets.Packet) *replyTo {
	rt := pk.Properties.ResponseTopic
	if rt == "" || pk.ProtocolVersion != 5 {
		return nil
	}
	if strings.ContainsAny(rt, "+#\x00") || strings.HasPrefix(rt, "$") ||
		topic.Under(b.topics.mountpoint, rt) || (b.mayRead != nil && !b.mayRead(cl, rt)) {
		b.responseIgnored.Add(1)
		b.log.Info("response topic ignored", "client", cl.ID, "response_topic", rt)
		return nil
	}
	return &replyTo{topic: rt, correlation: pk.Properties.CorrelationData}
}

// Deliver is the route hook's hand-off for a publish on a downstream topic.
// It runs on the publisher's goroutine and never blocks. The returned code
// is the MQTT 5 PUBACK reason for a refusal (the hook sends it only where
// MQTT allows).
func (b *bridge) Deliver(cl *mqtt.Client, cid string, pk packets.Packet) packets.Code {
	ref := b.replyTarget(cl, &pk)
	f, bad := decodeCommand(pk.Payload)
	if bad != nil {
		b.publishGatewayError(cid, bad.uniqueID, bad.action, &ocpp.GatewayError{
			Reason: ocpp.ReasonMalformed, Code: ocpp.FormationViolation, Description: bad.why}, ref)
		return packets.ErrPayloadFormatInvalid
	}
	cmd := &ocpp.Command{Frame: f}
	if ref != nil {
		cmd.Ref = ref
	}
	if err := b.ocpp.Send(cid, cmd); err != nil {
		b.publishGatewayError(cid, f.UniqueID, cmd.Frame.Action, err, ref)
		return pubackCode(err.Reason)
	}
	return packets.CodeSuccess
}

// pubackCode maps a refusal to its MQTT 5 PUBACK reason code (WIRE.md).
// offline and timeout are reported only by the gateway error.
func pubackCode(r ocpp.Reason) packets.Code {
	switch r {
	case ocpp.ReasonQueueFull:
		return packets.ErrQuotaExceeded
	case ocpp.ReasonMalformed, ocpp.ReasonInvalidPayload, ocpp.ReasonDuplicateID, ocpp.ReasonUnknownCall:
		return packets.ErrPayloadFormatInvalid
	case ocpp.ReasonTooLarge:
		return packets.ErrPacketTooLarge
	}
	return packets.CodeSuccess
}

// publish injects a message from a virtual client. It is the one publish
// path of the gateway.
func (b *bridge) publish(cl *mqtt.Client, topicName string, payload []byte, qos byte) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topicName,
		Payload:     payload,
	}
	if qos > 0 {
		pk.PacketID = 1 // inline clients need a non-zero id; it is never acknowledged
	}
	b.inject(cl, pk)
}

// inject is where every message the gateway publishes enters the broker.
func (b *bridge) inject(cl *mqtt.Client, pk packets.Packet) {
	if err := b.mqtt.InjectPacket(cl, pk); err != nil {
		b.publishFailed.Add(1)
		b.log.Warn("publish failed", "cid", cl.ID, "topic", pk.TopicName, "error", err)
		return
	}
	b.published.Add(1)
}

// reasonCounters counts gateway errors by reason.
type reasonCounters struct {
	mu sync.Mutex
	m  map[ocpp.Reason]uint64
}

func (r *reasonCounters) add(reason ocpp.Reason) {
	r.mu.Lock()
	if r.m == nil {
		r.m = make(map[ocpp.Reason]uint64)
	}
	r.m[reason]++
	r.mu.Unlock()
}

func (r *reasonCounters) snapshot() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]uint64, len(r.m))
	for k, v := range r.m {
		out[string(k)] = v
	}
	return out
}
