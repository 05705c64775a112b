// Package access is chargemq's one authentication and ACL hook for the embedded mochi broker.
//
// The gateway's topics live under a mountpoint ("ocpp/"). Upstream, Reply and presence topics
// are written only by the gateway, through the charge points' virtual clients; MQTT clients may
// write the downstream (command) topics and nothing else under the mountpoint, so that nobody can
// forge a charge point's messages or presence. Reading is open. There are no MQTT users yet:
// every client may connect.
//
// The hook knows mochi and nothing of the rest of chargemq: what a downstream topic is arrives
// as a function in Options.
package access

import (
	"errors"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Options configure a Hook. They are copied by New and never changed afterwards.
type Options struct {
	// Mountpoint is the prefix of the gateway's topics (e.g. "ocpp/"); writes under it are
	// refused unless IsDownstream accepts the topic. An empty mountpoint covers every topic.
	Mountpoint string
	// IsDownstream reports whether topic is a downstream (MQTT → charge point) topic, which MQTT
	// clients may publish to. Required. It runs on the publisher's goroutine: keep it fast.
	IsDownstream func(topic string) bool
	// GatewayListener is the listener id the broker gives its virtual charge-point clients
	// ("ocpp"). A client is the gateway's when it is inline and on this listener — never by
	// client id, so a real client named like a charge point gets no gateway rights. Required.
	GatewayListener string
	// OnDenied, if set, is called for every refused write (publish or Will topic), e.g. to count
	// spoofing attempts. It runs on the client's goroutine and must not block.
	OnDenied func(clientID, topic string)
}

// ErrOptions is returned by New for incomplete Options.
var ErrOptions = errors.New("access: invalid options")

// Hook is the mochi auth/ACL hook. Install it with server.AddHook(h, nil); since mochi ORs the
// answers of all ACL hooks, it must be the only one that answers ACL checks.
type Hook struct {
	mqtt.HookBase
	opts Options
}

// New returns a Hook for opts. It fails if IsDownstream or GatewayListener is missing, since
// the hook would then either refuse every command or fail to recognise the gateway.
func New(opts Options) (*Hook, error) {
	if opts.IsDownstream == nil {
		return nil, errors.Join(ErrOptions, errors.New("access: Options.IsDownstream is required"))
	}
	if opts.GatewayListener == "" {
		return nil, errors.Join(ErrOptions, errors.New("access: Options.GatewayListener is required"))
	}
	return &Hook{opts: opts}, nil
}

// ID names the hook in mochi's logs.
func (h *Hook) ID() string { return "chargemq-access" }

// Provides tells mochi which events the hook handles: connection authentication, the Will check
// at CONNECT and the ACL.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck:
		return true
	}
	return false
}

// OnConnectAuthenticate admits every client: chargemq has no MQTT users yet.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool { return true }

// OnConnect refuses a CONNECT whose Will topic the client could not publish to. mochi publishes
// Will messages without an ACL check (and without the $SYS check it applies to publishes), so
// without this a client could forge a charge point's presence or upstream messages by
// disconnecting. The client gets CONNACK "not authorized" (v5 0x87, v3.1.1 return code 5), as
// [MQTT-3.2.2-3] allows for a refused CONNECT.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if !pk.Connect.WillFlag {
		return nil
	}
	topic := pk.Connect.WillTopic
	if topic != "" && mqtt.IsValidFilter(topic, true) && h.mayWrite(cl, topic) {
		return nil
	}
	if h.opts.OnDenied != nil {
		h.opts.OnDenied(cl.ID, topic)
	}
	code := packets.ErrNotAuthorized
	if cl.Properties.ProtocolVersion < 5 {
		code = packets.Err3NotAuthorized
	}
	ack := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connack},
		ReasonCode:  code.Code,
		Properties:  packets.Properties{ReasonString: "will topic not authorized"},
	}
	_ = cl.WritePacket(ack) // the connection is closed next either way
	return packets.ErrNotAuthorized
}

// OnACLCheck allows every read (topic filters on SUBSCRIBE, topics on delivery) and refuses
// writes under the mountpoint except to downstream topics. The gateway's own virtual clients may
// write anywhere (mochi skips the write check for inline clients today; this keeps that true if it
// stops). Topics starting with '$' are mochi's business and not checked here.
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if !write || h.mayWrite(cl, topic) {
		return true
	}
	if h.opts.OnDenied != nil {
		h.opts.OnDenied(cl.ID, topic)
	}
	return false
}

// mayWrite is the write rule shared by publishes and Wills.
func (h *Hook) mayWrite(cl *mqtt.Client, topic string) bool {
	switch {
	case cl.Net.Inline && cl.Net.Listener == h.opts.GatewayListener:
		return true
	case topic == "":
		// An MQTT 5 publish that names its topic only by alias: mochi checks the ACL before it
		// resolves the alias, and an alias is only ever bound by a publish that passed this check.
		return true
	case !strings.HasPrefix(topic, h.opts.Mountpoint):
		return true
	}
	return h.opts.IsDownstream(topic)
}
