package sim

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/chargemq/chargemq/internal/testpki"
)

// fakeCentral is a central system for the TLS tests: an httptest server (TLS unless its
// config is nil) whose handler accepts charge points on /ocpp/<cid> with coder/websocket and
// answers every call as the responder would (upstreamAnswer), so BootNotification is
// Accepted. It records per charge point what came with the handshake.
type fakeCentral struct {
	srv *httptest.Server

	mu     sync.Mutex
	idle   *sync.Cond // signalled when a handler ends
	active int        // handlers running
	seen   map[string]*seenCP
}

// seenCP is what the central system saw of one charge point.
type seenCP struct {
	cn         string // Subject CN of its client certificate, "" without one
	sni        string
	user, pass string
	basic      bool   // it sent Basic credentials
	remoteIP   string // the connection's source address
	booted     bool   // its BootNotification arrived
}

// startCentral starts a fake central system with TLS config cfg (nil: plain ws://).
func startCentral(t *testing.T, cfg *tls.Config) *fakeCentral {
	t.Helper()
	f := &fakeCentral{seen: map[string]*seenCP{}}
	f.idle = sync.NewCond(&f.mu)
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.handle))
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are what some tests are about
	if cfg != nil {
		f.srv.TLS = cfg
		f.srv.StartTLS()
	} else {
		f.srv.Start()
	}
	t.Cleanup(f.srv.Close)
	return f
}

// centralTLS is a TLS config for a fake central system with a certificate from ca for
// localhost and 127.0.0.1, asking charge points for a certificate from ca as auth says.
func centralTLS(t *testing.T, ca *testpki.CA, auth tls.ClientAuthType) *tls.Config {
	t.Helper()
	return &tls.Config{
		Certificates: []tls.Certificate{ca.Server(t, testpki.ECDSA).TLS},
		ClientAuth:   auth,
		ClientCAs:    ca.Pool,
		MinVersion:   tls.VersionTLS12,
	}
}

// url is the OCPP endpoint (wss:// or ws://) without the charge point id.
func (f *fakeCentral) url() string {
	u := strings.Replace(strings.Replace(f.srv.URL, "https://", "wss://", 1), "http://", "ws://", 1)
	return u + "/ocpp"
}

func (f *fakeCentral) handle(w http.ResponseWriter, r *http.Request) {
	cid, ok := strings.CutPrefix(r.URL.Path, "/ocpp/")
	if !ok || cid == "" {
		http.NotFound(w, r)
		return
	}
	s := &seenCP{}
	if r.TLS != nil {
		s.sni = r.TLS.ServerName
		if len(r.TLS.PeerCertificates) > 0 {
			s.cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
	}
	s.user, s.pass, s.basic = r.BasicAuth()
	s.remoteIP, _, _ = net.SplitHostPort(r.RemoteAddr)
	// Recorded before the upgrade completes, so before the charge point's dial returns.
	f.mu.Lock()
	f.seen[cid] = s
	f.active++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active--
		f.idle.Broadcast()
		f.mu.Unlock()
	}()
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"ocpp1.6"}})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	ctx := context.Background() // the simulator ends every connection it opens
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return
		}
		var call []json.RawMessage
		var typ int
		var uid, action string
		if json.Unmarshal(data, &call) != nil || len(call) != 4 || json.Unmarshal(call[0], &typ) != nil || typ != 2 ||
			json.Unmarshal(call[1], &uid) != nil || json.Unmarshal(call[2], &action) != nil {
			continue
		}
		if action == ActionBootNotification {
			f.mu.Lock()
			s.booted = true
			f.mu.Unlock()
		}
		frame := callErrorFrame(uid, "NotImplemented", action)
		if payload, ok := upstreamAnswer(action, time.Now(), 60, 1); ok {
			frame = callResultFrame(uid, payload)
		}
		if conn.Write(ctx, websocket.MessageText, frame) != nil {
			return
		}
	}
}

