// Pin Go's default (no TLS_RSA suites unless listed), so that the suite
// tests prove the explicit list is enough even if go.mod's go line is ever
// lowered below 1.22, where the default was the opposite.
//
//go:debug tlsrsakex=0

package certs_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chargemq/chargemq/broker/certs"
	"github.com/chargemq/chargemq/internal/testpki"
)

// ioTimeout bounds every socket operation of a test; generous, because the
// race detector on two busy cores makes RSA handshakes slow.
const ioTimeout = time.Minute

// fixture is the PKI most tests share, made once per test binary: RSA key
// generation under -race is too slow to repeat in every test.
type fixture struct {
	ca, ca2, clientCA, clientCA2, foreignCA *testpki.CA
	rsa, ecdsa, rsa2                        *testpki.Leaf // rsa2 is signed by ca2
	client, client2, foreign                *testpki.Leaf // by clientCA, clientCA2, foreignCA
}

// get returns the shared fixture, making it on first use with tb.
func get(tb testing.TB) *fixture {
	tb.Helper()
	fixtureOnce.Do(func() { theFixture = newFixture(tb) })
	if theFixture == nil {
		tb.Fatal("fixture failed in another test")
	}
	return theFixture
}

var (
	fixtureOnce sync.Once
	theFixture  *fixture
)

func newFixture(tb testing.TB) *fixture {
	f := &fixture{
		ca:        testpki.NewCA(tb, "server CA"),
		ca2:       testpki.NewCA(tb, "server CA 2"),
		clientCA:  testpki.NewCA(tb, "client CA"),
		clientCA2: testpki.NewCA(tb, "client CA 2"),
		foreignCA: testpki.NewCA(tb, "foreign CA"),
	}
	f.rsa = f.ca.Server(tb, testpki.RSA)
	f.ecdsa = f.ca.Server(tb, testpki.ECDSA)
	f.rsa2 = f.ca2.Server(tb, testpki.RSA)
	f.client = f.clientCA.Client(tb, "CP001", "Operator", testpki.ECDSA)
	f.client2 = f.clientCA2.Client(tb, "CP002", "Operator", testpki.ECDSA)
	f.foreign = f.foreignCA.Client(tb, "CP001", "Operator", testpki.ECDSA)
	return f
}

func pair(tb testing.TB, dir, name string, l *testpki.Leaf) certs.Pair {
	tb.Helper()
	c, k := l.WriteFiles(tb, dir, name)
	return certs.Pair{Cert: c, Key: k}
}

// newStore loads the RSA and ECDSA server certificates (in that order) and
// the client CA.
func newStore(tb testing.TB, f *fixture) *certs.Store {
	tb.Helper()
	dir := tb.TempDir()
	s, err := certs.Load(certs.Options{
		Certificates: []certs.Pair{pair(tb, dir, "rsa", f.rsa), pair(tb, dir, "ecdsa", f.ecdsa)},
		ClientCA:     f.clientCA.WriteFile(tb, dir, "clientca"),
	})
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return s
}

func mustConfig(tb testing.TB, s *certs.Store, auth tls.ClientAuthType, nextProtos ...string) *tls.Config {
	tb.Helper()
	c, err := s.Config(auth, nextProtos...)
	if err != nil {
		tb.Fatalf("Config(%v): %v", auth, err)
	}
	return c
}

// result is how the server side of one connection ended its handshake.
type result struct {
	state tls.ConnectionState
	err   error
}

// serve accepts TLS connections on a loopback port. For each it reports the
// server's handshake result, in accept order, then echoes until the client
// closes. Everything is torn down at the end of the test.
func serve(t *testing.T, cfg *tls.Config) (string, <-chan result) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan result, 16)
	done := make(chan struct{})
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closed bool
		conns  []net.Conn
	)
	handle := func(c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(ioTimeout))
		tc := tls.Server(c, cfg)
		err := tc.Handshake()
		select {
		case results <- result{tc.ConnectionState(), err}:
		case <-done:
			return
		}
		if err == nil {
			_, _ = io.Copy(tc, tc)
		}
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { handle(c) })
		}
	})
	t.Cleanup(func() {
		close(done)
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), results
}

