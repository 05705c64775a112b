package broker

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"

	"github.com/chargemq/chargemq/broker/users"
)

// writeUsers makes a users file with a charge point CP1 (key cp1-key…), a
// shared charge point user "fleet", and an MQTT user csms allowed to
// command charge points and read their topics.
func writeUsers(t *testing.T, path string, cp1Key string) {
	t.Helper()
	os.Remove(path)
	for _, u := range []struct {
		u   users.User
		pwd string
	}{
		{users.User{Name: "CP1", Role: users.RoleChargePoint}, cp1Key},
		{users.User{Name: "fleet", Role: users.RoleChargePoint}, "fleet-key-0123456789"},
		{users.User{Name: "csms", Role: users.RoleMQTT, Pub: []string{"ocpp/cs/#"}, Sub: []string{"ocpp/#"}}, "csms-password"},
	} {
		if _, err := users.AddUser(path, u.u, u.pwd, 4); err != nil {
			t.Fatal(err)
		}
	}
}

func dialBasic(b *Broker, cid, user, pass string) (*websocket.Conn, int, error) {
	h := http.Header{}
	if user != "" {
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws://"+b.Addr(ListenerOCPP).String()+"/ocpp/"+cid,
		&websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}, HTTPHeader: h})
	code := 0
	if resp != nil {
		code = resp.StatusCode
	}
	return ws, code, err
}

// TestUsersFileEndToEnd: with a users file, charge points need their own
// key (profile 1) and MQTT clients a user, held to its ACL; a reload that
// changes a key closes that charge point with auth_revoked.
func TestUsersFileEndToEnd(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "users.yaml")
	writeUsers(t, path, "cp1-key-0123456789ab")
	b := startBroker(t, func(o *Options) { o.UsersFile = path })

	// First the right key (the failures below start a back-off for CP1).
	ws, code, err := dialBasic(b, "CP1", "CP1", "cp1-key-0123456789ab")
	if err != nil {
		t.Fatalf("right key: %d %v", code, err)
	}
	defer ws.CloseNow()
	for _, tc := range []struct {
		name, cid, user, pass string
		want                  int
	}{
		{"no credentials", "CP1", "", "", http.StatusUnauthorized},
		{"wrong key", "CP1", "CP1", "nope", http.StatusUnauthorized},
		{"another charge point's user", "CP2", "CP1", "cp1-key-0123456789ab", http.StatusUnauthorized},
		{"an MQTT user", "csms", "csms", "csms-password", http.StatusUnauthorized},
	} {
		if _, code, _ := dialBasic(b, tc.cid, tc.user, tc.pass); code != tc.want {
			t.Errorf("%s: HTTP %d, want %d", tc.name, code, tc.want)
		}
	}

	// MQTT: no user, a wrong password, then the csms user and its ACL.
	if _, ack := connectV5(t, b.Addr(ListenerMQTT), &paho.Connect{ClientID: "anon", CleanStart: true}, paho.ClientConfig{}); ack.ReasonCode != 0x86 {
		t.Fatalf("anonymous CONNACK %#x, want 0x86", ack.ReasonCode)
	}
	c, ack := connectV5(t, b.Addr(ListenerMQTT), &paho.Connect{ClientID: "csms-1", CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: "csms", PasswordFlag: true, Password: []byte("csms-password")}, paho.ClientConfig{})
	if ack.ReasonCode != 0 {
		t.Fatalf("csms CONNACK %#x", ack.ReasonCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := c.Publish(ctx, &paho.Publish{Topic: "elsewhere/x", QoS: 1, Payload: []byte("x")}); err == nil && r.ReasonCode != 0x87 {
		t.Fatalf("publish outside the ACL: %#x, want 0x87", r.ReasonCode)
	}
	if r, err := c.Publish(ctx, &paho.Publish{Topic: "ocpp/cs/CP1", QoS: 1,
		Payload: []byte(`{"MessageTypeId":2,"UniqueId":"r1","Action":"Reset","Payload":{"type":"Soft"}}`)}); err != nil || r.ReasonCode != 0 {
		t.Fatalf("command within the ACL: %v %v", r, err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	if _, data, err := ws.Read(rctx); err != nil || len(data) == 0 {
		t.Fatalf("charge point did not get the command: %v", err)
	}

	// A new key for CP1: the connected CP1 is closed, its presence says why.
	writeUsers(t, path, "cp1-new-key-0123456789")
	if err := b.ReloadUsers(); err != nil {
		t.Fatal(err)
	}
	_, _, err = ws.Read(rctx)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("after the key changed: %v, want close 1008", err)
	}
	// The failures above put CP1 from this address in a back-off, which a
	// reload does not lift: retry through it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ws, code, _ := dialBasic(b, "CP1", "CP1", "cp1-new-key-0123456789")
		if code == http.StatusSwitchingProtocols {
			ws.CloseNow()
			break
		}
		if code != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("new key: HTTP %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSharedChargePointUser: with ocpp.username_must_match_cid off, one
// chargepoint user serves many charge points (the EMQX set-up).
func TestSharedChargePointUser(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "users.yaml")
	writeUsers(t, path, "cp1-key-0123456789ab")
	b := startBroker(t, func(o *Options) { o.UsersFile = path; o.UsernameMustMatchCID = false })
	for _, cid := range []string{"A", "B"} {
		ws, code, err := dialBasic(b, cid, "fleet", "fleet-key-0123456789")
		if err != nil {
			t.Fatalf("%s: %d %v", cid, code, err)
		}
		ws.CloseNow()
	}
}

// TestFailedLoginsBackOff: repeated wrong keys from one address get 429
// with Retry-After.
func TestFailedLoginsBackOff(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "users.yaml")
	writeUsers(t, path, "cp1-key-0123456789ab")
	b := startBroker(t, func(o *Options) { o.UsersFile = path })
	var got []int
	for range 3 {
		_, code, _ := dialBasic(b, "CP1", "CP1", "wrong")
		got = append(got, code)
	}
	if got[len(got)-1] != http.StatusTooManyRequests {
		t.Fatalf("codes %v, want 429 after repeated failures", got)
	}
}

// TestNoUsersFileWarns: without a users file everyone is admitted, and the
// start says so loudly.
func TestNoUsersFileWarns(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	b := startBroker(t, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	if logs.lines("level=WARN msg=\"no users file (auth.users_file): every charge point and MQTT client is admitted") != 1 {
		t.Fatalf("no startup warning:\n%s", logs.b.String())
	}
	ws, code, err := dialBasic(b, "ANY", "", "")
	if err != nil {
		t.Fatalf("without a users file a charge point is admitted: %d %v", code, err)
	}
	ws.CloseNow()
}
