package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chargemq/chargemq/broker"
	"github.com/chargemq/chargemq/broker/users"
)

// startGateway runs the real gateway in-process with every listener on 127.0.0.1:0.
func startGateway(t *testing.T) *broker.Broker {
	t.Helper()
	return startGatewayWith(t, "")
}

// startGatewayWith runs a gateway; usersFile, when set, makes it
// authenticate charge points and MQTT clients.
func startGatewayWith(t *testing.T, usersFile string) *broker.Broker {
	t.Helper()
	o := broker.DefaultOptions()
	o.UsersFile = usersFile
	o.MQTTAddr, o.MQTTWSAddr, o.OCPPAddr, o.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	o.OCPP.MaxQueue = 100
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := broker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("gateway shutdown: %v", err)
		}
	})
	return b
}

// gatewayOptions are options for a short run against b.
func gatewayOptions(b *broker.Broker) Options {
	o := DefaultOptions()
	o.URL = "ws://" + b.Addr(broker.ListenerOCPP).String() + "/ocpp"
	o.MQTTURL = "mqtt://" + b.Addr(broker.ListenerMQTT).String()
	o.Count = 5
	o.ConnectRate = 50
	o.Duration = 2 * time.Second
	o.CallRate = 20
	return o
}

// run runs the simulation with a deadline far beyond its length.
func run(t *testing.T, o Options, progress io.Writer) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, o, progress)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

// checkClean fails the test unless every charge point connected and stayed, and every call
// sent in a direction was answered with a CALLRESULT.
func checkClean(t *testing.T, rep Report, o Options) {
	t.Helper()
	c := rep.Connections
	if c.Attempted != int64(o.Count) || c.Connected != int64(o.Count) || c.Failed != 0 || c.Dropped != 0 {
		t.Errorf("connections %+v, want all %d connected and none failed or dropped", c, o.Count)
	}
	for name, calls := range map[string]CallReport{"upstream": rep.Upstream, "downstream": rep.Downstream} {
		if calls.Answered != calls.Sent || calls.Errors != 0 || calls.TimedOut != 0 || calls.Unanswered != 0 ||
			calls.Late != 0 || calls.SendFailed != 0 || calls.ErrorCodes != nil {
			t.Errorf("%s %+v, want every call answered", name, calls)
		}
		if calls.Latency.Count != uint64(calls.Answered) {
			t.Errorf("%s: %d latencies for %d answers", name, calls.Latency.Count, calls.Answered)
		}
		// The steady phase's latencies are those of its answers, a part of the run's.
		if s := calls.SteadyLatency.Count; s > calls.Latency.Count || calls.AnsweredPerSecond > 0 && s == 0 {
			t.Errorf("%s: %d steady-phase latencies of %d, at %.1f answered/s", name, s, calls.Latency.Count, calls.AnsweredPerSecond)
		}
	}
	if len(rep.Warnings) != 0 {
		t.Errorf("warnings %q", rep.Warnings)
	}
}

// syncBuffer is a progress writer the run writes from its own goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSimEndToEnd runs charge points against the real gateway with the responder and the
// command publisher: calls complete both ways and nothing fails.
func TestSimEndToEnd(t *testing.T) {
	t.Parallel()
	b := startGateway(t)
	o := gatewayOptions(b)
	o.Respond = true
	o.CommandRate = 10
	var progress syncBuffer
	rep := run(t, o, &progress)
	checkClean(t, rep, o)
	if rep.Upstream.Sent <= int64(o.Count) { // more than the BootNotifications
		t.Errorf("upstream sent %d, want scheduled calls after the %d boots", rep.Upstream.Sent, o.Count)
	}
	if rep.Upstream.SentByAction[ActionBootNotification] != int64(o.Count) || rep.Upstream.SentByAction[ActionHeartbeat] == 0 {
		t.Errorf("sent by action %v", rep.Upstream.SentByAction)
	}
	if rep.Downstream.Sent == 0 || rep.CommandsAnswered != rep.Downstream.Sent {
		t.Errorf("downstream sent %d, charge points answered %d", rep.Downstream.Sent, rep.CommandsAnswered)
	}
	if rs := rep.Responder; rs == nil || rs.Answered != rep.Upstream.Sent || rs.NotImplemented != 0 {
		t.Errorf("responder %+v for %d calls", rs, rep.Upstream.Sent)
	}
	if rep.Interrupted || rep.SourceAddrs != 1 {
		t.Errorf("interrupted %v, source addresses %d", rep.Interrupted, rep.SourceAddrs)
	}
	for _, line := range strings.Split(strings.TrimSpace(progress.String()), "\n") {
		if line != "" && !strings.Contains(line, "connected ") {
			t.Errorf("progress line %q", line)
		}
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "upstream ") || !strings.Contains(text.String(), "downstream ") {
		t.Errorf("summary %q (%v)", text.String(), err)
	}
}