// next waits for the server's result of the next connection.
func next(t *testing.T, results <-chan result) result {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(ioTimeout):
		t.Fatal("no server handshake result")
		return result{}
	}
}

// dial connects with cfg and, after the handshake, makes one echo round
// trip: with TLS 1.3 a client learns that the server refused its
// certificate only when it reads.
func dial(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	tc := tls.Client(c, cfg)
	if err := tc.Handshake(); err != nil {
		return tc, err
	}
	return tc, roundTrip(tc)
}

func roundTrip(c *tls.Conn) error {
	msg := []byte("ping")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo mismatch")
	}
	return nil
}

// client is a client config trusting root, with an optional certificate.
// The certificate is sent whatever CAs the server names as acceptable: Go's
// client, given Certificates, would send none from another CA, and the
// server would then judge a missing certificate, not a bad one.
func client(root *testpki.CA, cert *testpki.Leaf, maxVersion uint16, suites ...uint16) *tls.Config {
	c := &tls.Config{RootCAs: root.Pool, ServerName: "localhost", MaxVersion: maxVersion, CipherSuites: suites}
	if cert != nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.TLS, nil }
	}
	return c
}

func TestCipherSuitesPolicy(t *testing.T) {
	t.Parallel()
	got := certs.CipherSuites()
	ocpp := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	}
	for _, id := range ocpp {
		if !slices.Contains(got, id) {
			t.Errorf("CipherSuites() lacks OCPP suite %s", tls.CipherSuiteName(id))
		}
	}
	for _, id := range got {
		name := tls.CipherSuiteName(id)
		for _, weak := range []string{"CBC", "3DES", "RC4", "NULL"} {
			if strings.Contains(name, weak) {
				t.Errorf("CipherSuites() has weak suite %s", name)
			}
		}
	}
	// crypto/tls calls the TLS_RSA suites insecure (no forward secrecy);
	// OCPP requires them. Everything else must be on its secure list.
	secure := map[uint16]bool{tls.TLS_RSA_WITH_AES_128_GCM_SHA256: true, tls.TLS_RSA_WITH_AES_256_GCM_SHA384: true}
	for _, s := range tls.CipherSuites() {
		secure[s.ID] = true
	}
	for _, id := range got {
		if !secure[id] {
			t.Errorf("CipherSuites() has %s, which crypto/tls calls insecure", tls.CipherSuiteName(id))
		}
	}
	got[0] = 0 // a caller's edit must not leak into the next call
	if certs.CipherSuites()[0] == 0 {
		t.Error("CipherSuites() returns a shared slice")
	}

	cfg := mustConfig(t, newStore(t, get(t)), tls.NoClientCert)
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
	}
	if !slices.Equal(cfg.CipherSuites, certs.CipherSuites()) {
		t.Errorf("Config CipherSuites = %v, want CipherSuites()", cfg.CipherSuites)
	}
}

