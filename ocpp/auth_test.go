package ocpp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// basic is an Authorization header value for user and password.
func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func TestBasicCredentials(t *testing.T) {
	t.Parallel()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name       string
		values     []string
		user, pass string
		ok         bool
	}{
		{"none", nil, "", "", false},
		{"plain", []string{basic("CP1", "secret")}, "CP1", "secret", true},
		{"scheme case-insensitive", []string{"bAsIc " + b64("CP1:secret")}, "CP1", "secret", true},
		{"several spaces", []string{"Basic   " + b64("CP1:secret")}, "CP1", "secret", true},
		{"unpadded", []string{"Basic " + strings.TrimRight(b64("CP1:secre"), "=")}, "CP1", "secre", true},
		{"empty password", []string{"Basic " + b64("CP1:")}, "CP1", "", true},
		{"colon in password", []string{"Basic " + b64("CP1:a:b:")}, "CP1", "a:b:", true},
		{"empty user", []string{"Basic " + b64(":pw")}, "", "pw", true},
		{"binary password", []string{"Basic " + b64("CP1:\x00\x01\xff")}, "CP1", "\x00\x01\xff", true},
		{"utf-8 user", []string{"Basic " + b64("Zähler:pw")}, "Zähler", "pw", true},
		{"malformed base64", []string{"Basic !!!notbase64"}, "", "", false},
		{"bad padding", []string{"Basic " + b64("CP1:secret") + "="}, "", "", false},
		{"no colon", []string{"Basic " + b64("CP1secret")}, "", "", false},
		{"empty credentials", []string{"Basic "}, "", "", false},
		{"scheme only", []string{"Basic"}, "", "", false},
		{"no space", []string{"Basic" + b64("CP1:secret")}, "", "", false},
		{"other scheme", []string{"Bearer " + b64("CP1:secret")}, "", "", false},
		{"tab instead of space", []string{"Basic\t" + b64("CP1:secret")}, "", "", false},
		{"control character in user", []string{"Basic " + b64("CP\n1:secret")}, "", "", false},
		{"two headers", []string{basic("CP1", "secret"), basic("CP2", "secret")}, "", "", false},
		{"too long", []string{basic("CP1", strings.Repeat("x", maxAuthorizationLen))}, "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			user, pass, ok := basicCredentials(tc.values)
			if user != tc.user || pass != tc.pass || ok != tc.ok {
				t.Fatalf("basicCredentials(%q) = %q, %q, %v; want %q, %q, %v", tc.values, user, pass, ok, tc.user, tc.pass, tc.ok)
			}
		})
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want int64
	}{
		{time.Nanosecond, 1},
		{time.Second, 1},
		{1500 * time.Millisecond, 2},
		{2 * time.Second, 2},
		{90*time.Second + time.Millisecond, 91},
	} {
		if got := retryAfterSeconds(tc.d); got != tc.want {
			t.Errorf("retryAfterSeconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

// fakeAuth is an authenticator with a fixed users table: the user
// "locked" is in a back-off, every other user needs its password.
type fakeAuth struct {
	users map[string]string
	calls atomic.Int64
	// during, when set, runs inside Authenticate: what happens while a
	// handshake is between its credentials check and its attach.
	during func(a AuthRequest)
}

func (f *fakeAuth) authenticate(a AuthRequest) AuthResult {
	f.calls.Add(1)
	if f.during != nil {
		f.during(a)
	}
	pw, known := f.users[a.Username]
	switch {
	case !a.HasCredentials:
		return AuthResult{Reason: "no_credentials"}
	case a.Username == "locked":
		return AuthResult{RetryAfter: 1500 * time.Millisecond, Reason: "backoff"}
	case !known:
		return AuthResult{Reason: "unknown_user"}
	case pw != a.Password:
		return AuthResult{Reason: "bad_credentials"}
	}
	return AuthResult{OK: true}
}

// newAuthHarness is newHarness with an authenticator, a logger writing to
// logs at DEBUG, and served, which gets a value each time ServeHTTP
// returns: after that, nothing of the handshake is still running.
func newAuthHarness(t *testing.T, opts Options, auth *fakeAuth, logs io.Writer) (h *harness, served <-chan struct{}) {
	t.Helper()
	rec := &recorder{ch: make(chan event, 1024)}
	opts.Handler = rec
	if auth != nil {
		opts.Authenticate = auth.authenticate
	}
	if logs == nil {
		logs = io.Discard
	}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := NewServer(opts)
	done := make(chan struct{}, 1024)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.ServeHTTP(w, r)
		done <- struct{}{}
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		hs.Close()
	})
	return &harness{srv: srv, rec: rec, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ocpp/"}, done
}

// dialAuth dials cid with the Authorization header values (none when
// empty). On success it waits until the charge point is attached.
func dialAuth(t *testing.T, h *harness, cid string, authorization ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	hdr := http.Header{}
	for _, v := range authorization {
		hdr.Add("Authorization", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, h.url+cid, &websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}, HTTPHeader: hdr})
	if err == nil {
		t.Cleanup(func() { ws.CloseNow() })
	}
	return ws, resp, err
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: not within 5s", what)
	}
}

