package access

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// AuthResult is Options.Authenticate's answer to a CONNECT.
type AuthResult struct {
	// OK admits the client.
	OK bool
	// Identity is what the hook keeps for an admitted client's session and passes back to
	// MayPublish, MaySubscribe and Disconnect's match: typically the broker's user record. It is
	// opaque to the hook; a pointer lets a users-file reload tell the old record from its
	// replacement. Ignored unless OK.
	Identity any
	// RetryAfter, when the client is refused and it is positive, marks the refusal as a back-off
	// (too many failed logins from this address and username): the client gets "connection rate
	// exceeded" instead of "bad username or password", MQTT 5 clients with a reason string that
	// says when to retry.
	RetryAfter time.Duration
	// Reason says why the client was refused, for OnAuthFailed (logs, metrics). It is never sent
	// to the client, since "unknown user" against "wrong password" would help a guesser.
	Reason string
}

// session is what the hook keeps of an authenticated session.
type session struct {
	// cl is the connection that authenticated the session. A connection that has been taken
	// over no longer matches, so it cannot act with its successor's identity.
	cl       *mqtt.Client
	identity any
}

// OnConnect authenticates the client with Options.Authenticate and checks its Will topic, and
// refuses the CONNECT with a CONNACK of its own: mochi's OnConnectAuthenticate can only answer
// "bad username or password", and answering here cannot be overridden by another hook (mochi ORs
// their OnConnectAuthenticate answers). mochi publishes Will messages without an ACL check (and
// without the $SYS check it applies to publishes), so without the Will check a client could
// forge a charge point's presence or upstream messages by disconnecting, or publish where its
// user may not; a Will the client may not publish gets CONNACK "not authorized" (v5 0x87, v3.1.1
// return code 5), as [MQTT-3.2.2-3] allows for a refused CONNECT. The answer to bad credentials
// comes before the Will's.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	for {
		gen := h.generation()
		identity, err := h.authenticate(cl, pk)
		if err != nil {
			return err
		}
		if err := h.checkWill(cl, identity, pk); err != nil {
			return err
		}
		if h.opts.Authenticate == nil || h.admit(cl, identity, gen) {
			return nil
		}
		// Disconnect ran while Authenticate was deciding, maybe against users the broker has
		// since removed or changed: ask again.
	}
}

// authenticate runs Options.Authenticate for cl and, when it refuses, answers the CONNACK and
// returns the error that makes mochi drop the connection.
func (h *Hook) authenticate(cl *mqtt.Client, pk packets.Packet) (any, error) {
	if h.opts.Authenticate == nil || cl.Net.Inline {
		return nil, nil
	}
	res := h.opts.Authenticate(cl, pk.Connect.Username, pk.Connect.Password)
	if res.OK {
		return res.Identity, nil
	}
	if h.opts.OnAuthFailed != nil {
		h.opts.OnAuthFailed(cl, res)
	}
	if res.RetryAfter > 0 {
		secs := (res.RetryAfter + time.Second - 1) / time.Second
		reason := fmt.Sprintf("%s, retry after %ds", packets.ErrConnectionRateExceeded.Reason, secs)
		return nil, refuse(cl, packets.ErrConnectionRateExceeded, packets.Err3NotAuthorized, reason)
	}
	// mochi answers 3.1.1 clients 5 "not authorized" here; 4 is 3.1.1's "bad user name or
	// password" and keeps a back-off (5) distinguishable.
	return nil, refuse(cl, packets.ErrBadUsernameOrPassword, packets.ErrMalformedUsernameOrPassword, packets.ErrBadUsernameOrPassword.Reason)
}

// checkWill refuses a CONNECT whose Will topic the client, authenticated as identity, could not
// publish to.
func (h *Hook) checkWill(cl *mqtt.Client, identity any, pk packets.Packet) error {
	if !pk.Connect.WillFlag {
		return nil
	}
	topic := pk.Connect.WillTopic
	if topic != "" && mqtt.IsValidFilter(topic, true) && h.mayWriteAs(identity, cl.ID, topic) {
		return nil
	}
	h.denied(cl.ID, topic)
	return refuse(cl, packets.ErrNotAuthorized, packets.Err3NotAuthorized, "will topic not authorized")
}

// refuse answers a CONNECT with code v5 (MQTT 5, with reason) or v3 (3.1.1) and returns v5 as the
// error for mochi, which then closes the connection without a CONNACK of its own.
func refuse(cl *mqtt.Client, v5, v3 packets.Code, reason string) error {
	ack := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connack},
		ReasonCode:  v5.Code,
		Properties:  packets.Properties{ReasonString: reason},
	}
	if cl.Properties.ProtocolVersion < 5 {
		ack.ReasonCode = v3.Code
	}
	_ = cl.WritePacket(ack) // the connection is closed next either way
	return v5
}

