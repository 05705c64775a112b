// Package access is chargemq's one authentication and ACL hook for the embedded mochi broker.
//
// Two rules decide what an MQTT client may do, and a client must pass both:
//
//   - The gateway's rule, which nothing overrides. The gateway's topics live under a mountpoint
//     ("ocpp/"). Upstream, Reply and presence topics are written only by the gateway, through the
//     charge points' virtual clients; MQTT clients may write the downstream (command) topics and
//     nothing else under the mountpoint, admin or not, so that nobody can forge a charge point's
//     messages or presence.
//   - The user's ACL, which the broker supplies as functions in Options: Authenticate decides
//     each CONNECT and names the client's identity (its user), MayPublish and MaySubscribe answer
//     for that identity. Without them every client connects and reading is open.
//
// The hook knows mochi and nothing of the rest of chargemq: what a downstream topic is, who the
// users are and what they may do arrive as functions in Options.
package access

import (
	"errors"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Options configure a Hook. They are copied by New and never changed afterwards. The functions
// run on the goroutine of the client concerned (Disconnect's caller excepted) and are called
// without the hook's lock held.
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
	// spoofing attempts. It runs on the client's goroutine and must not block. Refused reads are
	// not reported: a refused delivery is no attempt of the client's.
	OnDenied func(clientID, topic string)

	// Authenticate, if set, decides every CONNECT of a network client (inline clients never
	// CONNECT), before its Will is checked, so that a stranger learns nothing of the ACL. It gets
	// the client (cl.ID, cl.Net.Remote and cl.Net.Listener are set, e.g. to key a back-off or to
	// bind client ids to users) and the CONNECT's username and password, nil when absent; it must
	// not keep password. The Identity of an OK result is kept for the client's session and handed
	// to MayPublish, MaySubscribe and Disconnect. A refusal answers CONNACK "bad username or
	// password" (v5 0x86, v3.1.1 4), or for a back-off (RetryAfter > 0) "connection rate exceeded"
	// (v5 0x9F, v3.1.1 5 "not authorized", which has no better code). It may be slow (a password
	// hash): it holds up only this client. It is called again for the same CONNECT if
	// Hook.Disconnect runs meanwhile, so that a user removed by a reload cannot slip in. Nil admits
	// every client with a nil identity.
	Authenticate func(cl *mqtt.Client, username, password []byte) AuthResult
	// MayPublish, if set, is the user's write ACL: whether the client authenticated as identity
	// may publish to topic (or name topic as its Will). It is asked only for writes the gateway's
	// rule allows, so answering true for everything makes an admin who still cannot forge the
	// gateway's topics. Inline clients are never asked about. Nil allows what the gateway allows.
	MayPublish func(identity any, clientID, topic string) bool
	// MaySubscribe, if set, is the user's read ACL. mochi asks it with a topic filter on SUBSCRIBE
	// (a shared subscription's "$share/<group>/" prefix removed first) and again with the topic
	// of each message delivered to the client, which is how a resumed session, or one whose
	// subscriptions were made by an earlier user of its client id, is kept to this user's rights.
	// A topic is a filter without wildcards: an implementation must allow every topic that a
	// filter it allows matches, or the subscriber gets a granted SUBACK and no messages. Covers
	// is such a test for a pattern. Inline clients are never asked about. Nil allows every read.
	MaySubscribe func(identity any, clientID, filter string) bool
	// OnAuthFailed, if set, is called for every CONNECT that Authenticate refused, with its
	// answer, e.g. to log the remote address or count refusals. It never sees the password.
	OnAuthFailed func(cl *mqtt.Client, res AuthResult)
}

// ErrOptions is returned by New for incomplete Options.
var ErrOptions = errors.New("access: invalid options")

// Hook is the mochi auth/ACL hook. Install it with server.AddHook(h, nil); since mochi ORs the
// answers of all ACL hooks, it must be the only one that answers ACL checks. It keeps each
// authenticated session's identity from CONNECT until mochi ends the session, so that the ACL
// can answer for the user behind a client; it holds nothing when Options.Authenticate is nil.
type Hook struct {
	mqtt.HookBase
	opts Options

	mu sync.RWMutex
	// pending holds the identities of clients that OnConnect admitted and whose session
	// OnSessionEstablish has not yet registered.
	pending map[*mqtt.Client]any
	// sessions holds, by client id, the identity of each session mochi keeps, connected or not.
	sessions map[string]session
	// gen counts Disconnect calls, so that OnConnect can tell whether one ran while it was
	// authenticating (against users the broker may since have removed).
	gen uint64
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
	return &Hook{opts: opts, pending: map[*mqtt.Client]any{}, sessions: map[string]session{}}, nil
}