// TestSimRerun runs twice with the same ids on one gateway: what the first run leaves behind
// (retained offline presence, closed sessions) does not disturb the second.
func TestSimRerun(t *testing.T) {
	t.Parallel()
	b := startGateway(t)
	o := gatewayOptions(b)
	o.Count = 3
	o.Duration = time.Second
	o.Respond = true
	o.CommandRate = 20
	for range 2 {
		rep := run(t, o, nil)
		checkClean(t, rep, o)
		if rep.Downstream.Sent == 0 {
			t.Errorf("no commands sent")
		}
	}
}

// TestSimActions sends each action the gateway can be loaded with, and padded DataTransfers:
// the gateway finds every payload valid (it answers an invalid one with a CALLERROR).
func TestSimActions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, action string
		payload      int
	}{
		{"Heartbeat", ActionHeartbeat, 0},
		{"StatusNotification", ActionStatusNotification, 0},
		{"MeterValues", ActionMeterValues, 0},
		{"BootNotification", ActionBootNotification, 0},
		{"DataTransfer", ActionDataTransfer, 0},
		{"padded DataTransfer", ActionHeartbeat, 8000}, // pads a DataTransfer instead
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := startGateway(t)
			o := gatewayOptions(b)
			o.Action, o.PayloadBytes = tt.action, tt.payload
			o.Respond = true
			o.Count = 3
			o.Duration = time.Second
			rep := run(t, o, nil)
			checkClean(t, rep, o)
			want := tt.action
			if tt.payload > 0 {
				want = ActionDataTransfer
			}
			if rep.Upstream.Action != want || rep.Upstream.SentByAction[want] == 0 {
				t.Errorf("action %s, sent by action %v; want %s calls", rep.Upstream.Action, rep.Upstream.SentByAction, want)
			}
		})
	}
}

// TestSimIdle holds idle connections: one BootNotification each, answered, then heartbeats
// only.
func TestSimIdle(t *testing.T) {
	t.Parallel()
	b := startGateway(t)
	o := gatewayOptions(b)
	o.Count = 20
	o.ConnectRate = 0 // all at once
	o.CallRate = 0
	o.Respond = true
	o.HeartbeatInterval = time.Second
	rep := run(t, o, nil)
	checkClean(t, rep, o)
	for action, n := range rep.Upstream.SentByAction {
		if action != ActionBootNotification && action != ActionHeartbeat {
			t.Errorf("idle charge points sent %d %s", n, action)
		}
	}
	if rep.Upstream.SentByAction[ActionBootNotification] != int64(o.Count) {
		t.Errorf("boots %d, want one per charge point", rep.Upstream.SentByAction[ActionBootNotification])
	}
}

// TestSimWithoutResponder: nothing answers, the charge points do not wait, and the summary
// counts the calls as sent and unanswered, not as failures.
func TestSimWithoutResponder(t *testing.T) {
	t.Parallel()
	b := startGateway(t)
	o := gatewayOptions(b)
	o.Count = 3
	o.Duration = time.Second
	rep := run(t, o, nil)
	up := rep.Upstream
	if up.Sent <= int64(o.Count) || up.Answered != 0 || up.Errors != 0 || up.TimedOut != 0 || up.Unanswered != up.Sent {
		t.Errorf("upstream %+v, want calls sent and none answered", up)
	}
	if rep.Connections.Connected != int64(o.Count) || rep.Connections.Dropped != 0 || rep.Responder != nil {
		t.Errorf("connections %+v responder %+v", rep.Connections, rep.Responder)
	}
}

