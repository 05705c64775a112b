package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"

	"github.com/chargemq/chargemq/broker/certs"
	"github.com/chargemq/chargemq/broker/users"
	"github.com/chargemq/chargemq/internal/testpki"
)

// tlsPKI is a test CA and the files a TLS broker serves from it: a server
// certificate for 127.0.0.1 and the CA itself as the client CA.
type tlsPKI struct {
	ca       *testpki.CA
	dir      string
	server   certs.Pair
	clientCA string
}

func newTLSPKI(t *testing.T, name string) *tlsPKI {
	t.Helper()
	ca := testpki.NewCA(t, name)
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t, testpki.ECDSA).WriteFiles(t, dir, "server")
	return &tlsPKI{ca: ca, dir: dir, server: certs.Pair{Cert: certFile, Key: keyFile}, clientCA: ca.WriteFile(t, dir, "client-ca")}
}

// serve makes o's TLS listeners serve p's server certificate and, with
// clientCA, verify client certificates of p's CA (profile 3 on ocpp-tls).
func (p *tlsPKI) serve(o *Options, clientCA bool) {
	o.TLS = certs.Options{Certificates: []certs.Pair{p.server}}
	if clientCA {
		o.TLS.ClientCA = p.clientCA
	}
}

// client issues a client certificate of p's CA.
func (p *tlsPKI) client(t *testing.T, cn, org string) *testpki.Leaf {
	t.Helper()
	return p.ca.Client(t, cn, org, testpki.ECDSA)
}

// trusting is a client config that trusts only ca and presents leaf, if
// given, whatever CAs the server asks for: crypto/tls would otherwise
// send no certificate when it is not of one of them, and a test of the
// server's verification would test the client's choice instead.
func trusting(ca *testpki.CA, leaf ...*testpki.Leaf) *tls.Config {
	c := &tls.Config{RootCAs: ca.Pool}
	if len(leaf) > 0 {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &leaf[0].TLS, nil }
	}
	return c
}

func httpsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

// userKey is the password every test user of this file is given.
func userKey(name string) string { return name + "-key-0123456789abcdef" }

// writeTLSUsers writes a users file of us, each with password userKey(name).
func writeTLSUsers(t *testing.T, us ...users.User) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.yaml")
	for _, u := range us {
		if _, err := users.AddUser(path, u, userKey(u.Name), 4); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// cpDial is one charge point's attempt to connect and what it must
// come to.
type cpDial struct {
	name, listener, cid string
	// cfg is the client's TLS config; nil dials plain ws.
	cfg *tls.Config
	// user and pass are Basic credentials, sent when user is set.
	user, pass string
	// want is 101 (admitted), the HTTP status of the refusal, or 0: the
	// connection fails before any HTTP answer (refused by TLS), with an
	// error that says tlsErr.
	want   int
	tlsErr string
	// profile is the security profile an admitted one must be seen with.
	profile int
}

// run dials as h says, checks what it came to, and returns the charge
// point when it was admitted.
func (h cpDial) run(t *testing.T, b *Broker) *chargePoint {
	t.Helper()
	scheme, client := "ws://", (*http.Client)(nil)
	if h.cfg != nil {
		scheme, client = "wss://", httpsClient(h.cfg)
	}
	hdr := http.Header{}
	if h.user != "" {
		hdr.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(h.user+":"+h.pass)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, scheme+b.Addr(h.listener).String()+"/ocpp/"+h.cid,
		&websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}, HTTPHeader: hdr, HTTPClient: client})
	code := 0
	if resp != nil {
		code = resp.StatusCode
	}
	if ws != nil {
		t.Cleanup(func() { ws.CloseNow() })
	}
	if code != h.want {
		t.Fatalf("%s: handshake came to HTTP %d (%v), want %d", h.name, code, err, h.want)
	}
	if h.want != statusAdmitted {
		if err == nil || h.want == 0 && !strings.Contains(err.Error(), h.tlsErr) {
			t.Fatalf("%s: dial: %v, want it refused (%q)", h.name, err, h.tlsErr)
		}
		return nil
	}
	if err != nil {
		t.Fatalf("%s: %v", h.name, err)
	}
	if h.profile != 0 {
		waitProfile(t, b, h.cid, h.profile)
	}
	return &chargePoint{ws: ws}
}

// waitProfile waits for cid to be connected with security profile p.
func waitProfile(t *testing.T, b *Broker, cid string, p int) {
	t.Helper()
	waitFor(t, cid+" connected", func() bool {
		for _, s := range b.OCPP().Sessions() {
			if s.CID == cid && s.SecurityProfile == p {
				return true
			}
		}
		return false
	})
}

const statusAdmitted = http.StatusSwitchingProtocols

// serverRefused starts the error of a handshake the server refused with
// an alert (rather than the client, for not trusting its certificate).
const serverRefused = "remote error: tls: "

// bootFrame is a BootNotification CALL reporting serial.
func bootFrame(id, serial string) string {
	return `[2,"` + id + `","BootNotification",{"chargePointVendor":"V","chargePointModel":"M","chargePointSerialNumber":"` + serial + `"}]`
}