// wait waits until every handler has ended (the simulator closed its connections) and
// returns what was seen.
func (f *fakeCentral) wait() map[string]seenCP {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.active > 0 {
		f.idle.Wait()
	}
	seen := make(map[string]seenCP, len(f.seen))
	for cid, s := range f.seen {
		seen[cid] = *s
	}
	return seen
}

// tlsOptions are options for a short idle run against f, verifying it with caFile.
func tlsOptions(f *fakeCentral, caFile string) Options {
	o := DefaultOptions()
	o.URL = f.url()
	o.TLSCA = caFile
	o.Count = 5
	o.ConnectRate = 0 // all at once
	o.CallRate = 0    // BootNotification only: what is checked is the handshake
	o.Duration = 50 * time.Millisecond
	return o
}

// ids returns the charge point ids of a run with o.
func ids(o Options) []string {
	var cids []string
	for _, cp := range newRunner(o).cps {
		cids = append(cids, cp.cid)
	}
	return cids
}

// writeClientCerts issues a certificate with Subject CN cid for each of cids and writes it as
// dir/<cid>.crt and dir/<cid>.key.
func writeClientCerts(t *testing.T, ca *testpki.CA, dir string, cids ...string) {
	t.Helper()
	for _, cid := range cids {
		ca.Client(t, cid, "", testpki.ECDSA).WriteFiles(t, dir, cid)
	}
}

// runErr runs with a deadline far beyond the run's length and returns Run's error.
func runErr(t *testing.T, o Options) (Report, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return Run(ctx, o, nil)
}

// TestSimTLSClientCertPerCID is OCPP security profile 3 with a certificate per charge point:
// each presents the one named after it, which the server verified against the CA.
func TestSimTLSClientCertPerCID(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "depot CA")
	dir := t.TempDir()
	f := startCentral(t, centralTLS(t, ca, tls.RequireAndVerifyClientCert))
	o := tlsOptions(f, ca.WriteFile(t, dir, "ca"))
	writeClientCerts(t, ca, dir, ids(o)...)
	o.TLSCert, o.TLSKey = filepath.Join(dir, "{cid}.crt"), filepath.Join(dir, "{cid}.key")

	rep := run(t, o, nil)
	if c := rep.Connections; c.Connected != int64(o.Count) || c.Failed != 0 || c.Dropped != 0 {
		t.Errorf("connections %+v, want all %d connected", c, o.Count)
	}
	seen := f.wait()
	if len(seen) != o.Count {
		t.Errorf("server saw %d charge points, want %d", len(seen), o.Count)
	}
	for _, cid := range ids(o) {
		s, ok := seen[cid]
		if !ok || s.cn != cid || !s.booted || s.basic {
			t.Errorf("%s: server saw %+v (present %v), want CN %s, a BootNotification and no Basic credentials", cid, s, ok, cid)
		}
	}
	if len(rep.Warnings) != 0 {
		t.Errorf("warnings %q", rep.Warnings)
	}
}

