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

// gatewayClientID is the origin of the messages the gateway itself
// publishes about a charge point (gateway errors).
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
// Every publish goes through inject, the one path a bridge to a cloud
// cluster or a metrics tap can hook.
//
// A charge point's virtual client is an identity, not a resident mochi
// client: mochi gives every client an outbound queue (8 KiB here) that an
// inline client never uses, a third of what a connected charge point would
// otherwise cost. So a small pool of inline clients serves all charge
// points, each taking the charge point's id for the length of one publish.
// Hooks and ACLs see exactly what a resident client would show them: the
// id, inline, on the ocpp listener. mochi keeps no reference to the
// publishing client after InjectPacket returns (inline publishes are never
// in flight), which is what makes the reuse safe.
type bridge struct {
	mqtt    *mqtt.Server
	ocpp    *ocpp.Server
	topics  topics
	qos     byte
	log     *slog.Logger
	clients sync.Pool // of *mqtt.Client

	// mayRead is the ACL's read check, for MQTT 5 Response Topics.
	mayRead func(cl *mqtt.Client, topic string) bool

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

func newBridge(srv *mqtt.Server, t topics, qos byte, log *slog.Logger) *bridge {
	b := &bridge{mqtt: srv, topics: t, qos: qos, log: log}
	b.clients.New = func() any {
		// MQTT 5, so that properties (correlation data) survive injection.
		cl := srv.NewClient(nil, gatewayListener, "", true)
		cl.Properties.ProtocolVersion = 5
		return cl
	}
	return b
}

// Connected implements ocpp.Handler.
func (b *bridge) Connected(s ocpp.SessionInfo) {
	b.publishPresence(s, true, "")
}

// Disconnected implements ocpp.Handler. A replaced connection publishes
// nothing: its successor is online.
func (b *bridge) Disconnected(s ocpp.SessionInfo, reason ocpp.Reason, replaced bool) {
	if !replaced {
		b.publishPresence(s, false, reason)
	}
}

// publishPresence publishes the retained presence of a charge point. The
// ocpp server calls Connected and Disconnected in order per charge point,
// so the retained message is always the charge point's current state.
func (b *bridge) publishPresence(s ocpp.SessionInfo, online bool, reason ocpp.Reason) {
	b.inject(s.CID, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName:   b.topics.presence.Render(topic.Values{CID: s.CID}),
		Payload:     appendPresence(nil, s, online, reason, time.Now()),
		PacketID:    1,
	})
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
	payload := appendUpstream(nil, &in)
	b.publish(s.CID, t.Render(v), payload)
	if in.Command != nil {
		b.respond(s.CID, in.Command.Ref, payload)
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
	payload := appendGatewayError(nil, id, action, code, err)
	b.publish(gatewayClientID, b.topics.errors.Render(v), payload)
	b.respond(gatewayClientID, ref, payload)
}

// respond publishes a command's final message to the Response Topic its
// MQTT 5 requester gave, with the same Correlation Data.
func (b *bridge) respond(origin string, ref any, payload []byte) {
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
	b.inject(origin, pk)
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

// publish publishes a message of the gateway's, from origin's virtual
// client, at the upstream QoS.
func (b *bridge) publish(origin, topicName string, payload []byte) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: b.qos},
		TopicName:   topicName,
		Payload:     payload,
	}
	if b.qos > 0 {
		pk.PacketID = 1 // inline clients need a non-zero id; it is never acknowledged
	}
	b.inject(origin, pk)
}

// inject is where every message the gateway publishes enters the broker,
// from the virtual client of origin (a charge point id, or the gateway's).
func (b *bridge) inject(origin string, pk packets.Packet) {
	cl := b.clients.Get().(*mqtt.Client)
	cl.ID = origin
	err := b.mqtt.InjectPacket(cl, pk)
	cl.ID = ""
	b.clients.Put(cl)
	if err != nil {
		b.publishFailed.Add(1)
		b.log.Warn("publish failed", "cid", origin, "topic", pk.TopicName, "error", err)
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