// TestSuitesNegotiated pins the client to each suite in turn: the server
// (RSA and ECDSA certificates) must negotiate it, with the matching key.
func TestSuitesNegotiated(t *testing.T) {
	t.Parallel()
	f := get(t)
	tests := []struct {
		suite   uint16
		max     uint16
		keyAlgo x509.PublicKeyAlgorithm
	}{
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.VersionTLS12, x509.ECDSA},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.VersionTLS12, x509.ECDSA},
		{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.VersionTLS12, x509.RSA},
		{tls.TLS_RSA_WITH_AES_256_GCM_SHA384, tls.VersionTLS12, x509.RSA},
		{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.VersionTLS12, x509.RSA},
		{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.VersionTLS12, x509.RSA},
		{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.VersionTLS12, x509.ECDSA},
		{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, tls.VersionTLS12, x509.RSA},
		// TLS 1.3 suites cannot be pinned; the client's default picks one.
		{0, tls.VersionTLS13, x509.UnknownPublicKeyAlgorithm},
	}
	for _, tt := range tests {
		name := tls.CipherSuiteName(tt.suite)
		if tt.suite == 0 {
			name = "TLS13"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			addr, results := serve(t, mustConfig(t, newStore(t, f), tls.NoClientCert))
			var suites []uint16
			if tt.suite != 0 {
				suites = []uint16{tt.suite}
			}
			conn, err := dial(t, addr, client(f.ca, nil, tt.max, suites...))
			if err != nil {
				t.Fatalf("client: %v", err)
			}
			if r := next(t, results); r.err != nil {
				t.Fatalf("server: %v", r.err)
			}
			st := conn.ConnectionState()
			if st.Version != tt.max {
				t.Errorf("version = %s, want %s", tls.VersionName(st.Version), tls.VersionName(tt.max))
			}
			if tt.suite != 0 && st.CipherSuite != tt.suite {
				t.Errorf("suite = %s, want %s", tls.CipherSuiteName(st.CipherSuite), name)
			}
			if got := st.PeerCertificates[0].PublicKeyAlgorithm; tt.keyAlgo != x509.UnknownPublicKeyAlgorithm && got != tt.keyAlgo {
				t.Errorf("server certificate key = %v, want %v", got, tt.keyAlgo)
			}
		})
	}
}

// TestWeakRefused: clients that offer only what OCPP forbids get no
// connection.
func TestWeakRefused(t *testing.T) {
	t.Parallel()
	f := get(t)
	tests := []struct {
		name   string
		max    uint16
		suites []uint16
	}{
		{"CBC only", tls.VersionTLS12, []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_RSA_WITH_AES_128_CBC_SHA,
			tls.TLS_RSA_WITH_AES_128_CBC_SHA256}},
		{"3DES only", tls.VersionTLS12, []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA}},
		{"RC4 only", tls.VersionTLS12, []uint16{tls.TLS_RSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA}},
		{"TLS 1.1", tls.VersionTLS11, nil},
		{"TLS 1.0", tls.VersionTLS10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, results := serve(t, mustConfig(t, newStore(t, f), tls.NoClientCert))
			cfg := client(f.ca, nil, tt.max, tt.suites...)
			if tt.max < tls.VersionTLS12 {
				cfg.MinVersion = tls.VersionTLS10
			}
			if _, err := dial(t, addr, cfg); err == nil {
				t.Error("client connected")
			}
			if r := next(t, results); r.err == nil {
				t.Errorf("server accepted %s %s", tls.VersionName(r.state.Version), tls.CipherSuiteName(r.state.CipherSuite))
			}
		})
	}
}