// TestSimTLSClientCertFiles: a certificate file named after one charge point that is
// missing or invalid fails just that charge point's dial, counted by cause with the path in a
// warning; a file every charge point needs (no {cid}, or the first charge point's, which
// decides whether the run starts) stops the run before anything dials.
func TestSimTLSClientCertFiles(t *testing.T) {
	t.Parallel()
	perCID := func(dir string) (string, string) {
		return filepath.Join(dir, "{cid}.crt"), filepath.Join(dir, "{cid}.key")
	}
	tests := []struct {
		name string
		// prepare writes the files (ids sim-1 … sim-5) and sets TLSCert and TLSKey.
		prepare     func(t *testing.T, ca *testpki.CA, dir string, o *Options)
		wantErr     string // in Run's error; "" when the run happens
		wantReasons map[string]int64
		wantSeen    []string // the charge points the server saw
		wantWarn    []string // each in some warning
	}{
		{
			name: "bad per-cid files fail their charge points only",
			prepare: func(t *testing.T, ca *testpki.CA, dir string, o *Options) {
				writeClientCerts(t, ca, dir, "sim-1", "sim-2", "sim-4", "sim-5")
				// sim-2: the key of another certificate; sim-3: no files; sim-4: not PEM.
				writeFile(t, filepath.Join(dir, "sim-2.key"), readFile(t, filepath.Join(dir, "sim-5.key")))
				writeFile(t, filepath.Join(dir, "sim-4.crt"), "not a certificate")
				o.TLSCert, o.TLSKey = perCID(dir)
			},
			wantReasons: map[string]int64{
				"client certificate: no such file or directory":                             1,
				"client certificate: tls: failed to find any PEM data in certificate input": 1,
				"client certificate: tls: private key does not match public key":            1,
			},
			wantSeen: []string{"sim-1", "sim-5"},
			wantWarn: []string{
				"sim-3: client certificate " + filepath.Join("DIR", "sim-3.crt") + ", key " + filepath.Join("DIR", "sim-3.key") +
					": open " + filepath.Join("DIR", "sim-3.crt") + ": no such file or directory",
				"sim-4: client certificate " + filepath.Join("DIR", "sim-4.crt"),
				"sim-2: client certificate " + filepath.Join("DIR", "sim-2.crt"),
			},
		},
		{
			name: "the first charge point's file missing",
			prepare: func(t *testing.T, ca *testpki.CA, dir string, o *Options) {
				writeClientCerts(t, ca, dir, "sim-2", "sim-3", "sim-4", "sim-5")
				o.TLSCert, o.TLSKey = perCID(dir)
			},
			wantErr: "sim: sim-1: client certificate " + filepath.Join("DIR", "sim-1.crt"),
		},
		{
			name: "a shared certificate that is not PEM",
			prepare: func(t *testing.T, ca *testpki.CA, dir string, o *Options) {
				writeFile(t, filepath.Join(dir, "all.crt"), "garbage")
				writeFile(t, filepath.Join(dir, "all.key"), "garbage")
				o.TLSCert, o.TLSKey = filepath.Join(dir, "all.crt"), filepath.Join(dir, "all.key")
			},
			wantErr: "sim: tls-cert, tls-key: client certificate " + filepath.Join("DIR", "all.crt") + ", key " +
				filepath.Join("DIR", "all.key") + ": tls: failed to find any PEM data in certificate input",
		},
		{
			name: "a shared key that is missing",
			prepare: func(t *testing.T, ca *testpki.CA, dir string, o *Options) {
				writeClientCerts(t, ca, dir, ids(*o)...)
				o.TLSCert, o.TLSKey = filepath.Join(dir, "{cid}.crt"), filepath.Join(dir, "shared.key")
			},
			wantErr: "open " + filepath.Join("DIR", "shared.key") + ": no such file or directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := testpki.NewCA(t, "depot CA")
			dir := t.TempDir()
			f := startCentral(t, centralTLS(t, ca, tls.RequireAndVerifyClientCert))
			o := tlsOptions(f, ca.WriteFile(t, dir, "ca"))
			tt.prepare(t, ca, dir, &o)
			inDir := func(s string) string { return strings.ReplaceAll(s, "DIR", dir) }

			rep, err := runErr(t, o)
			seen := f.wait()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), inDir(tt.wantErr)) ||
					!errors.Is(err, ErrClientCertificate) || errors.Is(err, ErrUnreachable) {
					t.Fatalf("Run: %v, want a client certificate error containing %q", err, inDir(tt.wantErr))
				}
				if len(seen) != 0 {
					t.Errorf("server saw %v, want nothing dialled", seen)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			c := rep.Connections
			if c.Connected != int64(len(tt.wantSeen)) || c.Failed != int64(o.Count-len(tt.wantSeen)) ||
				fmt.Sprint(c.FailReasons) != fmt.Sprint(tt.wantReasons) {
				t.Errorf("connections %+v, want %d connected and fail reasons %v", c, len(tt.wantSeen), tt.wantReasons)
			}
			for _, cid := range tt.wantSeen {
				if s, ok := seen[cid]; !ok || s.cn != cid {
					t.Errorf("%s: server saw %+v (present %v), want CN %s", cid, s, ok, cid)
				}
			}
			if len(seen) != len(tt.wantSeen) {
				t.Errorf("server saw %d charge points, want %v", len(seen), tt.wantSeen)
			}
			for _, w := range tt.wantWarn {
				found := false
				for _, got := range rep.Warnings {
					found = found || strings.Contains(got, inDir(w))
				}
				if !found {
					t.Errorf("warnings %q, want one containing %q", rep.Warnings, inDir(w))
				}
			}
		})
	}
}

