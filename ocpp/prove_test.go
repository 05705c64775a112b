package ocpp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chargemq/chargemq/internal/testpki"
)

// serialAuth admits every charge point and binds it to the serial
// number "SN-" + its id, as the broker does for a certificate with
// ocpp.client_cert_identity serial.
func serialAuth(a AuthRequest) AuthResult {
	return AuthResult{OK: true, BootSerial: "SN-" + a.CID}
}

func newSerialHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	rec := &recorder{ch: make(chan event, 1024)}
	opts.Handler = rec
	opts.Authenticate = serialAuth
	h := newHarnessWith(t, opts, rec)
	return h
}

// newHarnessWith is newHarness with the caller's recorder and options kept.
func newHarnessWith(t *testing.T, opts Options, rec *recorder) *harness {
	t.Helper()
	opts.Handler = rec
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	srv := NewServer(opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		hs.Close()
	})
	return &harness{srv: srv, rec: rec, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ocpp/"}
}

// dialUnproven dials cid without waiting for it to be attached: a
// connection bound to its serial is not, until its BootNotification.
func dialUnproven(t *testing.T, h *harness, cid string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, h.url+cid, &websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}})
	if err != nil {
		t.Fatalf("dial %s: %v", cid, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

func bootWithSerial(id, serial string) string {
	p := `{"chargePointVendor":"V","chargePointModel":"M"`
	if serial != "" {
		p += `,"chargePointSerialNumber":"` + serial + `"`
	}
	return `[2,"` + id + `","BootNotification",` + p + `}]`
}

// TestSerialBinding: with AuthResult.BootSerial the connection is neither
// online nor forwarded until a BootNotification reports that serial; its
// other calls are answered SecurityError and its answers dropped; the
// BootNotification that proves it is forwarded as usual; a wrong or
// missing serial is answered Rejected by the gateway and closed 1008
// auth_failed, with an offline presence saying so.
func TestSerialBinding(t *testing.T) {
	t.Parallel()
	h := newSerialHarness(t, DefaultOptions())

	ws := dialUnproven(t, h, "CP1")
	write(t, ws, `[2,"h1","Heartbeat",{}]`)
	if got := read(t, ws); got[0] != float64(4) || got[1] != "h1" || got[2] != "SecurityError" {
		t.Fatalf("Heartbeat before BootNotification answered %v, want a SecurityError", got)
	}
	write(t, ws, `[3,"x",{}]`) // an answer to nothing: dropped
	if h.srv.isConnected("CP1") {
		t.Fatal("an unproven connection is attached")
	}
	if err := h.srv.Send("CP1", call("c1", "Reset")); err == nil || err.Reason != ReasonOffline {
		t.Fatalf("Send to an unproven charge point: %v, want offline", err)
	}
	write(t, ws, bootWithSerial("b1", "SN-CP1"))
	e := h.rec.next(t, "connected")
	if e.info.CID != "CP1" {
		t.Fatalf("connected %+v", e.info)
	}
	if e := h.rec.next(t, "received"); e.in.Action != "BootNotification" || e.in.UniqueID != "b1" {
		t.Fatalf("received %+v, want the proving BootNotification", e.in.Frame)
	}
	st := h.srv.Stats()
	if st.FramesIn["before_boot"] != 2 {
		t.Errorf("before_boot = %d, want 2 (the Heartbeat and the answer)", st.FramesIn["before_boot"])
	}

	for _, tc := range []struct{ name, serial string }{{"wrong serial", "SN-other"}, {"no serial", ""}} {
		cid := "CP-" + strings.ReplaceAll(tc.name, " ", "-")
		ws := dialUnproven(t, h, cid)
		write(t, ws, bootWithSerial("b1", tc.serial))
		got := read(t, ws)
		if got[0] != float64(3) || got[1] != "b1" {
			t.Fatalf("%s: answered %v, want a CALLRESULT", tc.name, got)
		}
		if p, _ := got[2].(map[string]any); p["status"] != "Rejected" || p["currentTime"] == nil || p["interval"] == nil {
			t.Fatalf("%s: answered %v, want status Rejected with currentTime and interval", tc.name, got[2])
		}
		if ce := readClose(t, ws); ce.Code != websocket.StatusPolicyViolation || ce.Reason != string(ReasonAuthFailed) {
			t.Fatalf("%s: closed %v %q, want 1008 auth_failed", tc.name, ce.Code, ce.Reason)
		}
		e := h.rec.next(t, "disconnected")
		if e.info.CID != cid || e.reason != ReasonAuthFailed || e.replaced {
			t.Fatalf("%s: disconnected %+v %s, want %s offline with auth_failed", tc.name, e.info, e.reason, cid)
		}
	}
	if n := h.srv.Stats().Refused["serial_mismatch"]; n != 2 {
		t.Errorf("refused serial_mismatch = %d, want 2", n)
	}
}

// TestSerialBindingTakesNothingOver: an unproven connection of a charge
// point that is online does not replace it, and its failure publishes
// nothing: the charge point is still online.
func TestSerialBindingTakesNothingOver(t *testing.T) {
	t.Parallel()
	h := newSerialHarness(t, DefaultOptions())
	first := dialUnproven(t, h, "CP1")
	write(t, first, bootWithSerial("b1", "SN-CP1"))
	h.rec.next(t, "connected")
	h.rec.next(t, "received")

	rogue := dialUnproven(t, h, "CP1")
	write(t, rogue, bootWithSerial("b2", "SN-rogue"))
	read(t, rogue) // Rejected
	readClose(t, rogue)

	// The first connection still carries commands, and nothing was
	// published about the rogue one.
	if err := h.srv.Send("CP1", call("c1", "Reset")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := read(t, first); got[1] != "c1" {
		t.Fatalf("first connection got %v, want the command", got)
	}
	select {
	case e := <-h.rec.ch:
		t.Fatalf("unexpected event %s %+v", e.kind, e)
	default:
	}
}

// TestSerialBindingDeadline: a connection that sends no proving
// BootNotification within idle_timeout is closed 1008 auth_failed, even
// while it sends other frames.
func TestSerialBindingDeadline(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.IdleTimeout = 300 * time.Millisecond
	h := newSerialHarness(t, o)
	ws := dialUnproven(t, h, "CP1")
	write(t, ws, `[2,"h1","Heartbeat",{}]`)
	read(t, ws) // SecurityError
	if ce := readClose(t, ws); ce.Code != websocket.StatusPolicyViolation || ce.Reason != string(ReasonAuthFailed) {
		t.Fatalf("closed %v %q, want 1008 auth_failed", ce.Code, ce.Reason)
	}
	if e := h.rec.next(t, "disconnected"); e.reason != ReasonAuthFailed {
		t.Fatalf("disconnected with %s", e.reason)
	}
}

// TestSerialBindingSilent: a connection bound to its serial that sends
// nothing at all is closed 1008 auth_failed too, not as an idle timeout.
func TestSerialBindingSilent(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.IdleTimeout = 300 * time.Millisecond
	h := newSerialHarness(t, o)
	ws := dialUnproven(t, h, "CP1")
	if ce := readClose(t, ws); ce.Code != websocket.StatusPolicyViolation || ce.Reason != string(ReasonAuthFailed) {
		t.Fatalf("closed %v %q, want 1008 auth_failed", ce.Code, ce.Reason)
	}
	if e := h.rec.next(t, "disconnected"); e.reason != ReasonAuthFailed {
		t.Fatalf("disconnected with %s", e.reason)
	}
}

// TestShutdownClosesUnproven: Shutdown reaches connections still proving
// their serial and does not wait for their deadline.
func TestShutdownClosesUnproven(t *testing.T) {
	t.Parallel()
	h := newSerialHarness(t, DefaultOptions()) // idle_timeout 30s
	ws := dialUnproven(t, h, "CP1")
	write(t, ws, `[2,"h1","Heartbeat",{}]`)
	read(t, ws)
	closed := make(chan websocket.StatusCode, 1)
	go func() { // reads, so the close handshake is answered
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				closed <- websocket.CloseStatus(err)
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if code := <-closed; code != websocket.StatusGoingAway {
		t.Fatalf("closed %v, want 1001", code)
	}
}

// TestSecurityProfile: the profile Authenticate sees comes from the TLS
// state: 1 over plain TCP, 2 over TLS, 3 with a client certificate the
// TLS stack verified, which is handed over; SessionInfo records it.
func TestSecurityProfile(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "test CA")
	seen := make(chan AuthRequest, 8)
	rec := &recorder{ch: make(chan event, 64)}
	srv := NewServer(Options{Handler: rec, Logger: discardLogger(), Authenticate: func(a AuthRequest) AuthResult {
		seen <- a
		return AuthResult{OK: true}
	}})
	plain := httptest.NewServer(srv)
	secure := httptest.NewUnstartedServer(srv)
	secure.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.Server(t, testpki.ECDSA).TLS},
		ClientCAs:    ca.Pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}
	secure.StartTLS()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		plain.Close()
		secure.Close()
	})
	client := ca.Client(t, "CP3", "", testpki.ECDSA)
	tlsClient := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, Certificates: certs}}}
	}
	for _, tc := range []struct {
		name, url, cid string
		client         *http.Client
		profile        int
		cn             string
	}{
		{"plain", "ws" + strings.TrimPrefix(plain.URL, "http"), "CP1", nil, 1, ""},
		{"tls", "wss" + strings.TrimPrefix(secure.URL, "https"), "CP2", tlsClient(), 2, ""},
		{"tls with certificate", "wss" + strings.TrimPrefix(secure.URL, "https"), "CP3", tlsClient(client.TLS), 3, "CP3"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ws, _, err := websocket.Dial(ctx, tc.url+"/ocpp/"+tc.cid, &websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}, HTTPClient: tc.client})
		cancel()
		if err != nil {
			t.Fatalf("%s: dial: %v", tc.name, err)
		}
		a := <-seen
		var cn string
		if a.Certificate != nil {
			cn = a.Certificate.Subject.CommonName
		}
		if a.Profile != tc.profile || cn != tc.cn {
			t.Errorf("%s: Authenticate saw profile %d, certificate %q; want %d, %q", tc.name, a.Profile, cn, tc.profile, tc.cn)
		}
		if e := rec.next(t, "connected"); e.info.SecurityProfile != tc.profile {
			t.Errorf("%s: SessionInfo.SecurityProfile %d, want %d", tc.name, e.info.SecurityProfile, tc.profile)
		}
		ws.CloseNow()
		rec.next(t, "disconnected")
	}
}