// TestCertificateChosenPerClient: with an RSA and an ECDSA certificate, in
// either order, each TLS 1.2 client gets the one its suites can use.
func TestCertificateChosenPerClient(t *testing.T) {
	t.Parallel()
	f := get(t)
	ecdsaSuites := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}
	rsaSuites := []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}
	tests := []struct {
		name     string
		rsaFirst bool
		suites   []uint16
		want     x509.PublicKeyAlgorithm
	}{
		{"RSA first, ECDSA client", true, ecdsaSuites, x509.ECDSA},
		{"RSA first, RSA client", true, rsaSuites, x509.RSA},
		{"ECDSA first, ECDSA client", false, ecdsaSuites, x509.ECDSA},
		{"ECDSA first, RSA client", false, rsaSuites, x509.RSA},
		// A client that offers both gets the forward-secret ECDHE_ECDSA
		// suite, whichever certificate was listed first.
		{"RSA first, client offering both", true, append(rsaSuites, ecdsaSuites...), x509.ECDSA},
		{"ECDSA first, client offering both", false, append(rsaSuites, ecdsaSuites...), x509.ECDSA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			pairs := []certs.Pair{pair(t, dir, "rsa", f.rsa), pair(t, dir, "ecdsa", f.ecdsa)}
			if !tt.rsaFirst {
				slices.Reverse(pairs)
			}
			s, err := certs.Load(certs.Options{Certificates: pairs})
			if err != nil {
				t.Fatal(err)
			}
			addr, results := serve(t, mustConfig(t, s, tls.NoClientCert))
			conn, err := dial(t, addr, client(f.ca, nil, tls.VersionTLS12, tt.suites...))
			if err != nil {
				t.Fatalf("client: %v", err)
			}
			next(t, results)
			if got := conn.ConnectionState().PeerCertificates[0].PublicKeyAlgorithm; got != tt.want {
				t.Errorf("server certificate key = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestClientAuth covers each listener mode against each kind of client, in
// TLS 1.2 and 1.3. The server's handshake result is the verdict: a TLS 1.3
// client only sees a refusal when it reads, which dial does too.
func TestClientAuth(t *testing.T) {
	t.Parallel()
	f := get(t)
	tests := []struct {
		name     string
		auth     tls.ClientAuthType
		cert     *testpki.Leaf
		ok       bool
		verified bool // the server has a verified chain
	}{
		{"require/no cert", tls.RequireAndVerifyClientCert, nil, false, false},
		{"require/foreign cert", tls.RequireAndVerifyClientCert, f.foreign, false, false},
		{"require/good cert", tls.RequireAndVerifyClientCert, f.client, true, true},
		{"if given/no cert", tls.VerifyClientCertIfGiven, nil, true, false},
		{"if given/foreign cert", tls.VerifyClientCertIfGiven, f.foreign, false, false},
		{"if given/good cert", tls.VerifyClientCertIfGiven, f.client, true, true},
		{"none/good cert", tls.NoClientCert, f.client, true, false},
	}
	for _, tt := range tests {
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(tt.name+"/"+tls.VersionName(version), func(t *testing.T) {
				t.Parallel()
				addr, results := serve(t, mustConfig(t, newStore(t, f), tt.auth))
				_, cerr := dial(t, addr, client(f.ca, tt.cert, version))
				r := next(t, results)
				if (r.err == nil) != tt.ok {
					t.Fatalf("server handshake error = %v, want ok %v", r.err, tt.ok)
				}
				if (cerr == nil) != tt.ok {
					t.Errorf("client error = %v, want ok %v", cerr, tt.ok)
				}
				if !tt.ok {
					return
				}
				if got := len(r.state.VerifiedChains) > 0; got != tt.verified {
					t.Errorf("verified chains: %v, want %v", got, tt.verified)
				}
				if tt.verified && r.state.PeerCertificates[0].Subject.CommonName != "CP001" {
					t.Errorf("client CN = %q", r.state.PeerCertificates[0].Subject.CommonName)
				}
				if tt.auth == tls.NoClientCert && len(r.state.PeerCertificates) != 0 {
					t.Error("NoClientCert listener received a client certificate")
				}
			})
		}
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	f := get(t)
	dir := t.TempDir()
	noCA, err := certs.Load(certs.Options{Certificates: []certs.Pair{pair(t, dir, "ecdsa", f.ecdsa)}})
	if err != nil {
		t.Fatal(err)
	}
	withCA := newStore(t, f)
	if noCA.HasClientCA() || !withCA.HasClientCA() {
		t.Fatalf("HasClientCA = %v, %v; want false, true", noCA.HasClientCA(), withCA.HasClientCA())
	}
	tests := []struct {
		name  string
		store *certs.Store
		auth  tls.ClientAuthType
		want  error
	}{
		{"none without CA", noCA, tls.NoClientCert, nil},
		{"require without CA", noCA, tls.RequireAndVerifyClientCert, certs.ErrNoClientCA},
		{"if given without CA", noCA, tls.VerifyClientCertIfGiven, certs.ErrNoClientCA},
		{"require with CA", withCA, tls.RequireAndVerifyClientCert, nil},
		{"request (unverified)", withCA, tls.RequestClientCert, certs.ErrClientAuth},
		{"require any (unverified)", withCA, tls.RequireAnyClientCert, certs.ErrClientAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := tt.store.Config(tt.auth)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Config(%v) error = %v, want %v", tt.auth, err, tt.want)
			}
			if (cfg == nil) != (tt.want != nil) {
				t.Errorf("Config(%v) = %v with error %v", tt.auth, cfg, err)
			}
		})
	}
}

func TestALPN(t *testing.T) {
	t.Parallel()
	f := get(t)
	addr, results := serve(t, mustConfig(t, newStore(t, f), tls.NoClientCert, "mqtt", "http/1.1"))
	cfg := client(f.ca, nil, 0)
	cfg.NextProtos = []string{"http/1.1"}
	conn, err := dial(t, addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	next(t, results)
	if got := conn.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
		t.Errorf("NegotiatedProtocol = %q, want http/1.1", got)
	}
}

// TestReload swaps the server certificate (to another CA) and the client
// CA under a live listener.
func TestReload(t *testing.T) {
	t.Parallel()
	f := get(t)
	dir := t.TempDir()
	p := pair(t, dir, "server", f.rsa)
	caFile := f.clientCA.WriteFile(t, dir, "clientca")
	s, err := certs.Load(certs.Options{Certificates: []certs.Pair{p}, ClientCA: caFile})
	if err != nil {
		t.Fatal(err)
	}
	addr, results := serve(t, mustConfig(t, s, tls.VerifyClientCertIfGiven))

	old, err := dial(t, addr, client(f.ca, f.client, 0))
	if err != nil {
		t.Fatalf("before reload: %v", err)
	}
	if r := next(t, results); r.err != nil {
		t.Fatalf("before reload, server: %v", r.err)
	}

	f.rsa2.WriteFiles(t, dir, "server")
	f.clientCA2.WriteFile(t, dir, "clientca")
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if err := roundTrip(old); err != nil {
		t.Errorf("connection made before Reload: %v", err)
	}

	tests := []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"new server cert, new client cert", client(f.ca2, f.client2, 0), true},
		{"old server CA trusted", client(f.ca, f.client2, 0), false},
		{"old client CA", client(f.ca2, f.client, tls.VersionTLS12), false},
	}
	for _, tt := range tests { // one listener: not parallel
		conn, err := dial(t, addr, tt.cfg)
		r := next(t, results)
		if (err == nil) != tt.ok || (r.err == nil) != tt.ok {
			t.Errorf("%s: client error %v, server error %v; want ok %v", tt.name, err, r.err, tt.ok)
		}
		if err == nil && conn.ConnectionState().PeerCertificates[0].Issuer.CommonName != "server CA 2" {
			t.Errorf("%s: server certificate issued by %q", tt.name, conn.ConnectionState().PeerCertificates[0].Issuer)
		}
	}

	// A broken file: Reload fails, names the file, and the store keeps
	// serving what it had.
	before := s.Summary()
	for _, tt := range []struct {
		file    string
		restore func()
	}{
		{p.Cert, func() { f.rsa2.WriteFiles(t, dir, "server") }},
		{p.Key, func() { f.rsa2.WriteFiles(t, dir, "server") }},
		{caFile, func() { f.clientCA2.WriteFile(t, dir, "clientca") }},
	} {
		name := filepath.Base(tt.file)
		if err := os.WriteFile(tt.file, []byte("garbage\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := s.Reload()
		if err == nil || !strings.Contains(err.Error(), tt.file) {
			t.Errorf("Reload with broken %s: error %v, want one naming the file", name, err)
		}
		if !slices.Equal(s.Summary(), before) {
			t.Errorf("Summary after failed Reload = %v, want %v", s.Summary(), before)
		}
		if _, err := dial(t, addr, client(f.ca2, f.client2, 0)); err != nil {
			t.Errorf("after failed Reload (%s): %v", name, err)
		}
		if r := next(t, results); r.err != nil {
			t.Errorf("after failed Reload (%s), server: %v", name, r.err)
		}
		tt.restore()
	}
	if err := s.Reload(); err != nil {
		t.Errorf("Reload of restored files: %v", err)
	}
	if err := roundTrip(old); err != nil {
		t.Errorf("connection made before the first Reload: %v", err)
	}
}

// TestReloadConcurrent reloads while handshakes run, for the race detector.
func TestReloadConcurrent(t *testing.T) {
	t.Parallel()
	f := get(t)
	s := newStore(t, f)
	addr, results := serve(t, mustConfig(t, s, tls.VerifyClientCertIfGiven))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.Reload(); err != nil {
				t.Errorf("Reload: %v", err)
				return
			}
			_ = s.Summary()
			_ = s.Expiring(time.Now(), time.Hour)
		}
	})
	for range 5 {
		if _, err := dial(t, addr, client(f.ca, f.client, 0)); err != nil {
			t.Errorf("dial: %v", err)
		}
		if r := next(t, results); r.err != nil {
			t.Errorf("server: %v", r.err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	f := get(t)
	dir := t.TempDir()
	good := pair(t, dir, "good", f.ecdsa)
	other := pair(t, dir, "other", f.rsa)
	caFile := f.clientCA.WriteFile(t, dir, "ca")
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := write("empty.pem", "")
	notPEM := write("notpem.pem", "this is not PEM\n")
	keyOnly := write("keyonly.pem", string(f.ecdsa.KeyPEM))
	badDER := write("baddera.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name  string
		opts  certs.Options
		file  string // the error must name it
		is    error
		inMsg string
	}{
		{"no pair", certs.Options{}, "", certs.ErrNoPair, ""},
		{"missing cert", certs.Options{Certificates: []certs.Pair{{Cert: missing, Key: good.Key}}}, missing, fs.ErrNotExist, ""},
		{"missing key", certs.Options{Certificates: []certs.Pair{{Cert: good.Cert, Key: missing}}}, missing, fs.ErrNotExist, ""},
		{"key of another cert", certs.Options{Certificates: []certs.Pair{{Cert: good.Cert, Key: other.Key}}}, other.Key, nil, "does not match"},
		{"empty cert file", certs.Options{Certificates: []certs.Pair{{Cert: empty, Key: good.Key}}}, empty, certs.ErrNoCertificate, ""},
		{"cert file not PEM", certs.Options{Certificates: []certs.Pair{{Cert: notPEM, Key: good.Key}}}, notPEM, certs.ErrNoCertificate, ""},
		{"cert file with a key only", certs.Options{Certificates: []certs.Pair{{Cert: keyOnly, Key: good.Key}}}, keyOnly, certs.ErrNoCertificate, ""},
		{"cert not DER", certs.Options{Certificates: []certs.Pair{{Cert: badDER, Key: good.Key}}}, badDER, nil, "certificate 1"},
		{"empty key file", certs.Options{Certificates: []certs.Pair{{Cert: good.Cert, Key: empty}}}, empty, nil, ""},
		{"second pair broken", certs.Options{Certificates: []certs.Pair{good, {Cert: other.Cert, Key: good.Key}}}, good.Key, nil, "does not match"},
		{"missing CA file", certs.Options{Certificates: []certs.Pair{good}, ClientCA: missing}, missing, fs.ErrNotExist, ""},
		{"CA file without certs", certs.Options{Certificates: []certs.Pair{good}, ClientCA: keyOnly}, keyOnly, certs.ErrNoCertificate, ""},
		{"empty CA file", certs.Options{Certificates: []certs.Pair{good}, ClientCA: empty}, empty, certs.ErrNoCertificate, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := certs.Load(tt.opts)
			if err == nil {
				t.Fatalf("Load = %v, want error", s)
			}
			if !strings.Contains(err.Error(), tt.file) || !strings.Contains(err.Error(), tt.inMsg) {
				t.Errorf("error %q does not name %q (and %q)", err, tt.file, tt.inMsg)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			if tt.file != "" && strings.Count(err.Error(), tt.file) != 1 {
				t.Errorf("error %q names the file more than once", err)
			}
		})
	}
	if _, err := certs.Load(certs.Options{Certificates: []certs.Pair{good}, ClientCA: caFile}); err != nil {
		t.Errorf("good files: %v", err)
	}
}

func TestExpiring(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ca := testpki.NewCA(t, "expiry CA") // expires in a day
	dir := t.TempDir()
	issue := func(cn string, notAfter time.Time) certs.Pair {
		return pair(t, dir, cn, ca.Issue(t, testpki.LeafOptions{CN: cn, NotAfter: notAfter}))
	}
	p60 := issue("in60days", now.Add(60*24*time.Hour))
	p10 := issue("in10days", now.Add(10*24*time.Hour))
	pOld := issue("expired", now.Add(-time.Minute))
	caFile := ca.WriteFile(t, dir, "ca")
	s, err := certs.Load(certs.Options{Certificates: []certs.Pair{p60, p10, pOld}, ClientCA: caFile})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		within time.Duration
		want   []certs.Expiry // NotAfter checked separately
	}{
		{"30 days", 30 * 24 * time.Hour, []certs.Expiry{
			{File: pOld.Cert, Subject: "expired", Expired: true},
			{File: caFile, Subject: "expiry CA"},
			{File: p10.Cert, Subject: "in10days"},
		}},
		{"expired only", 0, []certs.Expiry{{File: pOld.Cert, Subject: "expired", Expired: true}}},
		{"a year", 365 * 24 * time.Hour, []certs.Expiry{
			{File: pOld.Cert, Subject: "expired", Expired: true},
			{File: caFile, Subject: "expiry CA"},
			{File: p10.Cert, Subject: "in10days"},
			{File: p60.Cert, Subject: "in60days"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := s.Expiring(now, tt.within)
			if len(got) != len(tt.want) {
				t.Fatalf("Expiring(now, %v) = %+v, want %d entries", tt.within, got, len(tt.want))
			}
			for i, e := range got {
				w := tt.want[i]
				if e.File != w.File || e.Subject != w.Subject || e.Expired != w.Expired {
					t.Errorf("entry %d = %+v, want %+v", i, e, w)
				}
				if i > 0 && e.NotAfter.Before(got[i-1].NotAfter) {
					t.Errorf("entry %d is older than entry %d", i, i-1)
				}
			}
		})
	}
}

func TestSummary(t *testing.T) {
	t.Parallel()
	f := get(t)
	dir := t.TempDir()
	rsa, ecdsa := pair(t, dir, "rsa", f.rsa), pair(t, dir, "ecdsa", f.ecdsa)
	caFile := f.clientCA.WriteFile(t, dir, "ca")
	s, err := certs.Load(certs.Options{Certificates: []certs.Pair{rsa, ecdsa}, ClientCA: caFile})
	if err != nil {
		t.Fatal(err)
	}
	want := []certs.CertInfo{ // in the order served: ECDSA first
		{File: ecdsa.Cert, Subject: "localhost", KeyType: "ECDSA", NotAfter: f.ecdsa.Cert.NotAfter},
		{File: rsa.Cert, Subject: "localhost", KeyType: "RSA", NotAfter: f.rsa.Cert.NotAfter},
		{File: caFile, Subject: "client CA", KeyType: "ECDSA", NotAfter: f.clientCA.Cert.NotAfter},
	}
	if got := s.Summary(); !slices.Equal(got, want) {
		t.Errorf("Summary() = %+v\nwant %+v", got, want)
	}
}
