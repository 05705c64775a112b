package ocpp

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// AuthRequest is what a charge point presents at the WebSocket handshake,
// handed to Options.Authenticate: OCPP security profile 1 (and 2, over
// TLS) is HTTP Basic authentication at the handshake, the charge point id
// as the username and its AuthorizationKey as the password [OCPP 1.6
// Security Whitepaper, security profiles 1 and 2].
// The server declares it so that the ocpp package needs nothing of the
// broker's users database.
//
// Password is the secret itself: an authenticator compares it and forgets
// it, and never logs it. String and LogValue leave it out, so that a
// request printed or logged by mistake does not leak it.
type AuthRequest struct {
	// CID is the charge point id from the URL path, already checked.
	CID string
	// Username and Password are the user-id (up to the first ':') and the
	// password of the Basic credentials; empty without credentials.
	Username, Password string
	// RemoteIP is the address the request came from, without the port,
	// for a back-off per address.
	RemoteIP string
	// HasCredentials is false when the request carried no Authorization
	// header, or one that is not well-formed Basic credentials (RFC 7617):
	// both are "no credentials", and an authenticator that requires them
	// refuses the charge point.
	HasCredentials bool
	// Profile is the OCPP security profile the connection meets: 1 over
	// plain TCP, 2 over TLS, 3 over TLS with a client certificate the TLS
	// listener verified [OCPP 1.6 Security Whitepaper §2; 2.0.1 A00].
	Profile int
	// Certificate is the verified client certificate of a profile 3
	// connection (the leaf of its first verified chain); nil below 3.
	Certificate *x509.Certificate
}

// securityProfile tells the profile of a request from its TLS state: a
// certificate counts only when the TLS stack verified it against the
// client CA (a listener that merely requests one would otherwise let any
// self-signed certificate through).
func securityProfile(cs *tls.ConnectionState) (int, *x509.Certificate) {
	switch {
	case cs == nil:
		return 1, nil
	case len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0:
		return 3, cs.VerifiedChains[0][0]
	default:
		return 2, nil
	}
}

// String describes the request without its password.
func (a AuthRequest) String() string {
	return "AuthRequest{CID:" + strconv.Quote(a.CID) + " Username:" + strconv.Quote(a.Username) +
		" RemoteIP:" + strconv.Quote(a.RemoteIP) + " HasCredentials:" + strconv.FormatBool(a.HasCredentials) +
		" Profile:" + strconv.Itoa(a.Profile) + "}"
}

// LogValue implements slog.LogValuer: the request without its password.
func (a AuthRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("cid", a.CID), slog.String("username", a.Username),
		slog.String("remote_ip", a.RemoteIP), slog.Bool("has_credentials", a.HasCredentials),
		slog.Int("profile", a.Profile))
}

// AuthResult is Options.Authenticate's decision. A refusal with RetryAfter
// > 0 means the caller is in a failed-login back-off: it is answered 429
// with Retry-After (rounded up to whole seconds) rather than 401, so a
// charge point that honours it stops hammering, and the authenticator was
// spared the password check. Any other refusal is answered 401 with
// WWW-Authenticate: Basic realm="chargemq". Reason is a short word for
// logs and metrics (the broker's are "no_credentials", "bad_credentials",
// "username_mismatch" and "backoff"): it is logged, never sent to the
// charge point (telling an unknown user from a wrong password would help a
// guesser), and must never carry a secret.
//
// Forbidden answers 403 instead of 401: the charge point is known (its
// certificate verified) but may not connect this way (a certificate
// naming another charge point, a profile below the user's minimum), so
// asking it for Basic credentials would be misleading.
//
// BootSerial, on an admitted profile 3 connection, binds the certificate
// to the charge point by serial number, as OCPP words the rule (2.0.1
// A00.FR.405: the certificate's CN is the charge point's serial number).
// Until a BootNotification whose chargePointSerialNumber equals
// BootSerial arrives, the connection is neither attached (no presence,
// no takeover, no commands) nor forwarded: its other calls are answered
// SecurityError, its answers dropped and counted. A BootNotification with
// another serial, or none, is answered Rejected by the gateway itself and
// closed with 1008, reason auth_failed; so is a connection that sends
// none within idle_timeout.
type AuthResult struct {
	OK         bool
	RetryAfter time.Duration
	Reason     string
	Forbidden  bool
	BootSerial string
}

// authRealm is the protection space the 401's WWW-Authenticate header
// names (RFC 7617 §2), as WIRE.md and charge point setups expect it.
const authRealm = "chargemq"

// maxAuthorizationLen bounds the Authorization header the server decodes.
// Real credentials are tens of bytes (an AuthorizationKey is 16 to 20
// bytes, 40 in hex; an identity rarely more than 48), so they fit many
// times over; a longer header is taken for no credentials instead of
// being decoded and handed on.
const maxAuthorizationLen = 1 << 10

