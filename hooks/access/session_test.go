package access

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/chargemq/chargemq/hooks/internal/mqtttest"
)

// user is a test user: its password, the patterns (for Covers) it may publish to and read, and
// whether its logins are backed off.
type user struct {
	name, password string
	pub, sub       []string
	backoff        bool
}

// testUsers returns the users of the tests, fresh for each fixture.
func testUsers() map[string]*user {
	us := map[string]*user{
		"admin":  {password: "pa", pub: []string{"#"}, sub: []string{"#", "$SYS/#"}},
		"cs":     {password: "pc", pub: []string{"ocpp/cs/#"}, sub: []string{"ocpp/#"}},
		"reader": {password: "pr", sub: []string{"ocpp/cp/+", "sensors/#"}},
		"alice":  {password: "px", pub: []string{"clients/alice/#"}, sub: []string{"ocpp/#", "clients/#"}},
		"bob":    {password: "py", pub: []string{"clients/bob/#"}, sub: []string{"clients/#"}},
		"slow":   {password: "ps", backoff: true},
	}
	for name, u := range us {
		u.name = name
	}
	return us
}

// covered reports whether one of patterns covers s.
func covered(patterns []string, s string) bool {
	for _, p := range patterns {
		if Covers(p, s) {
			return true
		}
	}
	return false
}

// fixture is a server with an access hook whose Authenticate and ACL are testUsers, and the
// records of what the hook reported.
type fixture struct {
	h     *Hook
	users map[string]*user
	srv   *mqtt.Server
	addr  string
	den   denials
	fails denials
	// gone receives the client id of each OnDisconnect and OnClientExpired, from a hook added
	// after the access hook (mochi runs hooks in order), so that a test can wait for the access
	// hook to have seen the event.
	gone chan string
	// seen counts the ids waitGone read from gone while waiting for another.
	seen map[string]int
	// authCalls counts Authenticate calls; beforeAuth, if set, runs at the start of each.
	authCalls  atomic.Int32
	beforeAuth func(n int32)
}

// signal is a test hook that reports session ends to fixture.gone and runs onConnect, if set.
type signal struct {
	mqtt.HookBase
	gone      chan string
	onConnect func(cl *mqtt.Client) error
}

func (s *signal) ID() string { return "test-signal" }
func (s *signal) Provides(b byte) bool {
	return b == mqtt.OnDisconnect || b == mqtt.OnClientExpired || (b == mqtt.OnConnect && s.onConnect != nil)
}
func (s *signal) OnDisconnect(cl *mqtt.Client, err error, expire bool) { s.send(cl.ID) }
func (s *signal) OnClientExpired(cl *mqtt.Client)                      { s.send("expired " + cl.ID) }
func (s *signal) OnConnect(cl *mqtt.Client, pk packets.Packet) error   { return s.onConnect(cl) }
func (s *signal) send(id string) {
	select {
	case s.gone <- id:
	default: // a test that does not wait must not stall the server
	}
}

