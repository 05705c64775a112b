package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"
)

// TestServeEndToEnd drives run in-process with every listener on port 0:
// the bound addresses are logged, each listener answers, the OCPP
// handshake rules hold, and cancelling the context (what the first
// SIGTERM does) closes charge points with 1001 and returns nil.
// Not parallel: urfave/cli keeps package-level state per run.
func TestServeEndToEnd(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"chargemq", "--mqtt-addr", "127.0.0.1:0", "--mqtt-ws-addr", "127.0.0.1:0",
			"--ocpp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json"}, io.Discard, pw)
		pw.Close()
	}()

	// The "listening" lines name the bound ports.
	addrs := map[string]string{}
	lines := bufio.NewScanner(pr)
	deadline := time.Now().Add(10 * time.Second)
	for len(addrs) < 4 && lines.Scan() {
		var l struct{ Msg, Listener, Addr string }
		if json.Unmarshal(lines.Bytes(), &l) == nil && l.Msg == "listening" {
			addrs[l.Listener] = l.Addr
		}
		if time.Now().After(deadline) {
			t.Fatal("listeners not logged in time")
		}
	}
	var rest syncWriter
	go io.Copy(&rest, pr) // keep the logger unblocked; shown on failure
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", rest.String())
		}
	})
	for _, name := range []string{"mqtt", "mqtt-ws", "ocpp", "http"} {
		if _, port, err := net.SplitHostPort(addrs[name]); err != nil || port == "0" {
			t.Fatalf("listener %s logged as %q", name, addrs[name])
		}
	}

	// The listening lines come as each listener is bound; /readyz turns
	// 200 once all are serving, a moment later.
	for _, path := range []string{"/healthz", "/readyz"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + addrs["http"] + path)
			if err == nil {
				resp.Body.Close()
			}
			if err == nil && resp.StatusCode == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v %v", path, resp, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// MQTT over TCP and over WebSocket at /mqtt.
	tcp, err := net.Dial("tcp", addrs["mqtt"])
	if err != nil {
		t.Fatal(err)
	}
	mqttConnect(t, tcp, "tcp-client")
	ws, _, err := websocket.Dial(ctx, "ws://"+addrs["mqtt-ws"]+"/mqtt", &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	mqttConnect(t, websocket.NetConn(ctx, ws, websocket.MessageBinary), "ws-client")

	// OCPP: a good handshake and a refused one.
	cp, _, err := websocket.Dial(ctx, "ws://"+addrs["ocpp"]+"/ocpp/CP1", &websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}})
	if err != nil {
		t.Fatal(err)
	}
	if cp.Subprotocol() != "ocpp1.6" {
		t.Fatalf("subprotocol %q", cp.Subprotocol())
	}
	if _, resp, err := websocket.Dial(ctx, "ws://"+addrs["ocpp"]+"/ocpp/a%2Fb", nil); err == nil || resp.StatusCode != 400 {
		t.Fatalf("bad id: %v %v", resp, err)
	}

	// Wait until the gateway has the charge point (the client sees the
	// upgrade before the server has attached the connection).
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(rest.String(), `"msg":"charge point connected"`) {
		if time.Now().After(deadline) {
			t.Fatal("charge point not attached")
		}
		time.Sleep(5 * time.Millisecond)
	}
	readErr := make(chan error, 1)
	go func() { _, _, err := cp.Read(context.Background()); readErr <- err }()
	cancel()
	select {
	case err := <-readErr:
		if websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Fatalf("charge point saw %v, want close 1001", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("charge point not closed on shutdown")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after shutdown")
	}
}

func mqttConnect(t *testing.T, conn net.Conn, id string) {
	t.Helper()
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
	if err != nil || ack.ReasonCode != 0 {
		t.Fatalf("mqtt connect %s: %v %v", id, ack, err)
	}
	c.Disconnect(&paho.Disconnect{})
}

// syncWriter collects log output from another goroutine.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestServeReloadsUsersOnSIGHUP: with a users file, SIGHUP re-reads it
// (and does not end the process, which is SIGHUP's default action).
// Not parallel: it signals the test process itself.
func TestServeReloadsUsersOnSIGHUP(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.yaml")
	data, err := os.ReadFile(filepath.Join("testdata", "users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncWriter
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"chargemq", "--mqtt-addr", "127.0.0.1:0", "--mqtt-ws-addr", "", "--ocpp-addr", "127.0.0.1:0",
			"--http-addr", "127.0.0.1:0", "--log-format", "json", "--users-file", users}, io.Discard, &logs)
	}()
	waitLog := func(msg string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(logs.String(), `"msg":"`+msg+`"`) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", msg, logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitLog("chargemq started")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("SIGHUP: reloading the users file and the certificates")
	waitLog("users file reloaded")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}