// TestSimTLSBasicAuth is OCPP security profile 2: TLS without a client certificate, and the
// charge points' Basic credentials from the templates.
func TestSimTLSBasicAuth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, username, password string
		wantUser, wantPass       string // {cid} replaced
	}{
		{"the id as username", "", "key-{cid}", "{cid}", "key-{cid}"},
		{"username template", "op-{cid}", "secret", "op-{cid}", "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := testpki.NewCA(t, "gateway CA")
			f := startCentral(t, centralTLS(t, ca, tls.NoClientCert))
			o := tlsOptions(f, ca.WriteFile(t, t.TempDir(), "ca"))
			o.Username, o.Password = tt.username, tt.password
			rep := run(t, o, nil)
			if c := rep.Connections; c.Connected != int64(o.Count) || c.Failed != 0 {
				t.Errorf("connections %+v, want all %d connected", c, o.Count)
			}
			seen := f.wait()
			for _, cid := range ids(o) {
				user, pass := strings.ReplaceAll(tt.wantUser, "{cid}", cid), strings.ReplaceAll(tt.wantPass, "{cid}", cid)
				if s := seen[cid]; !s.basic || s.user != user || s.pass != pass || s.cn != "" || !s.booted {
					t.Errorf("%s: server saw %+v, want Basic %s:%s, no client certificate, a BootNotification", cid, s, user, pass)
				}
			}
		})
	}
}

