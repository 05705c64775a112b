package broker

import (
	"context"
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
	// events is the admin API's event stream; roundTrip observes the
	// round trip of each command answered (metrics).
	events    *eventHub
	roundTrip func(action string, d time.Duration)

	gatewayErrors reasonCounters
	published     atomic.Uint64
	publishFailed atomic.Uint64
	denied        atomic.Uint64
	// responseIgnored counts Response Topics that were not honoured.
	responseIgnored atomic.Uint64
	// refusals samples, per MQTT connection, the log lines of the gateway
	// errors its commands cause (*mqtt.Client → *logSampler); an entry
	// lives as long as its connection.
	refusals sync.Map
	// drops samples, per subscriber, the log lines of messages mochi
	// dropped for it (*mqtt.Client → *logSampler).
	drops sync.Map
}

// logSampler decides which of a stream of similar events is logged at
// INFO: the first few, then one in every logEvery with the running count,
// so one client flooding bad commands cannot flood the log. Every event
// is still counted in Stats.
type logSampler struct{ n atomic.Uint64 }

const (
	logFirst = 10
	logEvery = 1000
)

// next counts an event and returns its level and the count so far.
func (s *logSampler) next() (slog.Level, uint64) {
	n := s.n.Add(1)
	if n <= logFirst || n%logEvery == 0 {
		return slog.LevelInfo, n
	}
	return slog.LevelDebug, n
}

// forget drops what the bridge keeps for an MQTT client that went away.
func (b *bridge) forget(cl *mqtt.Client) {
	b.refusals.Delete(cl)
	b.drops.Delete(cl)
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
	if b.events.active() {
		// The connection is current by now: its queue (commands held while
		// it was offline go out first) is part of what a live view shows.
		ci, ok := b.ocpp.ClientInfo(s.CID)
		if !ok || ci.SessionInfo != s {
			ci = ocpp.ClientInfo{SessionInfo: s, LastSeen: s.ConnectedAt}
		}
		b.events.publish(Event{Type: "connected", CID: s.CID, Time: s.ConnectedAt, Client: &ci}, nil)
	}
}

// Disconnected implements ocpp.Handler. A replaced connection publishes
// nothing: its successor is online.
func (b *bridge) Disconnected(s ocpp.SessionInfo, reason ocpp.Reason, replaced bool) {
	if !replaced {
		b.publishPresence(s, false, reason)
		if b.events.active() {
			b.events.publish(Event{Type: "disconnected", CID: s.CID, Time: time.Now(), Reason: string(reason)}, nil)
		}
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
	if in.Command != nil && b.roundTrip != nil {
		b.roundTrip(in.Action, in.RoundTrip)
	}
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

// CommandFailed implements ocpp.Handler. These failures (timeouts,
// disconnects) are bounded by the charge point's queue, so each is logged.
func (b *bridge) CommandFailed(cid string, cmd *ocpp.Command, err *ocpp.GatewayError) {
	b.log.Info("command failed", "cid", cid, "unique_id", cmd.Frame.UniqueID, "action", cmd.Frame.Action,
		"reason", err.Reason, "error", err.Description)
	b.publishGatewayError(cid, cmd.Frame.UniqueID, cmd.Frame.Action, err, cmd.Ref)
}

// refused logs a command refused on arrival, sampled per MQTT connection.
func (b *bridge) refused(cl *mqtt.Client, cid, id, action string, err *ocpp.GatewayError) {
	level, n := b.sample(cl)
	b.log.Log(context.Background(), level, "command refused", "cid", cid, "client", cl.ID, "unique_id", id, "action", action,
		"reason", err.Reason, "error", err.Description, "refused_so_far", n)
}

// sample counts one refusal caused by cl and says how to log it.
func (b *bridge) sample(cl *mqtt.Client) (slog.Level, uint64) { return sampleFor(&b.refusals, cl) }

// sampleFor counts one event of cl's in m (*mqtt.Client → *logSampler)
// and says how to log it.
func sampleFor(m *sync.Map, cl *mqtt.Client) (slog.Level, uint64) {
	v, ok := m.Load(cl)
	if !ok {
		v, _ = m.LoadOrStore(cl, new(logSampler))
	}
	return v.(*logSampler).next()
}

// publishGatewayError publishes the final gateway error of a command on
// the charge point's error topic (and its Response Topic) and counts it.
func (b *bridge) publishGatewayError(cid, id, action string, err *ocpp.GatewayError, ref any) {
	b.gatewayErrors.add(err.Reason)
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
// be honoured (docs/topics.md, "MQTT 5 request/response"): the requester may subscribe to it, and it is a
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
		level, n := b.sample(cl)
		b.log.Log(context.Background(), level, "response topic ignored", "client", cl.ID, "response_topic", rt, "refused_so_far", n)
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
	sv, p := b.ocpp.CommandValidator(cid)
	cmd, bad := decodeCommand(pk.Payload, sv, p)
	if bad != nil {
		err := &ocpp.GatewayError{Reason: ocpp.ReasonMalformed, Code: ocpp.FormationViolation, Description: bad.why}
		b.refused(cl, cid, bad.uniqueID, bad.action, err)
		b.publishGatewayError(cid, bad.uniqueID, bad.action, err, ref)
		return packets.ErrPayloadFormatInvalid
	}
	if ref != nil {
		cmd.Ref = ref
	}
	if err := b.ocpp.Send(cid, &cmd); err != nil {
		b.refused(cl, cid, cmd.Frame.UniqueID, cmd.Frame.Action, err)
		b.publishGatewayError(cid, cmd.Frame.UniqueID, cmd.Frame.Action, err, ref)
		return pubackCode(err.Reason)
	}
	return packets.CodeSuccess
}

// pubackCode maps a refusal to its MQTT 5 PUBACK reason code (docs/topics.md, "Gateway errors").
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

// dropLog is the broker's own small mochi hook: it logs the messages
// mochi drops for a subscriber whose queue is full, which mochi does
// silently, sampled per subscriber. Counting is mochi's (Stats.MQTTDropped).
type dropLog struct {
	mqtt.HookBase
	bridge *bridge
}

// ID names the hook in mochi's logs.
func (h *dropLog) ID() string { return "chargemq-drops" }

// Provides tells mochi the hook handles dropped publishes only.
func (h *dropLog) Provides(b byte) bool { return b == mqtt.OnPublishDropped }

// OnPublishDropped logs a message lost to a subscriber that fell behind.
func (h *dropLog) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	level, n := sampleFor(&h.bridge.drops, cl)
	if level == slog.LevelInfo {
		level = slog.LevelWarn
	}
	h.bridge.log.Log(context.Background(), level, "message dropped: subscriber too slow (mqtt.max_queued_messages waiting)",
		"client", cl.ID, "topic", pk.TopicName, "dropped_so_far", n)
}