// TestTLSProfile3CertificateIdentity holds profile 3 with the default
// identity rule (cn) and no users file: a client certificate of the client
// CA whose CN is the charge point id is admitted with SecurityProfile 3; a
// CN naming another charge point is refused 403; no certificate, or one
// of another CA, fails the TLS handshake.
func TestTLSProfile3CertificateIdentity(t *testing.T) {
	t.Parallel()
	p := newTLSPKI(t, "client CA")
	b := startBroker(t, func(o *Options) {
		o.OCPPTLSAddr = "127.0.0.1:0"
		o.ClientCertIdentity = "" // the default
		p.serve(o, true)
	})
	cp1 := p.client(t, "CP1", "")
	stranger := testpki.NewCA(t, "another CA").Client(t, "CP1", "", testpki.ECDSA)
	for _, h := range []cpDial{
		{name: "CN is the id", cid: "CP1", cfg: trusting(p.ca, cp1), want: statusAdmitted, profile: 3},
		{name: "CN is another id", cid: "CP2", cfg: trusting(p.ca, cp1), want: http.StatusForbidden},
		{name: "no certificate", cid: "CP1", cfg: trusting(p.ca), tlsErr: serverRefused},
		{name: "certificate of another CA", cid: "CP1", cfg: trusting(p.ca, stranger), tlsErr: serverRefused},
	} {
		h.listener = ListenerOCPPTLS
		h.run(t, b)
	}
}

// TestTLSClientCertOrganization holds ocpp.client_cert_organization: a
// certificate whose Subject O is the operator's is admitted; another O,
// or none, is refused 403.
func TestTLSClientCertOrganization(t *testing.T) {
	t.Parallel()
	p := newTLSPKI(t, "client CA")
	b := startBroker(t, func(o *Options) {
		o.OCPPTLSAddr = "127.0.0.1:0"
		o.ClientCertOrganization = "ACME Charging"
		p.serve(o, true)
	})
	for _, tc := range []struct {
		name, cid, org string
		want           int
	}{
		{"right organization", "CP1", "ACME Charging", statusAdmitted},
		{"wrong organization", "CP2", "Evil Corp", http.StatusForbidden},
		{"no organization", "CP3", "", http.StatusForbidden},
	} {
		h := cpDial{name: tc.name, listener: ListenerOCPPTLS, cid: tc.cid,
			cfg: trusting(p.ca, p.client(t, tc.cid, tc.org)), want: tc.want, profile: 3}
		h.run(t, b)
	}
}

// TestTLSIdentityNone holds ocpp.client_cert_identity none: any
// certificate of the client CA is admitted as any charge point.
func TestTLSIdentityNone(t *testing.T) {
	t.Parallel()
	p := newTLSPKI(t, "client CA")
	b := startBroker(t, func(o *Options) {
		o.OCPPTLSAddr = "127.0.0.1:0"
		o.ClientCertIdentity = IdentityNone
		p.serve(o, true)
	})
	for _, tc := range []struct{ name, cn, cid string }{
		{"another charge point's certificate", "CP-Y", "CP-X"},
		{"a certificate without CN", "", "CP-Z"},
	} {
		h := cpDial{name: tc.name, listener: ListenerOCPPTLS, cid: tc.cid,
			cfg: trusting(p.ca, p.client(t, tc.cn, "")), want: statusAdmitted, profile: 3}
		h.run(t, b)
	}
}