// TestSimTLSHandshake runs one charge point per case against servers that do or do not
// accept it: a handshake that fails is Run's ErrUnreachable, at once and for its reason (not
// a time-out), and the cause the report would count it under names no address or id.
func TestSimTLSHandshake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		auth tls.ClientAuthType
		// server changes the central system's TLS config (nil config: plain ws://).
		server func(t *testing.T, cfg *tls.Config, ca *testpki.CA) *tls.Config
		// mutate sets the options; other is a CA the server does not use.
		mutate    func(t *testing.T, o *Options, ca, other *testpki.CA, dir string)
		wantErr   string // in Run's error; "" when it connects
		wantClass string // the cause of the failed dial
		wantSNI   string
		wantCN    string
		wantWarn  string
	}{
		{
			name: "CA that did not sign the server's certificate",
			mutate: func(t *testing.T, o *Options, _, other *testpki.CA, dir string) {
				o.TLSCA = other.WriteFile(t, dir, "other")
			},
			wantErr:   "x509: certificate signed by unknown authority",
			wantClass: "tls: failed to verify certificate: x509: certificate signed by unknown authority",
		},
		{
			name:    "system roots, which know no test CA",
			mutate:  func(_ *testing.T, o *Options, _, _ *testpki.CA, _ string) { o.TLSCA = "" },
			wantErr: "tls: failed to verify certificate: x509: ",
		},
		{
			name:      "server name the certificate does not have",
			mutate:    func(_ *testing.T, o *Options, _, _ *testpki.CA, _ string) { o.TLSServerName = "gw.example" },
			wantErr:   "x509: certificate is valid for localhost, not gw.example",
			wantClass: "tls: failed to verify certificate: x509: certificate is valid for localhost, not gw.example",
		},
		{
			name: "server that speaks TLS 1.1 at most",
			server: func(_ *testing.T, cfg *tls.Config, _ *testpki.CA) *tls.Config {
				cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
				return cfg
			},
			mutate:    func(*testing.T, *Options, *testpki.CA, *testpki.CA, string) {},
			wantErr:   "protocol version",
			wantClass: "remote error: tls: protocol version not supported",
		},
		{
			name: "server certificate expired",
			server: func(t *testing.T, cfg *tls.Config, ca *testpki.CA) *tls.Config {
				cfg.Certificates = []tls.Certificate{ca.Issue(t, testpki.LeafOptions{CN: "localhost", DNS: []string{"localhost"},
					IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, NotAfter: time.Now().Add(-time.Minute)}).TLS}
				return cfg
			},
			mutate:    func(*testing.T, *Options, *testpki.CA, *testpki.CA, string) {},
			wantErr:   "x509: certificate has expired or is not yet valid",
			wantClass: "tls: failed to verify certificate: x509: certificate has expired or is not yet valid",
		},
		{
			name:      "no client certificate for a profile 3 server",
			auth:      tls.RequireAndVerifyClientCert,
			mutate:    func(*testing.T, *Options, *testpki.CA, *testpki.CA, string) {},
			wantErr:   "certificate required",
			wantClass: "remote error: tls: certificate required",
		},
		{
			name: "client certificate from another CA",
			auth: tls.RequireAndVerifyClientCert,
			mutate: func(t *testing.T, o *Options, _, other *testpki.CA, dir string) {
				o.TLSCert, o.TLSKey = other.Client(t, "stranger", "", testpki.ECDSA).WriteFiles(t, dir, "stranger")
			},
			wantErr:   "unknown certificate authority",
			wantClass: "remote error: tls: unknown certificate authority",
		},
		{
			name:   "wss:// to a server without TLS",
			server: func(*testing.T, *tls.Config, *testpki.CA) *tls.Config { return nil },
			mutate: func(_ *testing.T, o *Options, _, _ *testpki.CA, _ string) {
				o.URL = "wss" + strings.TrimPrefix(o.URL, "ws")
			},
			wantErr:   "server gave HTTP response to HTTPS client",
			wantClass: "http: server gave HTTP response to HTTPS client",
		},
		{
			name:    "server name override",
			mutate:  func(_ *testing.T, o *Options, _, _ *testpki.CA, _ string) { o.TLSServerName = "localhost" }, // URL is 127.0.0.1
			wantSNI: "localhost",
		},
		{
			name: "one certificate for every charge point",
			auth: tls.RequireAndVerifyClientCert,
			mutate: func(t *testing.T, o *Options, ca, _ *testpki.CA, dir string) {
				o.TLSCert, o.TLSKey = ca.Client(t, "depot", "", testpki.ECDSA).WriteFiles(t, dir, "depot")
			},
			wantCN: "depot",
		},
		{
			name: "TLS 1.2 with a client certificate",
			auth: tls.RequireAndVerifyClientCert,
			server: func(_ *testing.T, cfg *tls.Config, _ *testpki.CA) *tls.Config {
				cfg.MaxVersion = tls.VersionTLS12
				return cfg
			},
			mutate: func(t *testing.T, o *Options, ca, _ *testpki.CA, dir string) {
				o.TLSCert, o.TLSKey = ca.Client(t, "depot", "", testpki.RSA).WriteFiles(t, dir, "depot")
			},
			wantCN: "depot",
		},
		{
			name: "insecure skip verify accepts an unknown CA",
			mutate: func(t *testing.T, o *Options, _, other *testpki.CA, dir string) {
				o.TLSCA, o.TLSInsecureSkipVerify = other.WriteFile(t, dir, "other"), true
			},
			wantWarn: "--tls-insecure-skip-verify: server certificates were not verified",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca, other := testpki.NewCA(t, "gateway CA"), testpki.NewCA(t, "someone else's CA")
			dir := t.TempDir()
			cfg := centralTLS(t, ca, tt.auth)
			if tt.server != nil {
				cfg = tt.server(t, cfg, ca)
			}
			f := startCentral(t, cfg)
			o := tlsOptions(f, ca.WriteFile(t, dir, "ca"))
			o.Count = 2
			tt.mutate(t, &o, ca, other, dir)

			rep, err := runErr(t, o)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Run: %v, want ErrUnreachable containing %q", err, tt.wantErr)
				}
				if class := dialFirst(t, o); tt.wantClass != "" && class != tt.wantClass {
					t.Errorf("dial failure counted as %q, want %q", class, tt.wantClass)
				} else if strings.Contains(class, "127.0.0.1") || strings.Contains(class, "sim-") || class == "timeout" {
					t.Errorf("dial failure counted as %q, want a cause without address or id", class)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if c := rep.Connections; c.Connected != int64(o.Count) || c.Failed != 0 {
				t.Errorf("connections %+v, want all %d connected", c, o.Count)
			}
			seen := f.wait()
			for _, cid := range ids(o) {
				if s := seen[cid]; s.sni != tt.wantSNI || s.cn != tt.wantCN || !s.booted {
					t.Errorf("%s: server saw %+v, want SNI %q, CN %q, a BootNotification", cid, s, tt.wantSNI, tt.wantCN)
				}
			}
			if got := strings.Join(rep.Warnings, "\n"); tt.wantWarn == "" && got != "" || !strings.Contains(got, tt.wantWarn) {
				t.Errorf("warnings %q, want %q", rep.Warnings, tt.wantWarn)
			}
		})
	}
}