// newFixture returns a fixture whose hook has not been added to a server yet.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{users: testUsers(), gone: make(chan string, 1000), seen: map[string]int{}}
	h, err := New(Options{
		Mountpoint: "ocpp/", IsDownstream: isDownstream, GatewayListener: gateway,
		OnDenied:     f.den.record,
		Authenticate: f.authenticate,
		MayPublish: func(identity any, clientID, topic string) bool {
			return covered(identity.(*user).pub, topic)
		},
		MaySubscribe: func(identity any, clientID, filter string) bool {
			return covered(identity.(*user).sub, filter)
		},
		OnAuthFailed: func(cl *mqtt.Client, res AuthResult) {
			f.fails.record(cl.ID, string(cl.Properties.Username)+" "+res.Reason)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	return f
}

// startFixture returns a fixture on a running server.
func startFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	f.start(t, nil)
	return f
}

// start runs a server with f's hook, for a fixture set up further (beforeAuth) before clients
// connect; onConnect, if set, is an OnConnect hook run after the access hook's.
func (f *fixture) start(t *testing.T, onConnect func(cl *mqtt.Client) error) {
	t.Helper()
	f.srv, f.addr = mqtttest.StartServer(t, f.h, &signal{gone: f.gone, onConnect: onConnect})
}

func (f *fixture) authenticate(cl *mqtt.Client, username, password []byte) AuthResult {
	n := f.authCalls.Add(1)
	if f.beforeAuth != nil {
		f.beforeAuth(n)
	}
	u, ok := f.users[string(username)]
	switch {
	case ok && u.backoff:
		return AuthResult{RetryAfter: 30*time.Second - time.Millisecond, Reason: "backed off"}
	case !ok:
		return AuthResult{Reason: "unknown user"}
	case string(password) != u.password:
		return AuthResult{Reason: "wrong password"}
	}
	return AuthResult{OK: true, Identity: u}
}

// dial5 connects an MQTT 5 client as user (none if empty) with clean start.
func (f *fixture) dial5(t *testing.T, id, username string, will *paho.WillMessage) (*mqtttest.V5Client, *paho.Connack, error) {
	t.Helper()
	return mqtttest.DialV5Connect(t, f.addr, f.connect5(id, username, true, will))
}

// connect5 returns an MQTT 5 CONNECT as username with its password.
func (f *fixture) connect5(id, username string, clean bool, will *paho.WillMessage) *paho.Connect {
	cp := &paho.Connect{ClientID: id, CleanStart: clean, WillMessage: will}
	if username != "" {
		cp.Username, cp.UsernameFlag = username, true
		cp.Password, cp.PasswordFlag = []byte(f.password(username)), true
	}
	return cp
}

// mustDial5 is dial5 without a Will that fails the test unless the client is connected.
func (f *fixture) mustDial5(t *testing.T, id, username string) *mqtttest.V5Client {
	t.Helper()
	c, _, err := f.dial5(t, id, username, nil)
	if err != nil {
		t.Fatalf("connect %s as %s: %v", id, username, err)
	}
	return c
}

// params3 returns a 3.1.1 CONNECT as username (none if empty) with its password.
func (f *fixture) params3(id, username string, clean bool) packets.ConnectParams {
	p := packets.ConnectParams{ClientIdentifier: id, Clean: clean}
	if username != "" {
		p.Username, p.UsernameFlag = []byte(username), true
		p.Password, p.PasswordFlag = []byte(f.password(username)), true
	}
	return p
}

// mustDial3 connects a 3.1.1 client as username and fails the test unless it is accepted.
func (f *fixture) mustDial3(t *testing.T, id, username string, clean bool) *mqtttest.V3Client {
	t.Helper()
	c, rc := mqtttest.DialV3Params(t, f.addr, f.params3(id, username, clean))
	if rc != 0 {
		t.Fatalf("connect %s as %s: CONNACK %d", id, username, rc)
	}
	return c
}

// password returns username's password, or a wrong one for a name given as "name:wrong".
func (f *fixture) password(username string) string {
	if name, ok := strings.CutSuffix(username, ":wrong"); ok {
		return f.users[name].password + "x"
	}
	if u, ok := f.users[username]; ok {
		return u.password
	}
	return "whatever"
}

// waitGone waits until the server has ended the connection of client id (the access hook's
// OnDisconnect has run), or with "expired " before id its session. Call it from the test's
// goroutine, once per event.
func (f *fixture) waitGone(t *testing.T, id string) {
	t.Helper()
	deadline := time.After(mqtttest.Timeout)
	for f.seen[id] == 0 {
		select {
		case got := <-f.gone:
			f.seen[got]++
		case <-deadline:
			t.Fatalf("%s: no OnDisconnect in time", id)
		}
	}
	f.seen[id]--
}

// tracked returns how many clients the hook keeps as pending and how many sessions.
func tracked(h *Hook) (pending, sessions int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.pending), len(h.sessions)
}