// ID names the hook in mochi's logs.
func (h *Hook) ID() string { return "chargemq-access" }

// Provides tells mochi which events the hook handles: connection authentication, the Will check
// at CONNECT and the ACL; with Options.Authenticate also the session events by which it keeps
// and drops each session's identity.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck:
		return true
	case mqtt.OnSessionEstablish, mqtt.OnDisconnect, mqtt.OnClientExpired:
		return h.opts.Authenticate != nil
	}
	return false
}

// OnConnectAuthenticate admits every client that reaches it: OnConnect, which mochi calls first,
// has already refused the others with a CONNACK of its own, since mochi's answer here can only
// be "bad username or password".
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool { return true }

// OnACLCheck answers mochi's ACL questions. A write (a publish's topic) must pass the gateway's
// rule and MayPublish; a read (a filter on SUBSCRIBE, a topic on each delivery) must pass
// MaySubscribe. The gateway's own virtual clients may write anywhere (mochi skips the write check
// for inline clients today; this keeps that true if it stops), other inline clients only where
// the gateway's rule allows, and every inline client may read. With Options.Authenticate, a
// network client without a session identity (revoked by Disconnect, or restored from a store
// before it reconnected) may do nothing. Topics starting with '$' are passed to the user's ACL
// like others; mochi itself refuses publishes to $SYS.
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if !write {
		return h.mayRead(cl, topic)
	}
	if h.mayWrite(cl, topic) {
		return true
	}
	h.denied(cl.ID, topic)
	return false
}

// mayWrite is the write rule of publishes.
func (h *Hook) mayWrite(cl *mqtt.Client, topic string) bool {
	if cl.Net.Inline {
		return cl.Net.Listener == h.opts.GatewayListener || h.gatewayAllows(topic)
	}
	identity, ok := h.identity(cl)
	return ok && h.mayWriteAs(identity, cl.ID, topic)
}

// mayWriteAs is the write rule of a network client authenticated as identity, shared by
// publishes and Wills.
func (h *Hook) mayWriteAs(identity any, clientID, topic string) bool {
	if topic == "" {
		// An MQTT 5 publish that names its topic only by alias: mochi checks the ACL before it
		// resolves the alias, and an alias is only ever bound by a publish of this connection
		// that passed this check.
		return true
	}
	if !h.gatewayAllows(topic) {
		return false
	}
	return h.opts.MayPublish == nil || h.opts.MayPublish(identity, clientID, topic)
}

// gatewayAllows is the gateway's rule for clients other than its own: under the mountpoint only
// downstream topics.
func (h *Hook) gatewayAllows(topic string) bool {
	return !strings.HasPrefix(topic, h.opts.Mountpoint) || h.opts.IsDownstream(topic)
}

// mayRead is the read rule of subscriptions and deliveries.
func (h *Hook) mayRead(cl *mqtt.Client, filter string) bool {
	if cl.Net.Inline {
		return true
	}
	identity, ok := h.identity(cl)
	if !ok {
		return false
	}
	return h.opts.MaySubscribe == nil || h.opts.MaySubscribe(identity, cl.ID, unshare(filter))
}

// denied reports a refused write to Options.OnDenied.
func (h *Hook) denied(clientID, topic string) {
	if h.opts.OnDenied != nil {
		h.opts.OnDenied(clientID, topic)
	}
}

// unshare returns the filter of a shared subscription ("$share/<group>/<filter>", prefix in any
// case as mochi accepts it) and any other filter unchanged: a shared subscription reads the same
// topics as its filter.
func unshare(filter string) string {
	parts := strings.SplitN(filter, "/", 3)
	if len(parts) == 3 && strings.EqualFold(parts[0], mqtt.SharePrefix) {
		return parts[2]
	}
	return filter
}