// newTestRunner sets a runner up for dials as Run does, with pool (nil: the one Run makes).
func newTestRunner(t *testing.T, o Options, pool *sourcePool) *runner {
	t.Helper()
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	r := newRunner(o)
	if err := r.setupTLS(); err != nil {
		t.Fatal(err)
	}
	if pool == nil {
		u, _ := url.Parse(o.URL)
		pool = newSourcePool(resolveTarget(context.Background(), u.Hostname()), nil)
	}
	r.pool = pool
	tr := r.transport(r.ocppTLS)
	t.Cleanup(tr.CloseIdleConnections)
	r.client = &http.Client{Transport: tr}
	return r
}

// dialFirst dials the first charge point of a run with o and returns the cause the report
// counts its failure under ("" when it connected).
func dialFirst(t *testing.T, o Options) string {
	t.Helper()
	r := newTestRunner(t, o, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := r.cps[0].dial(ctx)
	if err == nil {
		conn.CloseNow()
		return ""
	}
	for class := range r.m.failReasons.snapshot() {
		return class
	}
	t.Fatalf("dial failed (%v) and counted no cause", err)
	return ""
}

// TestSimTLSSourceSpreading: when the first source address has no free port, TLS dials move
// to 127.0.0.2 as plain ones do, and still verify and name the gateway by the URL's host.
func TestSimTLSSourceSpreading(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("127.0.0.2 is a loopback address only on Linux")
	}
	tests := []struct {
		name   string
		perCID bool // certificates per charge point: a transport per dial
	}{
		{"shared client", false},
		{"a client per charge point", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := testpki.NewCA(t, "gateway CA")
			dir := t.TempDir()
			f := startCentral(t, centralTLS(t, ca, tls.VerifyClientCertIfGiven))
			o := tlsOptions(f, ca.WriteFile(t, dir, "ca"))
			o.URL = strings.Replace(o.URL, "127.0.0.1", "localhost", 1)
			o.Count = 2
			want := seenCP{sni: "localhost", remoteIP: "127.0.0.2"}
			if tt.perCID {
				writeClientCerts(t, ca, dir, ids(o)...)
				o.TLSCert, o.TLSKey = filepath.Join(dir, "{cid}.crt"), filepath.Join(dir, "{cid}.key")
			}
			pool := newSourcePool(netip.MustParseAddr("127.0.0.1"), func(ctx context.Context, network, addr string, local net.Addr) (net.Conn, error) {
				if local == nil {
					return nil, eaddrnotavail() // pretend the kernel's source is full
				}
				return netDial(ctx, network, addr, local)
			})
			r := newTestRunner(t, o, pool)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for _, cp := range r.cps {
				conn, err := cp.dial(ctx)
				if err != nil {
					t.Fatalf("%s: %v", cp.cid, err)
				}
				conn.Close(websocket.StatusNormalClosure, "")
			}
			seen := f.wait()
			for _, cp := range r.cps {
				w := want
				if tt.perCID {
					w.cn = cp.cid
				}
				if s := seen[cp.cid]; s.sni != w.sni || s.remoteIP != w.remoteIP || s.cn != w.cn {
					t.Errorf("%s: server saw %+v, want %+v", cp.cid, s, w)
				}
			}
			if pool.Used() != 2 {
				t.Errorf("source addresses used %d, want 2", pool.Used())
			}
		})
	}
}