func TestProvidesWithAuthenticate(t *testing.T) {
	t.Parallel()
	h := newFixture(t).h
	for _, b := range []byte{mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish, mqtt.OnDisconnect, mqtt.OnClientExpired} {
		if !h.Provides(b) {
			t.Errorf("Provides(%d) = false", b)
		}
	}
	for _, b := range []byte{mqtt.OnPublish, mqtt.OnSubscribe, mqtt.OnWill, mqtt.OnSessionEstablished} {
		if h.Provides(b) {
			t.Errorf("Provides(%d) = true for an event the hook does not implement", b)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		username string // "" for none; "name:wrong" for name with a wrong password
		v5, v3   byte
		reason   string // what OnAuthFailed gets, "" for no call
	}{
		{"good credentials", "admin", 0, 0, ""},
		{"wrong password", "admin:wrong", 0x86, 4, "wrong password"},
		{"unknown user", "mallory", 0x86, 4, "unknown user"},
		{"no credentials", "", 0x86, 4, "unknown user"},
		{"backed off", "slow", 0x9F, 5, "backed off"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := startFixture(t)
			name, _ := strings.CutSuffix(c.username, ":wrong")
			cp := f.connect5("c5", c.username, true, nil)
			cp.Username = name
			_, ca, err := mqtttest.DialV5Connect(t, f.addr, cp)
			if ca == nil || ca.ReasonCode != c.v5 || (err == nil) != (c.v5 == 0) {
				t.Fatalf("v5: CONNACK %+v, %v; want %#x", ca, err, c.v5)
			}
			var reasonString string
			if ca.Properties != nil {
				reasonString = ca.Properties.ReasonString
			}
			switch {
			case c.v5 == 0x9F && reasonString != "connection rate exceeded, retry after 30s":
				t.Errorf("v5 back-off reason string %q", reasonString)
			case c.v5 == 0x86 && reasonString != "bad username or password":
				t.Errorf("v5 reason string %q, want mochi's, which does not tell why", reasonString)
			}
			p := f.params3("c3", c.username, true)
			p.Username = []byte(name)
			if _, rc := mqtttest.DialV3Params(t, f.addr, p); rc != c.v3 {
				t.Errorf("v3: CONNACK %d, want %d", rc, c.v3)
			}
			var want []string
			if c.reason != "" {
				want = []string{"c5 " + name + " " + c.reason, "c3 " + name + " " + c.reason}
			}
			if got := f.fails.list(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("OnAuthFailed calls %q, want %q", got, want)
			}
			if p, s := tracked(f.h); p != 0 || s > 2 {
				t.Errorf("tracked %d pending, %d sessions", p, s)
			}
		})
	}
}

// A refused client leaves no state, and bad credentials are answered before a bad Will.
func TestAuthenticateBeforeWill(t *testing.T) {
	t.Parallel()
	f := startFixture(t)
	will := &paho.WillMessage{Topic: "ocpp/presence/CP1", Payload: []byte("x")}
	_, ca, _ := f.dial5(t, "c", "mallory", will)
	if ca == nil || ca.ReasonCode != 0x86 {
		t.Errorf("CONNACK %+v, want 0x86", ca)
	}
	if got := f.den.list(); len(got) != 0 {
		t.Errorf("OnDenied(%q) for a client that did not authenticate", got)
	}
	if p, s := tracked(f.h); p != 0 || s != 0 {
		t.Errorf("tracked %d pending, %d sessions after a refusal", p, s)
	}
}