// TestTLSIdentitySerial holds ocpp.client_cert_identity serial through
// the broker: a charge point whose certificate's CN is its serial number
// gets SecurityError for calls before its BootNotification, and neither
// presence nor forwarding; the BootNotification reporting that serial
// brings it online and is published; a charge point reporting another
// serial is answered Rejected, closed 1008 auth_failed, never online, and
// its retained presence says offline with reason auth_failed. Sending
// Basic credentials as well does not lift the binding.
func TestTLSIdentitySerial(t *testing.T) {
	t.Parallel()
	p := newTLSPKI(t, "client CA")
	path := writeTLSUsers(t, users.User{Name: "CP-C", Role: users.RoleChargePoint},
		users.User{Name: "csms", Role: users.RoleMQTT, Sub: []string{"ocpp/#", "test/barrier"}}) // the barrier of mqttClient.subscribe
	b := startBroker(t, func(o *Options) {
		o.OCPPTLSAddr = "127.0.0.1:0"
		o.ClientCertIdentity = IdentitySerial
		o.UsersFile = path // CP-A and CP-B have no entry: their certificates admit them
		p.serve(o, true)
	})
	sub := dialMQTTAs(t, b.Addr(ListenerMQTT), "csms", "csms")
	sub.subscribe(t, "ocpp/#")

	cp := cpDial{name: "CP-A", listener: ListenerOCPPTLS, cid: "CP-A",
		cfg: trusting(p.ca, p.client(t, "SN-42", "")), want: statusAdmitted}.run(t, b)
	cp.send(t, `[2,"h1","Heartbeat",{}]`)
	if got := cp.recv(t); got[0] != float64(4) || got[1] != "h1" || got[2] != "SecurityError" {
		t.Fatalf("Heartbeat before BootNotification answered %v, want CALLERROR SecurityError", got)
	}
	cp.send(t, bootFrame("b1", "SN-42"))
	// Nothing of CP-A was published before: the first message is its presence.
	expectPresence(t, sub, "CP-A", "online", "")
	m := sub.next(t, "ocpp/cp/CP-A")
	if pl, _ := m["Payload"].(map[string]any); m["UniqueId"] != "b1" || m["Action"] != "BootNotification" || pl["chargePointSerialNumber"] != "SN-42" {
		t.Fatalf("published %v, want the BootNotification b1", m)
	}
	waitProfile(t, b, "CP-A", 3)

	// Another charge point reports CP-A's serial: its certificate says SN-43.
	liar := cpDial{name: "CP-B", listener: ListenerOCPPTLS, cid: "CP-B",
		cfg: trusting(p.ca, p.client(t, "SN-43", "")), want: statusAdmitted}.run(t, b)
	liar.send(t, bootFrame("b2", "SN-42"))
	got := liar.recv(t)
	if pl, _ := got[2].(map[string]any); got[0] != float64(3) || got[1] != "b2" || pl["status"] != "Rejected" {
		t.Fatalf("wrong serial answered %v, want CALLRESULT Rejected", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := liar.ws.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "auth_failed" {
		t.Fatalf("after Rejected: %v, want close 1008 auth_failed", err)
	}
	expectPresence(t, sub, "CP-B", "offline", "auth_failed") // and never online before
	late := dialMQTTAs(t, b.Addr(ListenerMQTT), "late", "csms")
	late.subscribe(t, "ocpp/presence/CP-B")
	select {
	case p := <-late.msgs:
		if !p.Retain || !strings.Contains(string(p.Payload), `"state":"offline"`) || !strings.Contains(string(p.Payload), `"reason":"auth_failed"`) {
			t.Fatalf("retained presence of CP-B: retain %v %s, want offline auth_failed", p.Retain, p.Payload)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no retained presence for CP-B")
	}

	withKey := cpDial{name: "CP-C", listener: ListenerOCPPTLS, cid: "CP-C", user: "CP-C", pass: userKey("CP-C"),
		cfg: trusting(p.ca, p.client(t, "SN-7", "")), want: statusAdmitted}.run(t, b)
	withKey.send(t, `[2,"h2","Heartbeat",{}]`)
	if got := withKey.recv(t); got[0] != float64(4) || got[2] != "SecurityError" {
		t.Fatalf("Heartbeat of a charge point with certificate and credentials answered %v, want CALLERROR SecurityError", got)
	}
}

// TestTLSProfile2Basic holds profile 2: ocpp-tls without a client CA
// takes Basic credentials over TLS; the right ones connect with
// SecurityProfile 2, wrong or missing ones get 401.
func TestTLSProfile2Basic(t *testing.T) {
	t.Parallel()
	p := newTLSPKI(t, "server CA")
	path := writeTLSUsers(t, users.User{Name: "CP1", Role: users.RoleChargePoint})
	b := startBroker(t, func(o *Options) {
		o.OCPPTLSAddr = "127.0.0.1:0"
		o.UsersFile = path
		p.serve(o, false)
	})
	for _, h := range []cpDial{
		{name: "right credentials", cid: "CP1", user: "CP1", pass: userKey("CP1"), want: statusAdmitted, profile: 2},
		{name: "wrong credentials", cid: "CP1", user: "CP1", pass: "wrong-key-0123456789", want: http.StatusUnauthorized},
		{name: "no credentials", cid: "CP1", want: http.StatusUnauthorized},
	} {
		h.listener, h.cfg = ListenerOCPPTLS, trusting(p.ca)
		h.run(t, b)
	}
}

// TestTLSBasicPortNextToProfile3 holds listeners.ocpp_tls_basic: next to
// a profile 3 port, it serves profile 2 (Basic credentials, no
// certificate), while the profile 3 port refuses the same charge point
// without a certificate.
func TestTLSBasicPortNextToProfile3(t *testing.T) {
	t.Parallel()
	p := newTLSPKI(t, "client CA")
	path := writeTLSUsers(t, users.User{Name: "CP1", Role: users.RoleChargePoint})
	b := startBroker(t, func(o *Options) {
		o.OCPPTLSAddr, o.OCPPTLSBasicAddr = "127.0.0.1:0", "127.0.0.1:0"
		o.UsersFile = path
		p.serve(o, true)
	})
	for _, h := range []cpDial{
		{name: "basic port, right credentials", listener: ListenerOCPPTLSBasic, want: statusAdmitted, profile: 2},
		{name: "basic port, wrong credentials", listener: ListenerOCPPTLSBasic, pass: "wrong-key-0123456789", want: http.StatusUnauthorized},
		{name: "profile 3 port, no certificate", listener: ListenerOCPPTLS, tlsErr: serverRefused},
	} {
		h.cid, h.cfg, h.user = "CP1", trusting(p.ca), "CP1"
		if h.pass == "" {
			h.pass = userKey("CP1")
		}
		h.run(t, b)
	}
}

// TestTLSCertificateAndBasic holds the rule of certificate plus users
// file: a profile 3 charge point that sends no credentials is admitted by
// its certificate without a users-file entry; credentials it does send
// must be right (401 otherwise, also for another charge point's).
func TestTLSCertificateAndBasic(t *testing.T) {
	t.Parallel()
	p := newTLSPKI(t, "client CA")
	path := writeTLSUsers(t, users.User{Name: "CP1", Role: users.RoleChargePoint})
	b := startBroker(t, func(o *Options) {
		o.OCPPTLSAddr = "127.0.0.1:0"
		o.UsersFile = path
		p.serve(o, true)
	})
	cp1, cp9 := p.client(t, "CP1", ""), p.client(t, "CP9", "")
	for _, h := range []cpDial{
		{name: "certificate and right credentials", cid: "CP1", cfg: trusting(p.ca, cp1), user: "CP1", pass: userKey("CP1"), want: statusAdmitted, profile: 3},
		{name: "certificate, no credentials, no users-file entry", cid: "CP9", cfg: trusting(p.ca, cp9), want: statusAdmitted, profile: 3},
		{name: "certificate and another charge point's credentials", cid: "CP9", cfg: trusting(p.ca, cp9), user: "CP1", pass: userKey("CP1"), want: http.StatusUnauthorized},
		{name: "certificate and wrong credentials", cid: "CP1", cfg: trusting(p.ca, cp1), user: "CP1", pass: "wrong-key-0123456789", want: http.StatusUnauthorized},
	} {
		h.listener = ListenerOCPPTLS
		h.run(t, b)
	}
}

// TestTLSMinProfile holds a user's min_profile: the right key on a
// weaker channel than the user's minimum is refused 403 (a wrong key
// still 401, so the minimum is not told to a guesser); on a channel that
// meets it the charge point connects.
func TestTLSMinProfile(t *testing.T) {
	t.Parallel()
	p := newTLSPKI(t, "client CA")
	path := writeTLSUsers(t,
		users.User{Name: "CP2", Role: users.RoleChargePoint, MinProfile: 2},
		users.User{Name: "CP3", Role: users.RoleChargePoint, MinProfile: 3})
	data, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(data), "min_profile: 2") || !strings.Contains(string(data), "min_profile: 3") {
		t.Fatalf("users file without min_profile (%v):\n%s", err, data)
	}
	b := startBroker(t, func(o *Options) {
		o.OCPPTLSAddr, o.OCPPTLSBasicAddr = "127.0.0.1:0", "127.0.0.1:0"
		o.UsersFile = path
		p.serve(o, true)
	})
	cert3 := p.client(t, "CP3", "")
	for _, h := range []cpDial{
		{name: "min 2 over ws", listener: ListenerOCPP, cid: "CP2", want: http.StatusForbidden},
		{name: "min 2 over wss", listener: ListenerOCPPTLSBasic, cid: "CP2", cfg: trusting(p.ca), want: statusAdmitted, profile: 2},
		{name: "min 3 over ws", listener: ListenerOCPP, cid: "CP3", want: http.StatusForbidden},
		{name: "min 3 on the profile 2 port", listener: ListenerOCPPTLSBasic, cid: "CP3", cfg: trusting(p.ca), want: http.StatusForbidden},
		{name: "min 3 with a certificate", listener: ListenerOCPPTLS, cid: "CP3", cfg: trusting(p.ca, cert3), want: statusAdmitted, profile: 3},
		{name: "min 3, wrong key on the profile 2 port", listener: ListenerOCPPTLSBasic, cid: "CP3", cfg: trusting(p.ca),
			pass: "wrong-key-0123456789", want: http.StatusUnauthorized},
	} {
		h.user = h.cid
		if h.pass == "" {
			h.pass = userKey(h.cid)
		}
		h.run(t, b)
	}
}

// mqttOver connects an MQTT 5 client over conn, queueing what it
// receives as dialMQTT's does. It returns the CONNACK, or the error of a
// connection that ended before one.
//
// The client has no keep-alive: paho writes a packet as several Writes
// (a net.Buffers, atomic only on a TCP socket's writev) and its pinger
// sends a PINGREQ at once after CONNACK from a goroutine of its own, so
// over TLS or WebSocket the PINGREQ can land inside the test's next
// packet, which the broker then rightly refuses as malformed.
func mqttOver(t *testing.T, conn net.Conn, cp *paho.Connect) (*mqttClient, *paho.Connack, error) {
	t.Helper()
	cp.KeepAlive = 0
	m := &mqttClient{msgs: make(chan *paho.Publish, 100), gone: make(chan *paho.Disconnect, 1)}
	m.c = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			m.msgs <- pr.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case m.gone <- d:
			default:
			}
		},
		OnClientError: func(error) {},
	})
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := m.c.Connect(ctx, cp)
	if ack == nil {
		return m, nil, err
	}
	if ack.ReasonCode == 0 {
		t.Cleanup(func() { m.c.Disconnect(&paho.Disconnect{}) })
	}
	return m, ack, nil
}

