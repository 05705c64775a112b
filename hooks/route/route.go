// Package route is the mochi hook that turns publishes on downstream topics (by default
// "ocpp/cs/{cid}") into commands for charge points.
//
// mochi runs OnPublish on the publisher's goroutine, after the ACL and before the message is
// retained or fanned out. The hook hands the command to a Deliver function there, synchronously,
// so that an MQTT 5 QoS 1 publisher can get a negative PUBACK when the command cannot be accepted;
// Deliver must therefore never block. The command is also fanned out to MQTT subscribers as usual
// (e.g. to "ocpp/cs/#" for auditing), but never stored as retained: a command must not replay on
// the next subscription or after a restart.
//
// The hook knows mochi and nothing else of chargemq: the topic matcher and Deliver arrive in
// Options.
package route

import (
	"errors"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Options configure a Hook. They are copied by New and never changed afterwards.
type Options struct {
	// Match reports whether topic is a downstream topic and returns the charge point id in it.
	// Required. It runs on every publish: it must be fast and should not allocate.
	Match func(topic string) (cid string, ok bool)
	// Deliver hands a command to the charge point cid. cl is the publisher, pk the publish (with
	// Retain already cleared). It runs on the publisher's goroutine and must never block. It
	// returns packets.CodeSuccess or a reason code ≥ 0x80 (e.g. 0x97 quota exceeded, 0x99
	// payload format invalid) that an MQTT 5 QoS 1 publisher receives in its PUBACK. Required.
	Deliver func(cl *mqtt.Client, cid string, pk packets.Packet) packets.Code
	// GatewayListener is the listener id of the gateway's virtual charge-point clients ("ocpp").
	// Their publishes are never routed, so that nothing the gateway publishes can loop back down
	// as a command; other inline clients (an embedding product) are routed. Required.
	GatewayListener string
	// Disconnected, if set, is told when an MQTT client's connection ends, so that what Deliver
	// keeps per client (such as log sampling state) is dropped with it. It runs on the client's
	// goroutine and must not block.
	Disconnected func(cl *mqtt.Client)
}

// ErrOptions is returned by New for incomplete Options.
var ErrOptions = errors.New("route: invalid options")

// Hook is the mochi hook that routes downstream publishes to Options.Deliver. Install it with
// server.AddHook(h, nil).
type Hook struct {
	mqtt.HookBase
	opts Options
}

// New returns a Hook for opts; Match, Deliver and GatewayListener are required, because without
// them commands would be silently dropped or could loop.
func New(opts Options) (*Hook, error) {
	switch {
	case opts.Match == nil:
		return nil, errors.Join(ErrOptions, errors.New("route: Options.Match is required"))
	case opts.Deliver == nil:
		return nil, errors.Join(ErrOptions, errors.New("route: Options.Deliver is required"))
	case opts.GatewayListener == "":
		return nil, errors.Join(ErrOptions, errors.New("route: Options.GatewayListener is required"))
	}
	return &Hook{opts: opts}, nil
}

// ID names the hook in mochi's logs.
func (h *Hook) ID() string { return "chargemq-route" }

// Provides tells mochi which events the hook handles: publishes, and Wills, which mochi sends
// without OnPublish.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublish, mqtt.OnWill, mqtt.OnWillSent:
		return true
	case mqtt.OnDisconnect:
		return h.opts.Disconnected != nil
	}
	return false
}

// OnDisconnect tells Options.Disconnected that cl's connection ended.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if h.opts.Disconnected != nil {
		h.opts.Disconnected(cl)
	}
}

// OnPublish delivers a downstream publish and returns it with Retain cleared, which keeps mochi
// from storing it (mochi retains the packet OnPublish returns). When Deliver refuses the command
// and the publisher is MQTT 5 at QoS 1, OnPublish returns the reason code as its error: mochi then
// answers with that PUBACK reason code and does not fan the message out. It does not do so for QoS
// 2 (mochi would answer with a PUBACK instead of a PUBREC, breaking the QoS 2 flow) nor for MQTT
// 3.1.1 (mochi would ignore the code and publish the original, still retained, packet); there the
// refusal is reported by Deliver's caller on the Reply topic only. Note that mochi logs every such
// error return at Error level ("publish packet error"). Other topics are returned untouched.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if h.isGateway(cl) {
		return pk, nil
	}
	cid, ok := h.opts.Match(pk.TopicName)
	if !ok {
		return pk, nil
	}
	pk.FixedHeader.Retain = false // docs/topics.md "Downstream": a command is never stored as retained
	code := h.opts.Deliver(cl, cid, pk)
	if code.Code >= packets.ErrUnspecifiedError.Code &&
		cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos == 1 {
		return pk, code
	}
	return pk, nil
}

// OnWill clears Retain on a Will aimed at a downstream topic. mochi sends Wills without
// OnPublish, and would otherwise store a retained Will command that replays to every new
// subscriber.
func (h *Hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if h.isGateway(cl) {
		return will, nil
	}
	if _, ok := h.opts.Match(will.TopicName); ok {
		will.Retain = false
	}
	return will, nil
}

// OnWillSent delivers a Will published on a downstream topic, so that a Will is a command like
// any other publish there. It fires when mochi actually sends the Will (after any Will Delay);
// there is no PUBACK, so Deliver's code is not reported. (mochi does not call it for a delayed
// Will whose session has expired meanwhile; such a Will reaches subscribers only.)
func (h *Hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if h.isGateway(cl) {
		return
	}
	if cid, ok := h.opts.Match(pk.TopicName); ok {
		pk.FixedHeader.Retain = false
		h.opts.Deliver(cl, cid, pk)
	}
}

// isGateway tells the gateway's own virtual clients by what they are, never by client id.
func (h *Hook) isGateway(cl *mqtt.Client) bool {
	return cl.Net.Inline && cl.Net.Listener == h.opts.GatewayListener
}