func TestWillCheckedAgainstUser(t *testing.T) {
	t.Parallel()
	cases := []struct {
		username, topic string
		ok              bool
	}{
		{"alice", "clients/alice/state", true},
		{"alice", "clients/bob/state", false},
		{"alice", "sensors/1", false},
		{"admin", "clients/bob/state", true},
		{"admin", "ocpp/cs/CP1", true},
		{"admin", "ocpp/presence/CP1", false},
		{"admin", "ocpp/cp/CP1", false},
		{"cs", "ocpp/cs/CP1", true},
		{"cs", "ocpp/cp/CP1", false},
	}
	for _, c := range cases {
		t.Run(c.username+" "+c.topic, func(t *testing.T) {
			t.Parallel()
			f := startFixture(t)
			v5, v3 := byte(0), byte(0)
			if !c.ok {
				v5, v3 = 0x87, 5
			}
			_, ca, _ := f.dial5(t, "w5", c.username, &paho.WillMessage{Topic: c.topic, Payload: []byte("offline")})
			if ca == nil || ca.ReasonCode != v5 {
				t.Errorf("v5: CONNACK %+v, want %#x", ca, v5)
			}
			p := f.params3("w3", c.username, true)
			p.WillFlag, p.WillTopic, p.WillPayload = true, c.topic, []byte("offline")
			if _, rc := mqtttest.DialV3Params(t, f.addr, p); rc != v3 {
				t.Errorf("v3: CONNACK %d, want %d", rc, v3)
			}
			want := 0
			if !c.ok {
				want = 2
			}
			if got := f.den.list(); len(got) != want {
				t.Errorf("OnDenied calls %q, want %d", got, want)
			}
		})
	}
}

func TestUserPublishACL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		username, topic string
		ok              bool
	}{
		{"cs", "ocpp/cs/CP1", true},
		{"cs", "ocpp/cs/CP2", true},
		{"cs", "ocpp/cs/CP1/x", false}, // the user's ACL allows it, the gateway's rule does not
		{"cs", "sensors/1", false},
		{"cs", "ocpp/cp/CP1", false},
		{"admin", "ocpp/cs/CP1", true},
		{"admin", "sensors/1", true},
		{"admin", "ocpp/cp/CP1", false},
		{"admin", "ocpp/cp/CP1/Reply", false},
		{"admin", "ocpp/presence/CP1", false},
		{"reader", "sensors/1", false},
	}
	f := startFixture(t)
	sub := f.mustDial5(t, "sub", "admin")
	sub.Subscribe(t, "#")
	pubs := map[string]*mqtttest.V5Client{}
	for _, name := range []string{"cs", "admin", "reader"} {
		pubs[name] = f.mustDial5(t, "pub-"+name, name)
	}
	denied := 0
	for _, c := range cases {
		want := byte(0)
		if !c.ok {
			want, denied = 0x87, denied+1
		}
		if rc := pubs[c.username].Publish(t, c.topic, 1, false, c.username); rc != want {
			t.Errorf("%s publishes to %s: PUBACK %#x, want %#x", c.username, c.topic, rc, want)
		}
		if c.ok {
			sub.ExpectNext(t, c.topic, c.username) // and nothing refused before it
		}
	}
	if got := f.den.list(); len(got) != denied || got[0] != "pub-cs ocpp/cs/CP1/x" {
		t.Errorf("OnDenied calls %q, want %d", got, denied)
	}
}

func TestV3UserPublishACL(t *testing.T) {
	t.Parallel()
	f := startFixture(t)
	sub := f.mustDial5(t, "sub", "admin")
	sub.Subscribe(t, "#")
	for _, c := range []struct{ username, topic string }{
		{"cs", "sensors/1"},
		{"admin", "ocpp/cp/CP1"},
	} {
		pub := f.mustDial3(t, "pub3-"+c.username, c.username, true)
		pub.Publish(t, c.topic, 0, 0, "refused") // QoS 0: dropped
		pub.Publish(t, "ocpp/cs/CP1", 0, 0, "marker")
		sub.ExpectNext(t, "ocpp/cs/CP1", "marker")
		pub.Publish(t, c.topic, 1, 1, "refused") // QoS 1: disconnected
		pub.ExpectClosed(t)
	}
	pub := f.mustDial3(t, "pub3", "cs", true)
	pub.Publish(t, "ocpp/cs/CP1", 1, 7, "cmd")
	if ack := pub.ExpectPacket(t, packets.Puback); ack.PacketID != 7 {
		t.Errorf("PUBACK for packet %d, want 7", ack.PacketID)
	}
}