// generation returns the count of Disconnect calls so far.
func (h *Hook) generation() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.gen
}

// admit keeps identity for cl until its session is established, unless a Disconnect call began
// after gen; it reports whether it did. It also forgets admitted clients that closed before their
// session was established (another hook refused them after this one), which mochi tells no hook.
func (h *Hook) admit(cl *mqtt.Client, identity any, gen uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen != gen {
		return false
	}
	for c := range h.pending {
		if c.Closed() {
			delete(h.pending, c)
		}
	}
	h.pending[cl] = identity
	return true
}

// OnSessionEstablish makes the identity that OnConnect admitted the session's. mochi calls it
// before the client can receive anything and before it inherits an earlier session of its client
// id, whose identity this one replaces: the subscriptions it inherits are read with the new
// user's rights.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	identity, ok := h.pending[cl]
	if !ok {
		return // revoked by Disconnect since OnConnect: the client is closing
	}
	delete(h.pending, cl)
	h.sessions[cl.ID] = session{cl: cl, identity: identity}
}

// OnDisconnect forgets the identity of a session that ends with its connection. A session that
// outlives its connection (v3.1.1 clean session false, v5 session expiry) keeps it, so that
// messages queued for it are checked against its user, until mochi expires it (OnClientExpired)
// or a new connection takes it over.
func (h *Hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, cl)
	if expire {
		h.forget(cl)
	}
}

// OnClientExpired forgets the identity of a session that mochi expired.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.forget(cl)
}

// forget drops cl's session unless another connection has taken it over. h.mu must be held.
func (h *Hook) forget(cl *mqtt.Client) {
	if s, ok := h.sessions[cl.ID]; ok && s.cl == cl {
		delete(h.sessions, cl.ID)
	}
}

// identity returns the identity cl's session was authenticated as, and false when cl has none
// (it is not the session's connection, or Disconnect revoked it). Without Options.Authenticate
// every client has the nil identity.
func (h *Hook) identity(cl *mqtt.Client) (any, bool) {
	if h.opts.Authenticate == nil {
		return nil, true
	}
	h.mu.RLock()
	s, ok := h.sessions[cl.ID]
	h.mu.RUnlock()
	if !ok || s.cl != cl {
		return nil, false
	}
	return s.identity, true
}

// Disconnect revokes every session whose identity and client id match accepts, so that the broker
// can enforce a users-file reload on clients already connected: call it after the new users are
// in place, with a match that accepts identities that were removed or changed. A revoked client
// that is connected is closed (MQTT 5: DISCONNECT 0x87 "not authorized"; 3.1.1, which has no
// server DISCONNECT: the connection is closed) without publishing its Will, which its old user
// was allowed; an offline session may do and receive nothing more until a client authenticates
// for it again. A client still connecting is closed, or authenticated again if Authenticate has
// not answered yet. It returns the number of connections it closed, once their DISCONNECTs are
// written (a peer that reads nothing delays that up to its connection's write deadline).
//
// match runs with the hook's lock held, on the caller's goroutine: it must be quick and must not
// call the Hook. Disconnect does nothing without Options.Authenticate: there are no identities.
func (h *Hook) Disconnect(match func(identity any, clientID string) bool) int {
	if h.opts.Authenticate == nil {
		return 0
	}
	var connected, connecting []*mqtt.Client
	h.mu.Lock()
	h.gen++
	for id, s := range h.sessions {
		if match(s.identity, id) {
			delete(h.sessions, id)
			if !s.cl.Closed() {
				connected = append(connected, s.cl)
			}
		}
	}
	for cl, identity := range h.pending {
		if match(identity, cl.ID) {
			delete(h.pending, cl)
			connecting = append(connecting, cl)
		}
	}
	h.mu.Unlock()

	for _, cl := range connecting {
		cl.Stop(packets.ErrNotAuthorized) // no CONNACK yet: mochi's fails to be written
	}
	var wg sync.WaitGroup
	for _, cl := range connected {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kick(cl)
		}()
	}
	wg.Wait()
	return len(connected) + len(connecting)
}

// kick closes a revoked client's connection, telling an MQTT 5 client why, and keeps mochi from
// publishing its Will, which mochi reads atomically before it sends one.
func kick(cl *mqtt.Client) {
	atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	if cl.Properties.ProtocolVersion >= 5 {
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Disconnect},
			ReasonCode:  packets.ErrNotAuthorized.Code,
			Properties:  packets.Properties{ReasonString: packets.ErrNotAuthorized.Reason},
		})
	}
	cl.Stop(packets.ErrNotAuthorized)
}