// dialMQTTAs is dialMQTT logging in as user, with password userKey(user).
func dialMQTTAs(t *testing.T, addr net.Addr, id, user string) *mqttClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	m, ack, err := mqttOver(t, conn, &paho.Connect{ClientID: id, CleanStart: true,
		UsernameFlag: true, Username: user, PasswordFlag: true, Password: []byte(userKey(user))})
	if ack == nil || ack.ReasonCode != 0 {
		t.Fatalf("mqtt connect %s as %s: %v %v", id, user, ack, err)
	}
	return m
}

// dialMQTTS opens an mqtts connection with cfg, handshake done.
func dialMQTTS(t *testing.T, addr net.Addr, cfg *tls.Config) (net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr.String())
}

// dialMQTTWSS opens an MQTT-over-wss connection with cfg.
func dialMQTTWSS(t *testing.T, addr net.Addr, cfg *tls.Config) (net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+addr.String()+"/mqtt",
		&websocket.DialOptions{Subprotocols: []string{"mqtt"}, HTTPClient: httpsClient(cfg)})
	if err != nil {
		return nil, err
	}
	return websocket.NetConn(context.Background(), ws, websocket.MessageBinary), nil
}

// subackCode subscribes to filter and returns the SUBACK reason code.
func subackCode(t *testing.T, m *mqttClient, filter string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, err := m.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if sa == nil || len(sa.Reasons) != 1 {
		t.Fatalf("subscribe %s: %v %v", filter, sa, err)
	}
	return sa.Reasons[0]
}