func TestUserSubscribeACL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		filter string
		ok     bool
	}{
		{"ocpp/cp/+", true},
		{"ocpp/cp/CP1", true},
		{"sensors/#", true},
		{"sensors", true}, // sensors/# matches it
		{"sensors/+/temp", true},
		{"$share/g/sensors/#", true},
		{"$SHARE/g/ocpp/cp/+", true},
		{"ocpp/#", false},
		{"ocpp/cp/#", false},
		{"ocpp/cp/CP1/Reply", false},
		{"ocpp/cs/CP1", false},
		{"ocpp/+/CP1", false},
		{"#", false},
		{"+/cp/+", false},
		{"$SYS/#", false},
		{"$share/g/ocpp/#", false},
	}
	f := startFixture(t)
	c5 := f.mustDial5(t, "r5", "reader")
	c3 := f.mustDial3(t, "r3", "reader", true)
	filters := make([]string, len(cases))
	for i, c := range cases {
		filters[i] = c.filter
		want := byte(1)
		if !c.ok {
			want = 0x87
		}
		if rc := c5.SubscribeReason(t, c.filter); rc != want {
			t.Errorf("v5 subscribe %s: %#x, want %#x", c.filter, rc, want)
		}
	}
	codes := c3.Subscribe(t, 1, filters...)
	for i, c := range cases {
		want := byte(1)
		if !c.ok {
			want = 0x80
		}
		if codes[i] != want {
			t.Errorf("v3 subscribe %s: %#x, want %#x", c.filter, codes[i], want)
		}
	}
	if got := f.den.list(); len(got) != 0 {
		t.Errorf("OnDenied(%q) for reads", got)
	}
}

// mochi checks the read ACL again with the topic of each delivery: a user allowed ocpp/# must
// receive what is published under it, retained messages included.
func TestMountpointSubscriberReceives(t *testing.T) {
	t.Parallel()
	f := startFixture(t)
	cp := f.srv.NewClient(nil, gateway, "CP1", true)
	inject := func(topic, payload string, retain bool) {
		t.Helper()
		err := f.srv.InjectPacket(cp, packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: retain},
			TopicName:   topic, PacketID: 1, Payload: []byte(payload),
		})
		if err != nil {
			t.Fatalf("InjectPacket: %v", err)
		}
	}
	inject("ocpp/presence/CP1", "online", true)

	s5 := f.mustDial5(t, "s5", "cs")
	s5.Subscribe(t, "ocpp/#")
	s5.ExpectNext(t, "ocpp/presence/CP1", "online")
	s3 := f.mustDial3(t, "s3", "cs", true)
	if codes := s3.Subscribe(t, 1, "ocpp/#"); codes[0] != 1 {
		t.Fatalf("v3 subscribe: %#x", codes[0])
	}
	s3.ExpectNext(t, "ocpp/presence/CP1", "online")
	r := f.mustDial5(t, "r", "reader")
	r.Subscribe(t, "ocpp/cp/+")

	inject("ocpp/cp/CP1", "up", false)
	if rc := f.mustDial5(t, "cmd", "admin").Publish(t, "ocpp/cs/CP1", 1, false, "down"); rc != 0 {
		t.Fatalf("PUBACK %#x", rc)
	}
	for _, m := range [][2]string{{"ocpp/cp/CP1", "up"}, {"ocpp/cs/CP1", "down"}} {
		s5.ExpectNext(t, m[0], m[1])
		s3.ExpectNext(t, m[0], m[1])
	}
	r.ExpectNext(t, "ocpp/cp/CP1", "up")
}