// allowAll lets every MQTT client connect, publish and subscribe.
type allowAll struct{ mqtt.HookBase }

func (allowAll) ID() string { return "allow-all" }

func (allowAll) Provides(b byte) bool { return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck }

func (allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// startMQTTS runs an MQTT broker (mochi, allowing everyone) on a TLS listener on
// 127.0.0.1:0 and returns its address.
func startMQTTS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.AddHook(new(allowAll), nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "mqtts", Address: "127.0.0.1:0", TLSConfig: cfg})
	if err := s.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return l.Address()
}

// TestSimMQTTS connects the responder and the command publisher over mqtts:// with a client
// certificate, verifying the broker with --tls-ca, while the charge points use plain ws://.
func TestSimMQTTS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		mutate      func(t *testing.T, o *Options, ca, other *testpki.CA, dir string)
		wantErr     string // in Run's error; "" when the run happens
		unreachable bool   // the error is ErrUnreachable
	}{
		{
			name:   "client certificate",
			mutate: func(*testing.T, *Options, *testpki.CA, *testpki.CA, string) {},
		},
		{
			name: "CA that did not sign the broker's certificate",
			mutate: func(t *testing.T, o *Options, _, other *testpki.CA, dir string) {
				o.TLSCA = other.WriteFile(t, dir, "other")
			},
			wantErr:     "x509: certificate signed by unknown authority",
			unreachable: true,
		},
		{
			name:        "no client certificate",
			mutate:      func(_ *testing.T, o *Options, _, _ *testpki.CA, _ string) { o.MQTTTLSCert, o.MQTTTLSKey = "", "" },
			wantErr:     "MQTT broker",
			unreachable: true,
		},
		{
			name: "client certificate file missing",
			mutate: func(_ *testing.T, o *Options, _, _ *testpki.CA, dir string) {
				o.MQTTTLSCert = filepath.Join(dir, "nope.crt")
			},
			wantErr: "mqtt-tls-cert, mqtt-tls-key: client certificate ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca, other := testpki.NewCA(t, "broker CA"), testpki.NewCA(t, "someone else's CA")
			dir := t.TempDir()
			var mu sync.Mutex
			var cns []string
			cfg := centralTLS(t, ca, tls.RequireAndVerifyClientCert)
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) > 0 {
					mu.Lock()
					cns = append(cns, cs.PeerCertificates[0].Subject.CommonName)
					mu.Unlock()
				}
				return nil
			}
			addr := startMQTTS(t, cfg)
			f := startCentral(t, nil)
			o := tlsOptions(f, ca.WriteFile(t, dir, "ca"))
			o.Count = 2
			o.Respond, o.CommandRate = true, 1
			o.MQTTURL = "mqtts://" + addr
			o.MQTTTLSCert, o.MQTTTLSKey = ca.Client(t, "csms", "", testpki.ECDSA).WriteFiles(t, dir, "csms")
			tt.mutate(t, &o, ca, other, dir)

			rep, err := runErr(t, o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, ErrUnreachable) != tt.unreachable {
					t.Fatalf("Run: %v, want an error containing %q (ErrUnreachable %v)", err, tt.wantErr, tt.unreachable)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if c := rep.Connections; c.Connected != int64(o.Count) || rep.Responder == nil || len(rep.Warnings) != 0 {
				t.Errorf("connections %+v, responder %+v, warnings %q", c, rep.Responder, rep.Warnings)
			}
			f.wait()
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(cns) != "[csms csms]" {
				t.Errorf("broker saw client certificates %q, want csms for the responder and the command publisher", cns)
			}
		})
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