// mqttLogin is one MQTT login over TLS and the CONNACK it must get.
type mqttLogin struct {
	name       string
	cert       *testpki.Leaf
	user, pass string
	want       byte
	// tlsFails: the connection fails before a CONNACK (a certificate the
	// TLS stack refuses).
	tlsFails bool
}

// try dials with dial, logs in as l says and checks the CONNACK.
func (l mqttLogin) try(t *testing.T, ca *testpki.CA, dial func(*tls.Config) (net.Conn, error), id string) *mqttClient {
	t.Helper()
	cfg := trusting(ca)
	if l.cert != nil {
		cfg = trusting(ca, l.cert)
	}
	conn, err := dial(cfg)
	if err != nil {
		if l.tlsFails {
			return nil
		}
		t.Fatalf("%s: dial: %v", l.name, err)
	}
	cp := &paho.Connect{ClientID: id, CleanStart: true}
	if l.user != "" {
		cp.UsernameFlag, cp.Username = true, l.user
	}
	if l.pass != "" {
		cp.PasswordFlag, cp.Password = true, []byte(l.pass)
	}
	m, ack, err := mqttOver(t, conn, cp)
	switch {
	case l.tlsFails:
		if ack != nil {
			t.Fatalf("%s: CONNACK %#x, want the connection refused by TLS", l.name, ack.ReasonCode)
		}
		return nil
	case ack == nil:
		t.Fatalf("%s: no CONNACK: %v", l.name, err)
	case ack.ReasonCode != l.want:
		t.Fatalf("%s: CONNACK %#x, want %#x", l.name, ack.ReasonCode, l.want)
	}
	return m
}

// mqttLogins are the logins of a broker whose users file has the mqtt
// user csms (sub ocpp/#) and the chargepoint user CP1, and whose client
// CA is p's: a verified certificate logs in as the mqtt user its CN names
// (without a password), and as no other; username and password still work.
func mqttLogins(t *testing.T, p *tlsPKI) []mqttLogin {
	return []mqttLogin{
		{name: "certificate of an mqtt user", cert: p.client(t, "csms", ""), want: 0},
		{name: "certificate and its own username", cert: p.client(t, "csms", ""), user: "csms", want: 0},
		{name: "certificate of no user", cert: p.client(t, "stranger", ""), want: 0x86},
		{name: "certificate of a chargepoint user", cert: p.client(t, "CP1", ""), want: 0x86},
		{name: "certificate of another CA", cert: testpki.NewCA(t, "another CA").Client(t, "csms", "", testpki.ECDSA), tlsFails: true},
		{name: "username and password", user: "csms", pass: userKey("csms"), want: 0},
		{name: "nothing", want: 0x86},
	}
}

func csmsUsers(t *testing.T) string {
	t.Helper()
	return writeTLSUsers(t,
		users.User{Name: "csms", Role: users.RoleMQTT, Pub: []string{"ocpp/cs/#"}, Sub: []string{"ocpp/#"}},
		users.User{Name: "CP1", Role: users.RoleChargePoint})
}