// A session resumed under another user keeps its subscriptions, but what they deliver is read
// with the new user's rights.
func TestResumedSessionReadAsNewUser(t *testing.T) {
	t.Parallel()
	f := startFixture(t)
	expiry := uint32(300)
	cp := f.connect5("shared", "alice", false, nil)
	cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &expiry}
	alice, _, err := mqtttest.DialV5Connect(t, f.addr, cp)
	if err != nil {
		t.Fatal(err)
	}
	alice.Subscribe(t, "ocpp/#")
	alice.Subscribe(t, "clients/#")
	if err := alice.Paho.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	f.waitGone(t, "shared")

	cp = f.connect5("shared", "bob", false, nil)
	cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &expiry}
	bob, ca, err := mqtttest.DialV5Connect(t, f.addr, cp)
	if err != nil || !ca.SessionPresent {
		t.Fatalf("resume as bob: %+v, %v", ca, err)
	}
	admin := f.mustDial5(t, "admin", "admin")
	admin.Publish(t, "ocpp/cs/CP1", 1, false, "for alice only")
	admin.Publish(t, "clients/x", 1, false, "marker")
	bob.ExpectNext(t, "clients/x", "marker")
}

// An offline session keeps its user's identity: messages it may read are queued for it.
func TestOfflineSessionQueued(t *testing.T) {
	t.Parallel()
	f := startFixture(t)
	c := f.mustDial3(t, "q", "alice", false)
	if codes := c.Subscribe(t, 1, "ocpp/#"); codes[0] != 1 {
		t.Fatalf("subscribe: %#x", codes[0])
	}
	c.Disconnect(t)
	f.waitGone(t, "q")
	if _, s := tracked(f.h); s != 1 {
		t.Errorf("%d sessions tracked for one offline session", s)
	}
	if rc := f.mustDial5(t, "admin", "admin").Publish(t, "ocpp/cs/CP1", 1, false, "queued"); rc != 0 {
		t.Fatalf("PUBACK %#x", rc)
	}
	c = f.mustDial3(t, "q", "alice", false)
	c.ExpectNext(t, "ocpp/cs/CP1", "queued")
}

// The hook keeps nothing of a client whose session ended: no leak after many connects, refused
// ones among them, over both protocol versions; a persistent session's state goes when mochi
// expires it.
func TestSessionStateDropped(t *testing.T) {
	t.Parallel()
	f := startFixture(t)
	for i := range 100 {
		id := fmt.Sprintf("c%d", i)
		bad := i%5 == 0
		username := "alice"
		if bad {
			username = "alice:wrong"
		}
		if i%2 == 0 {
			c, ca, err := mqtttest.DialV5Connect(t, f.addr, f.connect5(id, username, true, nil))
			if (err != nil) != bad {
				t.Fatalf("%s: %+v, %v", id, ca, err)
			}
			if !bad {
				if err := c.Paho.Disconnect(&paho.Disconnect{}); err != nil {
					t.Fatal(err)
				}
			}
		} else {
			c, rc := mqtttest.DialV3Params(t, f.addr, f.params3(id, username, true))
			if (rc != 0) != bad {
				t.Fatalf("%s: CONNACK %d", id, rc)
			}
			if !bad {
				c.Disconnect(t)
			}
		}
		if !bad {
			f.waitGone(t, id)
		}
	}
	if p, s := tracked(f.h); p != 0 || s != 0 {
		t.Errorf("after 100 connects: %d pending, %d sessions tracked", p, s)
	}

	expiry := uint32(1)
	cp := f.connect5("persistent", "alice", false, nil)
	cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &expiry}
	c, _, err := mqtttest.DialV5Connect(t, f.addr, cp)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Paho.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	f.waitGone(t, "persistent")
	if _, s := tracked(f.h); s != 1 {
		t.Errorf("%d sessions tracked for one offline session", s)
	}
	f.waitGone(t, "expired persistent") // mochi's expiry runs every second
	if p, s := tracked(f.h); p != 0 || s != 0 {
		t.Errorf("after expiry: %d pending, %d sessions tracked", p, s)
	}
}