// TestSimInterrupted cancels a run at its first progress line: Run still reports, marked
// interrupted, and returns only when every charge point has closed.
func TestSimInterrupted(t *testing.T) {
	t.Parallel()
	b := startGateway(t)
	o := gatewayOptions(b)
	o.Duration = time.Hour
	o.Respond = true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep, err := Run(ctx, o, writerFunc(func(p []byte) (int, error) { cancel(); return len(p), nil }))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Interrupted || rep.Connections.Dropped != 0 {
		t.Errorf("interrupted %v, connections %+v", rep.Interrupted, rep.Connections)
	}
}

// TestSimDropped replaces a simulated charge point with another connection of the same id:
// the gateway closes the simulator's with 1000 "replaced", which the report counts as a drop.
// The progress lines drive it: the first one dials the replacement, the first that shows the
// drop ends the run.
func TestSimDropped(t *testing.T) {
	t.Parallel()
	b := startGateway(t)
	o := gatewayOptions(b)
	o.Count = 2
	o.Duration = time.Hour
	o.Respond = true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var replacement *websocket.Conn
	defer func() {
		if replacement != nil {
			replacement.CloseNow()
		}
	}()
	rep, err := Run(ctx, o, writerFunc(func(p []byte) (int, error) {
		switch {
		case replacement == nil: // the progress goroutine is the only caller
			dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer dcancel()
			ws, _, err := websocket.Dial(dctx, o.URL+"/sim-1", &websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}})
			if err != nil {
				t.Errorf("dial the replacement: %v", err)
				cancel()
				return len(p), nil
			}
			replacement = ws
		case strings.Contains(string(p), "dropped 1 "):
			cancel()
		}
		return len(p), nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Connections
	if c.Connected != 2 || c.Dropped != 1 || c.DropReasons["1000 replaced"] != 1 {
		t.Errorf("connections %+v, want one of two dropped as replaced", c)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestSimUnreachable: a gateway or broker that is not there is a setup error, not a report.
func TestSimUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // nothing listens there now

	b := startGateway(t)
	tests := []struct {
		name   string
		mutate func(*Options)
	}{
		{"no gateway", func(o *Options) { o.URL = "ws://" + closed + "/ocpp" }},
		{"wrong path", func(o *Options) { o.URL = strings.TrimSuffix(o.URL, "/ocpp") + "/nope" }},
		{"no broker for the responder", func(o *Options) { o.Respond, o.MQTTURL = true, "mqtt://"+closed }},
		{"no broker for commands", func(o *Options) { o.CommandRate, o.MQTTURL = 1, "mqtt://"+closed }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := gatewayOptions(b)
			tt.mutate(&o)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := Run(ctx, o, nil); !errors.Is(err, ErrUnreachable) {
				t.Fatalf("Run: %v, want ErrUnreachable", err)
			}
		})
	}
	o := gatewayOptions(b)
	o.Count = 0
	if _, err := Run(context.Background(), o, nil); err == nil || errors.Is(err, ErrUnreachable) {
		t.Fatalf("Run with count 0: %v, want a validation error", err)
	}
}

// TestSimWithCredentials: against a gateway with a users file, the charge
// points log in with per-id keys from a template and the responder and
// command publisher with an MQTT user; everything is admitted and answered.
func TestSimWithCredentials(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "users.yaml")
	o0 := DefaultOptions()
	o0.Count = 3
	for i := 1; i <= o0.Count; i++ {
		cid := fmt.Sprintf("%s%d", o0.IDPrefix, i)
		if _, err := users.AddUser(path, users.User{Name: cid, Role: users.RoleChargePoint}, "key-"+cid+"-0123456789", 4); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := users.AddUser(path, users.User{Name: "csms", Role: users.RoleMQTT, Pub: []string{"ocpp/cs/#"}, Sub: []string{"ocpp/#"}},
		"csms-password", 4); err != nil {
		t.Fatal(err)
	}
	b := startGatewayWith(t, path)
	o := gatewayOptions(b)
	o.Count = o0.Count
	o.Respond, o.CommandRate = true, 5
	o.Password = "key-{cid}-0123456789"
	o.MQTTUsername, o.MQTTPassword = "csms", "csms-password"
	rep := run(t, o, nil)
	checkClean(t, rep, o)
	if rep.Upstream.Answered == 0 || rep.Downstream.Answered == 0 {
		t.Fatalf("nothing answered: %+v", rep)
	}

	// A wrong key: the run cannot start, and the error says why.
	o.Password = "wrong"
	o.Duration = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := Run(ctx, o, nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong keys: %v, want an error naming HTTP 401", err)
	}
}