// TestTLSMQTTClientCertificate holds mqtts with a users file and a client
// CA: a verified certificate logs in as the mqtt user its CN names, held
// to that user's ACL; a certificate naming no mqtt user is refused with
// CONNACK bad username or password; username and password work without a
// certificate.
func TestTLSMQTTClientCertificate(t *testing.T) {
	t.Parallel()
	p := newTLSPKI(t, "client CA")
	b := startBroker(t, func(o *Options) {
		o.MQTTTLSAddr = "127.0.0.1:0"
		o.UsersFile = csmsUsers(t)
		p.serve(o, true)
	})
	dial := func(cfg *tls.Config) (net.Conn, error) { return dialMQTTS(t, b.Addr(ListenerMQTTTLS), cfg) }
	logins := mqttLogins(t, p)
	for i, l := range logins {
		l.try(t, p.ca, dial, "c"+string(rune('a'+i)))
	}
	m := logins[0].try(t, p.ca, dial, "by-cert")
	if rc := subackCode(t, m, "ocpp/#"); rc > 2 {
		t.Fatalf("SUBACK %#x for ocpp/#, within csms's ACL", rc)
	}
	if rc := subackCode(t, m, "other/#"); rc != 0x87 {
		t.Fatalf("SUBACK %#x for other/#, want 0x87 (outside csms's ACL)", rc)
	}
}

// TestTLSMQTTWithoutClientCA holds plain mqtts: without a client CA a
// client connects over TLS without a certificate, and publishes and
// receives as over TCP.
func TestTLSMQTTWithoutClientCA(t *testing.T) {
	t.Parallel()
	p := newTLSPKI(t, "server CA")
	b := startBroker(t, func(o *Options) {
		o.MQTTTLSAddr = "127.0.0.1:0"
		p.serve(o, false)
	})
	conn, err := dialMQTTS(t, b.Addr(ListenerMQTTTLS), trusting(p.ca))
	if err != nil {
		t.Fatal(err)
	}
	m, ack, err := mqttOver(t, conn, &paho.Connect{ClientID: "mqtts", CleanStart: true})
	if ack == nil || ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %v %v", ack, err)
	}
	mqttRoundTrip(t, m, dialMQTT(t, b.Addr(ListenerMQTT), "pub"))
}

// mqttRoundTrip has sub subscribe to t/# and receive what pub publishes.
func mqttRoundTrip(t *testing.T, sub, pub *mqttClient) {
	t.Helper()
	sub.subscribe(t, "t/#")
	if rc := pub.publish(t, "t/x", `{"n":1}`, 1, false); rc != 0 {
		t.Fatalf("PUBACK %#x", rc)
	}
	if m := sub.next(t, "t/x"); m["n"] != float64(1) {
		t.Fatalf("got %v", m)
	}
}

// TestTLSMQTTOverWSS holds MQTT over wss: a client connects, subscribes
// and receives a publish; with a users file and a client CA, logins by
// certificate follow the same rules as on mqtts (the certificate reaches
// the login through the WebSocket upgrade).
func TestTLSMQTTOverWSS(t *testing.T) {
	t.Parallel()
	t.Run("open", func(t *testing.T) {
		t.Parallel()
		p := newTLSPKI(t, "server CA")
		b := startBroker(t, func(o *Options) {
			o.MQTTWSSAddr = "127.0.0.1:0"
			p.serve(o, false)
		})
		conn, err := dialMQTTWSS(t, b.Addr(ListenerMQTTWSS), trusting(p.ca))
		if err != nil {
			t.Fatal(err)
		}
		m, ack, err := mqttOver(t, conn, &paho.Connect{ClientID: "wss", CleanStart: true})
		if ack == nil || ack.ReasonCode != 0 {
			t.Fatalf("CONNACK %v %v", ack, err)
		}
		mqttRoundTrip(t, m, dialMQTT(t, b.Addr(ListenerMQTT), "pub"))
	})
	t.Run("client certificates", func(t *testing.T) {
		t.Parallel()
		p := newTLSPKI(t, "client CA")
		b := startBroker(t, func(o *Options) {
			o.MQTTWSSAddr = "127.0.0.1:0"
			o.UsersFile = csmsUsers(t)
			p.serve(o, true)
		})
		dial := func(cfg *tls.Config) (net.Conn, error) { return dialMQTTWSS(t, b.Addr(ListenerMQTTWSS), cfg) }
		logins := mqttLogins(t, p)
		for i, l := range logins {
			l.try(t, p.ca, dial, "w"+string(rune('a'+i)))
		}
		m := logins[0].try(t, p.ca, dial, "by-cert")
		if rc := subackCode(t, m, "other/#"); rc != 0x87 {
			t.Fatalf("SUBACK %#x for other/#, want 0x87 (outside csms's ACL)", rc)
		}
	})
}

// TestTLSAdminHTTPS holds listeners.http_tls: /healthz answers 200 over
// https with a server certificate that verifies against the test CA (and
// only against it).
func TestTLSAdminHTTPS(t *testing.T) {
	t.Parallel()
	p := newTLSPKI(t, "server CA")
	b := startBroker(t, func(o *Options) {
		o.HTTPTLSAddr = "127.0.0.1:0"
		p.serve(o, false)
	})
	url := "https://" + b.Addr(ListenerHTTPTLS).String() + "/healthz"
	resp, err := httpsClient(trusting(p.ca)).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" || resp.TLS == nil || len(resp.TLS.VerifiedChains) == 0 {
		t.Fatalf("GET /healthz: %d %q, TLS %v", resp.StatusCode, body, resp.TLS != nil)
	}
	if _, err := httpsClient(trusting(testpki.NewCA(t, "another CA"))).Get(url); err == nil {
		t.Fatal("a client trusting another CA accepted the server certificate")
	}
}