// authenticate applies Options.Authenticate to the request and, when it
// refuses, answers the handshake (401 or 429). It returns the username to
// record in SessionInfo. Neither the password nor the Authorization
// header is logged; the username is.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, cid, ip string, profile int, cert *x509.Certificate) (username string, res AuthResult) {
	if s.opts.Authenticate == nil {
		return "", AuthResult{OK: true}
	}
	req := AuthRequest{CID: cid, RemoteIP: ip, Profile: profile, Certificate: cert}
	req.Username, req.Password, req.HasCredentials = basicCredentials(r.Header.Values("Authorization"))
	res = s.opts.Authenticate(req)
	if res.OK {
		return req.Username, res
	}
	res.OK = false
	if res.RetryAfter > 0 {
		secs := retryAfterSeconds(res.RetryAfter)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		s.refuse(w, r, http.StatusTooManyRequests, refusedAuthBackoff, "too many failed logins; retry later",
			"auth_reason", res.Reason, "username", req.Username, "retry_after", secs)
		return "", res
	}
	attrs := []any{"auth_reason", res.Reason, "username", req.Username, "has_credentials", req.HasCredentials, "profile", profile}
	if cert != nil {
		attrs = append(attrs, "certificate_cn", cert.Subject.CommonName)
	}
	if res.Forbidden {
		s.refuse(w, r, http.StatusForbidden, refusedForbidden, "forbidden", attrs...)
		return "", res
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="`+authRealm+`"`)
	s.refuse(w, r, http.StatusUnauthorized, refusedUnauthorized, "unauthorized", attrs...)
	return "", res
}

// retryAfterSeconds is d in whole seconds, rounded up: Retry-After has no
// fractions (RFC 9110 §10.2.3), and rounding down would invite the charge
// point back while it is still barred.
func retryAfterSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// basicCredentials parses the Authorization header values as HTTP Basic
// credentials (RFC 7617): the scheme, case-insensitive, one or more
// spaces, then base64 of user-id ':' password, split at the first colon
// (a user-id cannot hold one, a password can). ok is false for anything
// else: no header, more than one (which one would count is ambiguous),
// another scheme, bad base64, no colon, a control character in the
// user-id (RFC 7617 §2 forbids them, and the user-id is logged) or a
// header over maxAuthorizationLen. The password is taken as it is, control
// bytes included: some charge points send their AuthorizationKey as the
// raw binary key, and it is compared, never logged. Unpadded base64 is
// accepted, since some charge points send it. net/http has already
// trimmed the value's surrounding whitespace.
func basicCredentials(values []string) (username, password string, ok bool) {
	if len(values) != 1 || len(values[0]) > maxAuthorizationLen {
		return "", "", false
	}
	scheme, token, found := strings.Cut(values[0], " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	token = strings.TrimLeft(token, " ")
	raw, err := base64.StdEncoding.Strict().DecodeString(token)
	if err != nil && !strings.HasSuffix(token, "=") {
		raw, err = base64.RawStdEncoding.Strict().DecodeString(token)
	}
	if err != nil {
		return "", "", false
	}
	username, password, found = strings.Cut(string(raw), ":")
	if !found || strings.ContainsFunc(username, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", "", false
	}
	return username, password, true
}

// Revoke closes charge point cid's connection with 1008 and reason
// auth_revoked, so that its presence says why it went offline, for an
// operator or the broker revoking its credentials. It reports false when
// the charge point is not connected. A handshake of cid that was
// authenticated before the call and completes after it is closed too:
// change what Authenticate checks first, then revoke, and no connection
// made with the old credentials survives. Revoke does not bar the charge
// point: that is Authenticate's part.
func (s *Server) Revoke(cid string) bool {
	s.remember(func(si SessionInfo) bool { return si.CID == cid })
	c := s.current(cid)
	if c == nil {
		return false
	}
	c.shut(ReasonAuthRevoked, websocket.StatusPolicyViolation)
	return true
}

// RevokeWhere closes, with 1008 and reason auth_revoked, every connected
// charge point whose SessionInfo matches, and returns how many: the
// broker calls it when its users database is reloaded, with a match that
// picks the users removed or changed. match is called without any of the
// server's locks held, from the caller's goroutine and, for a handshake
// that overlaps the call, from that handshake's: it must be safe for
// concurrent use and quick. As with Revoke, update Authenticate first.
func (s *Server) RevokeWhere(match func(SessionInfo) bool) int {
	s.remember(match)
	n := 0
	for _, c := range s.connections() {
		if match(c.info) {
			c.shut(ReasonAuthRevoked, websocket.StatusPolicyViolation)
			n++
		}
	}
	return n
}

// revocations remembers the matches of the last revocationMemory
// revocations. A handshake reads count before it is authenticated and
// looks again once its connection is attached: a revocation made in
// between may have looked for the connection before it was there, so the
// handshake applies that revocation's match itself. Either the
// revocation's look finds the connection, or the handshake's second read
// sees the revocation (both go through the station's and the server's
// locks), so none is missed.
type revocations struct {
	count  atomic.Uint64 // revocations so far; stored under Server.mu
	recent [revocationMemory]func(SessionInfo) bool
}

// revocationMemory is how many revocations a handshake can catch up
// with. Revocations are rare and a handshake short; one that overlapped
// more is closed anyway (it reconnects and authenticates again), since
// what it missed is forgotten.
const revocationMemory = 16

// remember records match as the newest revocation, before the revocation
// looks for connections. Its number is count after the call; it lives in
// recent at that number modulo the memory.
func (s *Server) remember(match func(SessionInfo) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rv := &s.revoked
	n := rv.count.Load() + 1
	rv.recent[n%revocationMemory] = match
	rv.count.Store(n)
}

// revokedSince reports whether a revocation made after the first since
// revocations matches info, or may have (it is no longer remembered). It
// calls the matches without holding a lock.
func (s *Server) revokedSince(since uint64, info SessionInfo) bool {
	if s.revoked.count.Load() == since {
		return false
	}
	s.mu.RLock()
	now := s.revoked.count.Load()
	if now-since > revocationMemory {
		s.mu.RUnlock()
		return true
	}
	matches := make([]func(SessionInfo) bool, 0, now-since)
	for n := since + 1; n <= now; n++ {
		matches = append(matches, s.revoked.recent[n%revocationMemory])
	}
	s.mu.RUnlock()
	for _, match := range matches {
		if match(info) {
			return true
		}
	}
	return false
}