// TestBasicAuthHandshake: missing, malformed and wrong credentials get
// 401 with the challenge, a back-off 429 with Retry-After, and right ones
// are admitted with the username recorded; each refusal is counted.
func TestBasicAuthHandshake(t *testing.T) {
	t.Parallel()
	auth := &fakeAuth{users: map[string]string{"CP1": "secret", "CP2": "s:e:c", "locked": "x"}}
	h, _ := newAuthHarness(t, Options{}, auth, nil)
	tests := []struct {
		name          string
		cid           string
		authorization []string
		status        int
		retryAfter    string
	}{
		{"no credentials", "CP1", nil, http.StatusUnauthorized, ""},
		{"malformed header", "CP1", []string{"Basic %%%"}, http.StatusUnauthorized, ""},
		{"wrong password", "CP1", []string{basic("CP1", "nope")}, http.StatusUnauthorized, ""},
		{"unknown user", "CP1", []string{basic("ghost", "secret")}, http.StatusUnauthorized, ""},
		{"back-off", "CP1", []string{basic("locked", "x")}, http.StatusTooManyRequests, "2"},
		{"right", "CP1", []string{basic("CP1", "secret")}, http.StatusSwitchingProtocols, ""},
		{"colon in password", "CP2", []string{basic("CP2", "s:e:c")}, http.StatusSwitchingProtocols, ""},
	}
	for _, tc := range tests {
		// Not parallel: the events of one harness are read in order.
		t.Run(tc.name, func(t *testing.T) {
			ws, resp, err := dialAuth(t, h, tc.cid, tc.authorization...)
			if tc.status == http.StatusSwitchingProtocols {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				e := h.rec.next(t, "connected")
				if want, _, _ := basicCredentials(tc.authorization); e.info.Username != want || e.info.CID != tc.cid {
					t.Fatalf("connected %+v, want username %q", e.info, want)
				}
				ws.Close(websocket.StatusNormalClosure, "")
				h.rec.next(t, "disconnected")
				return
			}
			if err == nil || resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("dial: %v (resp %v), want status %d", err, resp, tc.status)
			}
			body, _ := io.ReadAll(resp.Body)
			for _, word := range []string{"unknown_user", "bad_credentials", "no_credentials", "ghost"} {
				if strings.Contains(string(body), word) {
					t.Fatalf("body %q tells the client %q", body, word)
				}
			}
			switch tc.status {
			case http.StatusUnauthorized:
				if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="chargemq"` {
					t.Fatalf("WWW-Authenticate %q", got)
				}
			case http.StatusTooManyRequests:
				if got := resp.Header.Get("Retry-After"); got != tc.retryAfter {
					t.Fatalf("Retry-After %q, want %q", got, tc.retryAfter)
				}
			}
		})
	}
	st := h.srv.Stats()
	if st.Refused["unauthorized"] != 4 || st.Refused["auth_backoff"] != 1 {
		t.Fatalf("refused = %v", st.Refused)
	}
	if n := h.srv.handshakes.Load(); n != 0 {
		t.Fatalf("%d handshake slots still taken", n)
	}
}

// TestAuthBeforeBounds: with every handshake slot taken, a charge point
// without valid credentials is still told 401 (it never competes for a
// slot), one with them 503; and Authenticate is not called for an id or
// subprotocol refused earlier, nor once Shutdown began.
func TestAuthBeforeBounds(t *testing.T) {
	t.Parallel()
	auth := &fakeAuth{users: map[string]string{"CP1": "secret"}}
	h, _ := newAuthHarness(t, Options{MaxHandshakes: 2}, auth, nil)
	h.srv.handshakes.Store(2)
	if _, resp, err := dialAuth(t, h, "CP1", basic("CP1", "wrong")); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad credentials at the handshake limit: %v %v, want 401", err, resp)
	}
	if _, resp, err := dialAuth(t, h, "CP1", basic("CP1", "secret")); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("good credentials at the handshake limit: %v %v, want 503", err, resp)
	}
	h.srv.handshakes.Store(0)
	calls := auth.calls.Load()
	if _, resp, err := dialAuth(t, h, "a%2Fb", basic("CP1", "secret")); err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad id: %v %v, want 400", err, resp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, resp, err := dialAuth(t, h, "CP1", basic("CP1", "secret")); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after Shutdown: %v %v, want 503", err, resp)
	}
	if n := auth.calls.Load(); n != calls {
		t.Fatalf("Authenticate called %d times for a bad id and after Shutdown", n-calls)
	}
}

// TestAuthLogsNoSecrets: what the server logs about handshakes, refused or
// admitted, names the user but never holds the password or the header.
func TestAuthLogsNoSecrets(t *testing.T) {
	t.Parallel()
	const password = "pa55-w0rd-never-logged"
	auth := &fakeAuth{users: map[string]string{"CP1": password, "locked": password}}
	var logs syncBuffer
	h, served := newAuthHarness(t, Options{}, auth, &logs)
	headers := []string{basic("CP1", password+"x"), basic("nobody", password), basic("locked", password), "Basic " + password}
	for _, hdr := range headers {
		if _, _, err := dialAuth(t, h, "CP1", hdr); err == nil {
			t.Fatalf("dial with %q succeeded", hdr)
		}
		wait(t, served, "handshake refused")
	}
	ws, _, err := dialAuth(t, h, "CP1", basic("CP1", password))
	if err != nil {
		t.Fatal(err)
	}
	h.rec.next(t, "connected")
	wait(t, served, "handshake")
	ws.Close(websocket.StatusNormalClosure, "")
	h.rec.next(t, "disconnected")
	out := logs.String()
	secrets := []string{password, "Authorization", "authorization"}
	for _, hdr := range append(headers, basic("CP1", password)) {
		secrets = append(secrets, strings.TrimPrefix(hdr, "Basic "))
	}
	for _, secret := range secrets {
		if strings.Contains(out, secret) {
			t.Fatalf("log holds %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"username=nobody", "auth_reason=unknown_user", "auth_reason=backoff",
		"auth_reason=bad_credentials", "has_credentials=false"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	connected := false
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `msg="charge point connected"`) {
			connected = true
			if !strings.Contains(line, "username=CP1") {
				t.Errorf("connected line lacks the username: %s", line)
			}
		}
	}
	if !connected {
		t.Errorf("no connected line:\n%s", out)
	}
}

// TestAuthRequestHidesPassword: printing or logging a request by mistake
// does not leak the password.
func TestAuthRequestHidesPassword(t *testing.T) {
	t.Parallel()
	a := AuthRequest{CID: "CP1", Username: "CP1", Password: "hunter2", RemoteIP: "10.0.0.1", HasCredentials: true}
	var logs syncBuffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "req", a)
	for _, out := range []string{fmt.Sprint(a), fmt.Sprintf("%+v", a), logs.String()} {
		if strings.Contains(out, "hunter2") || !strings.Contains(out, "CP1") {
			t.Fatalf("%q", out)
		}
	}
}

// TestNoAuthenticatorAdmitsAll: with Authenticate nil every charge point
// is admitted, with or without credentials, and no unchecked username is
// recorded.
func TestNoAuthenticatorAdmitsAll(t *testing.T) {
	t.Parallel()
	h, _ := newAuthHarness(t, Options{}, nil, nil)
	for _, authorization := range [][]string{nil, {basic("CP1", "whatever")}, {"Basic %%%"}} {
		ws, _, err := dialAuth(t, h, "CP1", authorization...)
		if err != nil {
			t.Fatalf("dial with %q: %v", authorization, err)
		}
		if e := h.rec.next(t, "connected"); e.info.Username != "" {
			t.Fatalf("username %q recorded without an authenticator", e.info.Username)
		}
		ws.Close(websocket.StatusNormalClosure, "")
		h.rec.next(t, "disconnected")
	}
}

// readClose reads until the server closes ws and returns the close.
func readClose(t *testing.T, ws *websocket.Conn) websocket.CloseError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, _, err := ws.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("read: %v, want a close", err)
		}
		return ce
	}
}

// TestRevoke: Revoke and RevokeWhere close the matching charge points
// with 1008 auth_revoked, which their disconnected event reports, and
// leave the others.
func TestRevoke(t *testing.T) {
	t.Parallel()
	auth := &fakeAuth{users: map[string]string{"depot-a": "a", "depot-b": "b"}}
	h, _ := newAuthHarness(t, Options{}, auth, nil)
	conns := map[string]*websocket.Conn{}
	for _, cp := range []struct{ cid, user, pass string }{
		{"A1", "depot-a", "a"}, {"A2", "depot-a", "a"}, {"B1", "depot-b", "b"}, {"B2", "depot-b", "b"},
	} {
		ws, _, err := dialAuth(t, h, cp.cid, basic(cp.user, cp.pass))
		if err != nil {
			t.Fatal(err)
		}
		h.rec.next(t, "connected")
		conns[cp.cid] = ws
	}
	expectRevoked := func(t *testing.T, cids ...string) {
		t.Helper()
		for _, cid := range cids {
			if ce := readClose(t, conns[cid]); ce.Code != websocket.StatusPolicyViolation || ce.Reason != string(ReasonAuthRevoked) {
				t.Fatalf("%s closed %v, want 1008 auth_revoked", cid, ce)
			}
		}
		got := map[string]bool{}
		for range cids {
			e := h.rec.next(t, "disconnected")
			if e.reason != ReasonAuthRevoked || e.replaced {
				t.Fatalf("disconnected %+v, want auth_revoked", e)
			}
			got[e.info.CID] = true
		}
		for _, cid := range cids {
			if !got[cid] {
				t.Fatalf("disconnected %v, want %v", got, cids)
			}
		}
	}

	if n := h.srv.RevokeWhere(func(si SessionInfo) bool { return si.Username == "depot-a" }); n != 2 {
		t.Fatalf("RevokeWhere(depot-a) = %d, want 2", n)
	}
	expectRevoked(t, "A1", "A2")
	if n := h.srv.RevokeWhere(func(SessionInfo) bool { return false }); n != 0 {
		t.Fatalf("RevokeWhere(nothing) = %d", n)
	}
	if !h.srv.Revoke("B1") {
		t.Fatal("Revoke(B1) = false")
	}
	expectRevoked(t, "B1")
	if h.srv.Revoke("A1") || h.srv.Revoke("nobody") {
		t.Fatal("Revoke of a charge point not connected reported true")
	}
	if s := h.srv.Sessions(); len(s) != 1 || s[0].CID != "B2" || s[0].Username != "depot-b" {
		t.Fatalf("sessions %+v, want B2 of depot-b", s)
	}
}

// TestRevokeDuringHandshake: a revocation made while a handshake is
// between its credentials check and its attach closes that connection
// once attached if it matches, leaves it if not, and closes it anyway
// when more revocations came than are remembered.
func TestRevokeDuringHandshake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		revoke  func(s *Server)
		revoked bool
	}{
		{"matching", func(s *Server) { s.RevokeWhere(func(si SessionInfo) bool { return si.Username == "CP1" }) }, true},
		{"matching by id", func(s *Server) { s.Revoke("CP1") }, true},
		{"not matching", func(s *Server) { s.RevokeWhere(func(si SessionInfo) bool { return si.Username == "other" }) }, false},
		{"forgotten", func(s *Server) {
			for range revocationMemory + 1 {
				s.RevokeWhere(func(SessionInfo) bool { return false })
			}
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var srv atomic.Pointer[Server]
			var once sync.Once
			auth := &fakeAuth{users: map[string]string{"CP1": "secret"}}
			auth.during = func(AuthRequest) { once.Do(func() { tc.revoke(srv.Load()) }) }
			h, served := newAuthHarness(t, Options{}, auth, nil)
			srv.Store(h.srv)
			ws, _, err := dialAuth(t, h, "CP1", basic("CP1", "secret"))
			if err != nil {
				t.Fatal(err)
			}
			h.rec.next(t, "connected")
			wait(t, served, "handshake") // the check after attach is done
			if tc.revoked {
				if ce := readClose(t, ws); ce.Code != websocket.StatusPolicyViolation || ce.Reason != string(ReasonAuthRevoked) {
					t.Fatalf("closed %v, want 1008 auth_revoked", ce)
				}
				if e := h.rec.next(t, "disconnected"); e.reason != ReasonAuthRevoked {
					t.Fatalf("reason %s", e.reason)
				}
				return
			}
			// Still connected: the next close is the test's own kick.
			h.srv.Kick("CP1", 0)
			if ce := readClose(t, ws); ce.Reason != string(ReasonKicked) {
				t.Fatalf("closed %v, want kicked (the revocation did not match)", ce)
			}
			if e := h.rec.next(t, "disconnected"); e.reason != ReasonKicked {
				t.Fatalf("reason %s, want kicked (the revocation did not match)", e.reason)
			}
		})
	}
}