// TestTLSReload holds ReloadTLS: new handshakes see the new server
// certificate and client CA, connections made before go on, and a file
// that does not load leaves the current ones serving.
func TestTLSReload(t *testing.T) {
	t.Parallel()
	old := newTLSPKI(t, "old CA")
	var logs syncBuffer
	b := startBroker(t, func(o *Options) {
		o.OCPPTLSAddr = "127.0.0.1:0"
		old.serve(o, true)
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	sub := dialMQTT(t, b.Addr(ListenerMQTT), "csms")
	sub.subscribe(t, "ocpp/#")
	cp := cpDial{name: "before the reload", listener: ListenerOCPPTLS, cid: "CP1",
		cfg: trusting(old.ca, old.client(t, "CP1", "")), want: statusAdmitted, profile: 3}.run(t, b)
	expectPresence(t, sub, "CP1", "online", "")

	// The same files, now of another CA.
	next := testpki.NewCA(t, "new CA")
	next.Server(t, testpki.ECDSA).WriteFiles(t, old.dir, "server")
	next.WriteFile(t, old.dir, "client-ca")
	warned := logs.lines(`msg="certificate expires soon"`)
	if err := b.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	// testpki's certificates expire in a day: the reload warns again.
	if logs.lines(`msg="certificates reloaded"`) != 1 || logs.lines(`msg="certificate expires soon"`) != 2*warned {
		t.Fatalf("reload logged:\n%s", logs.b.String())
	}
	cp.send(t, `[2,"h1","Heartbeat",{}]`)
	if m := sub.next(t, "ocpp/cp/CP1"); m["UniqueId"] != "h1" {
		t.Fatalf("after the reload the connection made before published %v", m)
	}
	newCert := next.Client(t, "CP2", "", testpki.ECDSA)
	for _, h := range []cpDial{
		{name: "trusting only the old CA", cid: "CP2", cfg: trusting(old.ca, old.client(t, "CP2", "")), tlsErr: "x509: certificate signed by unknown authority"},
		{name: "old client certificate", cid: "CP2", cfg: trusting(next, old.client(t, "CP2", "")), tlsErr: serverRefused},
		{name: "trusting the new CA", cid: "CP2", cfg: trusting(next, newCert), want: statusAdmitted, profile: 3},
	} {
		h.listener = ListenerOCPPTLS
		h.run(t, b)
	}

	if err := os.WriteFile(old.server.Cert, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.ReloadTLS(); !errors.Is(err, certs.ErrNoCertificate) || !strings.Contains(err.Error(), old.server.Cert) {
		t.Fatalf("ReloadTLS with a broken file: %v, want an error naming %s", err, old.server.Cert)
	}
	if logs.lines(`level=ERROR msg="certificates not reloaded; the current ones stay"`) != 1 {
		t.Fatalf("failed reload logged:\n%s", logs.b.String())
	}
	cpDial{name: "after a failed reload", listener: ListenerOCPPTLS, cid: "CP3",
		cfg: trusting(next, next.Client(t, "CP3", "", testpki.ECDSA)), want: statusAdmitted, profile: 3}.run(t, b)
}

// TestTLSExpiryWarning holds the expiry warning at start: a certificate
// expiring within 30 days is logged WARN "certificate expires soon" with
// its file, an expired one ERROR, one with 60 days left not at all.
func TestTLSExpiryWarning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		notAfter time.Duration
		want     string // "" for no line
	}{
		{"10 days", 10 * 24 * time.Hour, `level=WARN msg="certificate expires soon"`},
		{"60 days", 60 * 24 * time.Hour, ""},
		{"expired", -time.Minute, `level=ERROR msg="certificate has expired"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ca := testpki.NewCA(t, "server CA")
			cert, keyFile := ca.Issue(t, testpki.LeafOptions{CN: "localhost", IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
				NotAfter: time.Now().Add(tc.notAfter)}).WriteFiles(t, t.TempDir(), "server")
			var logs syncBuffer
			startBroker(t, func(o *Options) {
				o.OCPPTLSAddr = "127.0.0.1:0"
				o.TLS = certs.Options{Certificates: []certs.Pair{{Cert: cert, Key: keyFile}}} // no client CA: it expires in a day
				o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			soon, expired := logs.lines(`msg="certificate expires soon"`), logs.lines(`msg="certificate has expired"`)
			if tc.want == "" {
				if soon+expired != 0 {
					t.Fatalf("%d warnings for a certificate with 60 days left:\n%s", soon+expired, logs.b.String())
				}
				return
			}
			if logs.lines(tc.want) != 1 || logs.lines("file="+cert) != 2 || soon+expired != 1 { // "certificate loaded" names it too
				t.Fatalf("want one %s naming %s:\n%s", tc.want, cert, logs.b.String())
			}
		})
	}
}

// TestTLSCipherSuitesAndVersions holds the OCPP TLS rules on ocpp-tls
// with an RSA and an ECDSA certificate: each of OCPP's four TLS 1.2
// suites is negotiated, with the certificate its key exchange needs (the
// TLS_RSA ones with the RSA certificate, though the ECDSA one comes
// first); a CBC suite, TLS 1.1 and TLS 1.0 are refused.
func TestTLSCipherSuitesAndVersions(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "server CA")
	dir := t.TempDir()
	ecCert, ecKey := ca.Server(t, testpki.ECDSA).WriteFiles(t, dir, "ecdsa")
	rsaCert, rsaKey := ca.Server(t, testpki.RSA).WriteFiles(t, dir, "rsa")
	b := startBroker(t, func(o *Options) {
		o.OCPPTLSAddr = "127.0.0.1:0"
		o.TLS = certs.Options{Certificates: []certs.Pair{{Cert: ecCert, Key: ecKey}, {Cert: rsaCert, Key: rsaKey}}}
	})
	addr := b.Addr(ListenerOCPPTLS)
	for _, tc := range []struct {
		name     string
		min, max uint16
		suite    uint16
		rsa      bool
		refused  string // the server's alert, for a refused handshake
	}{
		{"TLS_RSA_WITH_AES_128_GCM_SHA256", tls.VersionTLS12, tls.VersionTLS12, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, true, ""},
		{"TLS_RSA_WITH_AES_256_GCM_SHA384", tls.VersionTLS12, tls.VersionTLS12, tls.TLS_RSA_WITH_AES_256_GCM_SHA384, true, ""},
		{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", tls.VersionTLS12, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, false, ""},
		{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", tls.VersionTLS12, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, false, ""},
		{"CBC suite", tls.VersionTLS12, tls.VersionTLS12, tls.TLS_RSA_WITH_AES_128_CBC_SHA, true, serverRefused + "handshake failure"},
		{"TLS 1.1", tls.VersionTLS11, tls.VersionTLS11, 0, false, serverRefused + "protocol version"},
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, 0, false, serverRefused + "protocol version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := &tls.Config{RootCAs: ca.Pool, MinVersion: tc.min, MaxVersion: tc.max}
			if tc.suite != 0 {
				cfg.CipherSuites = []uint16{tc.suite}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr.String())
			if tc.refused != "" {
				if err == nil {
					c.Close()
				}
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("handshake: %v, want it refused (%q)", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cs := c.(*tls.Conn).ConnectionState()
			_, isRSA := cs.PeerCertificates[0].PublicKey.(*rsa.PublicKey)
			_, isEC := cs.PeerCertificates[0].PublicKey.(*ecdsa.PublicKey)
			if cs.Version != tls.VersionTLS12 || cs.CipherSuite != tc.suite || isRSA != tc.rsa || isEC == tc.rsa {
				t.Fatalf("negotiated %s %s with an RSA certificate %v, want TLS 1.2 %s (RSA %v)",
					tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), isRSA, tc.name, tc.rsa)
			}
		})
	}
}

// TestTLSNewRefuses holds checkTLS: New (and Validate) refuse a TLS
// listener without a certificate, listeners.ocpp_tls_basic without a
// client CA, an unknown ocpp.client_cert_identity and a certificate file
// that is not there, each error naming the setting.
func TestTLSNewRefuses(t *testing.T) {
	t.Parallel()
	p := newTLSPKI(t, "CA")
	missing := filepath.Join(t.TempDir(), "missing.crt")
	tests := []struct {
		name   string
		mutate func(*Options)
		want   []string
	}{
		{"bogus identity", func(o *Options) { o.ClientCertIdentity = "bogus" }, []string{"ocpp.client_cert_identity", `"bogus"`}},
		{"basic port without client CA", func(o *Options) { o.OCPPTLSAddr, o.OCPPTLSBasicAddr = ":0", ":0"; p.serve(o, false) },
			[]string{"listeners.ocpp_tls_basic", "tls.client_ca"}},
		{"missing certificate file", func(o *Options) {
			o.OCPPTLSAddr = ":0"
			o.TLS = certs.Options{Certificates: []certs.Pair{{Cert: missing, Key: p.server.Key}}}
		}, []string{"tls", missing}},
	}
	for _, l := range []struct {
		name string
		addr func(*Options) *string
	}{
		{ListenerOCPPTLS, func(o *Options) *string { return &o.OCPPTLSAddr }},
		{ListenerOCPPTLSBasic, func(o *Options) *string { return &o.OCPPTLSBasicAddr }},
		{ListenerMQTTTLS, func(o *Options) *string { return &o.MQTTTLSAddr }},
		{ListenerMQTTWSS, func(o *Options) *string { return &o.MQTTWSSAddr }},
		{ListenerHTTPTLS, func(o *Options) *string { return &o.HTTPTLSAddr }},
	} {
		tests = append(tests, struct {
			name   string
			mutate func(*Options)
			want   []string
		}{l.name + " without certificates", func(o *Options) { *l.addr(o) = ":0" }, []string{"tls.certificates", l.name}})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := DefaultOptions()
			o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			tc.mutate(&o)
			_, nerr := New(o)
			verr := Validate(o)
			for _, err := range []error{nerr, verr} {
				for _, w := range tc.want {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Fatalf("New: %v; Validate: %v; want errors naming %s", nerr, verr, w)
					}
				}
			}
		})
	}
}