// A client admitted by this hook and refused by a later one is forgotten at the next connect.
func TestPendingSwept(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	pk := packets.Packet{Connect: packets.ConnectParams{Username: []byte("admin"), Password: []byte("pa")}}
	var cls []*mqtt.Client
	for i := range 3 {
		a, b := net.Pipe()
		t.Cleanup(func() { _, _ = a.Close(), b.Close() })
		cl := srv.NewClient(a, "tcp", fmt.Sprint(i), false)
		cl.Properties.ProtocolVersion = 5
		if err := f.h.OnConnect(cl, pk); err != nil {
			t.Fatal(err)
		}
		cls = append(cls, cl)
	}
	if p, _ := tracked(f.h); p != 3 {
		t.Fatalf("%d pending, want 3", p)
	}
	cls[0].Stop(errors.New("refused by a later hook"))
	cls[1].Stop(errors.New("refused by a later hook"))
	a, b := net.Pipe()
	t.Cleanup(func() { _, _ = a.Close(), b.Close() })
	cl := srv.NewClient(a, "tcp", "next", false)
	if err := f.h.OnConnect(cl, pk); err != nil {
		t.Fatal(err)
	}
	if p, _ := tracked(f.h); p != 2 {
		t.Errorf("%d pending, want 2 (the open one and the new one)", p)
	}
}

// With Authenticate, a network client without a session identity may do nothing; inline clients
// keep the gateway's rules.
func TestACLWithoutSession(t *testing.T) {
	t.Parallel()
	h := newFixture(t).h
	stranger := &mqtt.Client{ID: "c"}
	stranger.Net.Listener = "tcp"
	for _, c := range []struct {
		topic string
		write bool
	}{{"sensors/1", true}, {"ocpp/cs/CP1", true}, {"sensors/1", false}, {"#", false}} {
		if h.OnACLCheck(stranger, c.topic, c.write) {
			t.Errorf("OnACLCheck(stranger, %q, write=%v) = true", c.topic, c.write)
		}
	}
	cp := &mqtt.Client{ID: "CP1"}
	cp.Net.Inline, cp.Net.Listener = true, gateway
	embed := &mqtt.Client{ID: "embed"}
	embed.Net.Inline, embed.Net.Listener = true, "app"
	for _, c := range []struct {
		cl           *mqtt.Client
		topic        string
		write, allow bool
	}{
		{cp, "ocpp/cp/CP1", true, true},
		{cp, "#", false, true},
		{embed, "ocpp/cp/CP1", true, false},
		{embed, "sensors/1", true, true},
		{embed, "ocpp/#", false, true},
	} {
		if got := h.OnACLCheck(c.cl, c.topic, c.write); got != c.allow {
			t.Errorf("OnACLCheck(%s, %q, write=%v) = %v, want %v", c.cl.ID, c.topic, c.write, got, c.allow)
		}
	}
}

// Without Authenticate, the ACL functions are asked about every network client with the nil
// identity, and get a shared subscription's filter without its prefix.
func TestACLWithoutAuthenticate(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var asked []string
	ask := func(kind string, allow bool) func(any, string, string) bool {
		return func(identity any, clientID, s string) bool {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, fmt.Sprintf("%s %v %s %s", kind, identity, clientID, s))
			return allow
		}
	}
	h, err := New(Options{Mountpoint: "ocpp/", IsDownstream: isDownstream, GatewayListener: gateway,
		MayPublish: ask("pub", false), MaySubscribe: ask("sub", true)})
	if err != nil {
		t.Fatal(err)
	}
	cl := &mqtt.Client{ID: "c"}
	if h.OnACLCheck(cl, "sensors/1", true) {
		t.Error("write allowed against MayPublish")
	}
	if h.OnACLCheck(cl, "ocpp/cp/CP1", true) {
		t.Error("upstream write allowed")
	}
	if !h.OnACLCheck(cl, "$share/g/ocpp/#", false) {
		t.Error("read refused against MaySubscribe")
	}
	want := []string{"pub <nil> c sensors/1", "sub <nil> c ocpp/#"}
	if fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Errorf("asked %q, want %q", asked, want)
	}
	if n := h.Disconnect(func(any, string) bool { return true }); n != 0 {
		t.Errorf("Disconnect without Authenticate closed %d", n)
	}
}