// TestSecurityProfileIgnoresUnverified: a certificate the TLS stack only
// requested, without verifying it, does not make profile 3.
func TestSecurityProfileIgnoresUnverified(t *testing.T) {
	t.Parallel()
	self := testpki.NewCA(t, "self-signed").Client(t, "CP1", "", testpki.ECDSA)
	p, cert := securityProfile(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{self.Cert}})
	if p != 2 || cert != nil {
		t.Fatalf("unverified certificate: profile %d, %v; want 2, nil", p, cert)
	}
}

// TestForbiddenIs403: a refusal marked Forbidden is answered 403 without
// a Basic challenge, and counted as forbidden.
func TestForbiddenIs403(t *testing.T) {
	t.Parallel()
	rec := &recorder{ch: make(chan event, 8)}
	h := newHarnessWith(t, Options{Authenticate: func(AuthRequest) AuthResult {
		return AuthResult{Forbidden: true, Reason: "certificate_cn_mismatch"}
	}}, rec)
	_, resp, err := dialAuth(t, h, "CP1")
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dial: %v %v, want 403", err, resp)
	}
	if resp.Header.Get("WWW-Authenticate") != "" {
		t.Error("403 carries a Basic challenge")
	}
	if n := h.srv.Stats().Refused["forbidden"]; n != 1 {
		t.Errorf("refused forbidden = %d, want 1", n)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