// Disconnect closes the matching users' connections (v5 with DISCONNECT 0x87) without their Wills
// and strips their offline sessions of rights; others are untouched.
func TestDisconnect(t *testing.T) {
	t.Parallel()
	f := startFixture(t)
	off := f.mustDial3(t, "a-off", "alice", false)
	if codes := off.Subscribe(t, 1, "ocpp/#"); codes[0] != 1 {
		t.Fatalf("subscribe: %#x", codes[0])
	}
	off.Disconnect(t)
	f.waitGone(t, "a-off")

	a5, _, err := f.dial5(t, "a5", "alice", &paho.WillMessage{Topic: "clients/alice/state", Payload: []byte("gone")})
	if err != nil {
		t.Fatal(err)
	}
	p := f.params3("a3", "alice", true)
	p.WillFlag, p.WillTopic, p.WillPayload = true, "clients/alice/state", []byte("gone")
	a3, rc := mqtttest.DialV3Params(t, f.addr, p)
	if rc != 0 {
		t.Fatalf("CONNACK %d", rc)
	}
	bob := f.mustDial5(t, "b5", "bob")
	bob.Subscribe(t, "clients/#")

	alice := f.users["alice"]
	if n := f.h.Disconnect(func(identity any, clientID string) bool { return identity == alice }); n != 2 {
		t.Errorf("Disconnect closed %d clients, want 2", n)
	}
	if d := a5.ExpectServerDisconnect(t); d.ReasonCode != 0x87 {
		t.Errorf("v5 DISCONNECT %#x, want 0x87", d.ReasonCode)
	}
	a3.ExpectClosed(t)
	f.waitGone(t, "a5")
	f.waitGone(t, "a3")
	if rc := bob.Publish(t, "clients/bob/state", 1, false, "marker"); rc != 0 {
		t.Fatalf("bob's PUBACK %#x", rc)
	}
	bob.ExpectNext(t, "clients/bob/state", "marker") // no Will of alice's before it
	if _, s := tracked(f.h); s != 1 {
		t.Errorf("%d sessions tracked, want bob's only", s)
	}

	// The revoked offline session receives nothing until alice authenticates for it again.
	admin := f.mustDial5(t, "admin", "admin")
	admin.Publish(t, "ocpp/cs/CP1", 1, false, "while revoked")
	// mochi acknowledges a QoS 1 publish before it fans it out, but it
	// handles one client's packets in order: the PUBACK of a second
	// publish means the first has reached every subscriber.
	admin.Publish(t, "sync", 1, false, "barrier")
	off = f.mustDial3(t, "a-off", "alice", false)
	admin.Publish(t, "ocpp/cs/CP1", 1, false, "after")
	off.ExpectNext(t, "ocpp/cs/CP1", "after")
}

// A Disconnect that runs while a client authenticates makes the hook authenticate it again,
// and one that runs after, before its session exists, closes it.
func TestDisconnectWhileConnecting(t *testing.T) {
	t.Parallel()
	t.Run("during Authenticate", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.beforeAuth = func(n int32) {
			if n == 1 {
				f.h.Disconnect(func(any, string) bool { return true })
			}
		}
		f.start(t, nil)
		f.mustDial5(t, "c", "alice")
		if n := f.authCalls.Load(); n != 2 {
			t.Errorf("Authenticate called %d times, want 2", n)
		}
		if _, s := tracked(f.h); s != 1 {
			t.Errorf("%d sessions, want 1", s)
		}
	})
	t.Run("before the session", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		closed := make(chan int, 1)
		f.start(t, func(cl *mqtt.Client) error {
			closed <- f.h.Disconnect(func(identity any, _ string) bool { return identity.(*user).name == "alice" })
			return nil
		})
		if _, _, err := f.dial5(t, "c", "alice", nil); err == nil {
			t.Error("revoked client connected")
		}
		if n := <-closed; n != 1 {
			t.Errorf("Disconnect closed %d clients, want 1", n)
		}
		if p, s := tracked(f.h); p != 0 || s != 0 {
			t.Errorf("%d pending, %d sessions", p, s)
		}
	})
}
