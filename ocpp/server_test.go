package ocpp

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// event is one Handler call seen by recorder.
type event struct {
	kind     string // connected, disconnected, received, failed
	info     SessionInfo
	reason   Reason
	replaced bool
	in       Inbound
	cmd      *Command
	err      *GatewayError
}

// recorder is a Handler that hands every call to a channel.
type recorder struct{ ch chan event }

func (r *recorder) Connected(s SessionInfo) { r.ch <- event{kind: "connected", info: s} }
func (r *recorder) Disconnected(s SessionInfo, reason Reason, replaced bool) {
	r.ch <- event{kind: "disconnected", info: s, reason: reason, replaced: replaced}
}
func (r *recorder) Received(s SessionInfo, in Inbound) {
	r.ch <- event{kind: "received", info: s, in: in}
}
func (r *recorder) CommandFailed(cid string, cmd *Command, err *GatewayError) {
	r.ch <- event{kind: "failed", info: SessionInfo{CID: cid}, cmd: cmd, err: err}
}

// next waits for the next event of kind, skipping none: an unexpected event
// fails the test.
func (r *recorder) next(t *testing.T, kind string) event {
	t.Helper()
	select {
	case e := <-r.ch:
		if e.kind != kind {
			t.Fatalf("got event %s (%+v), want %s", e.kind, e, kind)
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s event within 5s", kind)
	}
	return event{}
}

type harness struct {
	srv *Server
	rec *recorder
	url string
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	rec := &recorder{ch: make(chan event, 1024)}
	opts.Handler = rec
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
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

// dial connects a charge point and waits until the server has attached it.
func (h *harness) dial(t *testing.T, cid string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.Dial(context.Background(), h.url+cid, &websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}})
	if err != nil {
		t.Fatalf("dial %s: %v", cid, err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	h.rec.next(t, "connected")
	return ws
}

func write(t *testing.T, ws *websocket.Conn, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func read(t *testing.T, ws *websocket.Conn) []any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var v []any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("frame %s: %v", b, err)
	}
	return v
}

func call(id, action string) *Command {
	return &Command{Frame: Frame{Type: TypeCall, UniqueID: id, Action: action, Payload: json.RawMessage(`{}`)}}
}

func TestHandshake(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	strict := newHarness(t, Options{FailIfNoSubprotocol: true})
	tests := []struct {
		name     string
		h        *harness
		path     string
		protos   []string
		status   int // 101 on success
		wantEcho string
	}{
		{"plain", h, "CP1", []string{"ocpp1.6"}, 101, "ocpp1.6"},
		{"client order", h, "CP2", []string{"ocpp2.0.1", "ocpp1.6"}, 101, "ocpp1.6"},
		{"percent decoded", h, "CP%203", []string{"ocpp1.6"}, 101, "ocpp1.6"},
		{"no subprotocol", h, "CP4", nil, 101, ""},
		{"no subprotocol strict", strict, "CP5", nil, 400, ""},
		{"only unsupported", h, "CP6", []string{"ocpp2.0.1"}, 400, ""},
		{"empty id", h, "", []string{"ocpp1.6"}, 400, ""},
		{"escaped slash", h, "a%2Fb", []string{"ocpp1.6"}, 400, ""},
		{"plus", h, "a+b", []string{"ocpp1.6"}, 400, ""},
		{"hash", h, "a%23b", []string{"ocpp1.6"}, 400, ""},
		{"nul", h, "a%00b", []string{"ocpp1.6"}, 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws, resp, err := websocket.Dial(context.Background(), tc.h.url+tc.path, &websocket.DialOptions{Subprotocols: tc.protos})
			if tc.status != 101 {
				if err == nil {
					ws.CloseNow()
					t.Fatalf("dial succeeded, want %d", tc.status)
				}
				if resp == nil || resp.StatusCode != tc.status {
					t.Fatalf("dial: %v (resp %v), want status %d", err, resp, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer ws.CloseNow()
			if got := ws.Subprotocol(); got != tc.wantEcho {
				t.Fatalf("subprotocol %q, want %q", got, tc.wantEcho)
			}
			e := tc.h.rec.next(t, "connected")
			if e.info.Protocol != OCPP16 {
				t.Fatalf("protocol %q", e.info.Protocol)
			}
			if tc.path == "CP%203" && e.info.CID != "CP 3" {
				t.Fatalf("cid %q, want %q", e.info.CID, "CP 3")
			}
			ws.Close(websocket.StatusNormalClosure, "")
			tc.h.rec.next(t, "disconnected")
		})
	}
	st := h.srv.Stats()
	if st.Refused["bad_id"] != 5 || st.Refused["bad_subprotocol"] != 1 {
		t.Fatalf("refused = %v", st.Refused)
	}
}

func TestFraming(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	ws := h.dial(t, "CP1")

	// Malformed text frames get a CALLERROR and the connection stays up.
	for _, tc := range []struct{ in, code, id string }{
		{`not json`, "FormationViolation", "-1"},
		{`[2,"m1","Heartbeat"]`, "FormationViolation", "m1"},
		{`[9,"m2","Heartbeat",{}]`, "ProtocolError", "m2"},
	} {
		write(t, ws, tc.in)
		got := read(t, ws)
		if got[0] != float64(4) || got[1] != tc.id || got[2] != tc.code {
			t.Fatalf("%s answered %v, want CALLERROR %s id %s", tc.in, got, tc.code, tc.id)
		}
	}
	// A frame just under the limit passes.
	big := `[2,"b1","DataTransfer",{"vendorId":"v","data":"` + strings.Repeat("x", 60<<10) + `"}]`
	write(t, ws, big)
	e := h.rec.next(t, "received")
	if e.in.UniqueID != "b1" {
		t.Fatalf("got %+v", e.in)
	}

	// Over the limit: closed 1009.
	write(t, ws, `[2,"b2","DataTransfer",{"data":"`+strings.Repeat("x", 65<<10)+`"}]`)
	_, _, err := ws.Read(context.Background())
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("read after oversized frame: %v, want close 1009", err)
	}
	if e := h.rec.next(t, "disconnected"); e.reason != ReasonFrameTooLarge {
		t.Fatalf("reason %s", e.reason)
	}

	// A binary frame: closed 1003.
	ws2 := h.dial(t, "CP2")
	if err := ws2.Write(context.Background(), websocket.MessageBinary, []byte(`[2,"x","Heartbeat",{}]`)); err != nil {
		t.Fatal(err)
	}
	_, _, err = ws2.Read(context.Background())
	if websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Fatalf("read after binary frame: %v, want close 1003", err)
	}
	if e := h.rec.next(t, "disconnected"); e.reason != ReasonBinaryFrame {
		t.Fatalf("reason %s", e.reason)
	}
	st := h.srv.Stats()
	if st.FramesIn["malformed"] != 3 || st.FramesIn["too_large"] != 1 || st.FramesIn["binary"] != 1 || st.FramesIn["call"] != 1 {
		t.Fatalf("frames in = %v", st.FramesIn)
	}
}

func TestDownstreamDiscipline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MaxQueue: 2, CallTimeout: time.Hour})
	ws := h.dial(t, "CP1")

	for _, id := range []string{"c1", "c2", "c3"} {
		if err := h.srv.Send("CP1", call(id, "Reset")); err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
	}
	if err := h.srv.Send("CP1", call("c4", "Reset")); err == nil || err.Reason != ReasonQueueFull {
		t.Fatalf("4th call: %v, want queue_full", err)
	}
	if err := h.srv.Send("CP1", call("c2", "Reset")); err == nil || err.Reason != ReasonDuplicateID {
		t.Fatalf("queued id again: %v, want duplicate_id", err)
	}
	if err := h.srv.Send("CP1", call("c1", "Reset")); err == nil || err.Reason != ReasonDuplicateID {
		t.Fatalf("outstanding id again: %v, want duplicate_id", err)
	}
	// One at a time, in order, each released by its answer.
	for _, id := range []string{"c1", "c2", "c3"} {
		got := read(t, ws)
		if got[0] != float64(2) || got[1] != id {
			t.Fatalf("charge point got %v, want call %s", got, id)
		}
		write(t, ws, `[3,"`+id+`",{"status":"Accepted"}]`)
		e := h.rec.next(t, "received")
		if e.in.Command == nil || e.in.Command.Frame.UniqueID != id || e.in.Action != "Reset" || e.in.Late || e.in.Unsolicited {
			t.Fatalf("answer %s matched %+v", id, e.in)
		}
	}
	// An answer nobody asked for.
	write(t, ws, `[3,"zz",{}]`)
	if e := h.rec.next(t, "received"); !e.in.Unsolicited || e.in.Command != nil {
		t.Fatalf("unsolicited answer: %+v", e.in)
	}
	if err := h.srv.Send("nobody", call("x", "Reset")); err == nil || err.Reason != ReasonOffline {
		t.Fatalf("offline: %v", err)
	}
	big := &Command{Frame: Frame{Type: TypeCall, UniqueID: "big", Action: "DataTransfer", Payload: json.RawMessage(`{"data":"` + strings.Repeat("x", 70<<10) + `"}`)}}
	if err := h.srv.Send("CP1", big); err == nil || err.Reason != ReasonTooLarge {
		t.Fatalf("too large: %v", err)
	}
}

// TestCallTimeoutAndLateAnswer: a command without an answer in time gets
// a timeout error and the queue moves on; its answer, when it comes, is
// published marked late. t2 may time out too before the late answer is
// read (the timeout is short), so the last two events come in any order.
func TestCallTimeoutAndLateAnswer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MaxQueue: 5, CallTimeout: 50 * time.Millisecond})
	ws := h.dial(t, "CP1")
	h.srv.Send("CP1", call("t1", "Reset"))
	h.srv.Send("CP1", call("t2", "UnlockConnector"))
	if got := read(t, ws); got[1] != "t1" {
		t.Fatalf("got %v", got)
	}
	e := h.rec.next(t, "failed")
	if e.err.Reason != ReasonTimeout || e.cmd.Frame.UniqueID != "t1" {
		t.Fatalf("failed %+v %+v", e.err, e.cmd)
	}
	// The queue moved on.
	if got := read(t, ws); got[1] != "t2" {
		t.Fatalf("got %v, want t2 after the timeout", got)
	}
	write(t, ws, `[3,"t1",{"status":"Accepted"}]`)
	var late, t2 bool
	for !late || !t2 {
		select {
		case e := <-h.rec.ch:
			switch {
			case e.kind == "received" && e.in.Late && e.in.Action == "Reset" && e.in.Command == nil:
				late = true
			case e.kind == "failed" && e.cmd.Frame.UniqueID == "t2" && e.err.Reason == ReasonTimeout:
				t2 = true
			default:
				t.Fatalf("unexpected event %+v", e)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("late answer seen %v, t2 timeout seen %v", late, t2)
		}
	}
}

func TestAnswersToChargePointCalls(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MaxQueue: 1, CallTimeout: time.Hour})
	ws := h.dial(t, "CP1")
	// A downstream call is outstanding; answers still go out at once.
	h.srv.Send("CP1", call("d1", "Reset"))
	read(t, ws)
	write(t, ws, `[2,"u1","BootNotification",{"chargePointVendor":"v","chargePointModel":"m"}]`)
	write(t, ws, `[2,"u2","Heartbeat",{}]`) // a second call before the first is answered
	h.rec.next(t, "received")
	h.rec.next(t, "received")
	ans := &Command{Frame: Frame{Type: TypeCallResult, UniqueID: "u2", Payload: json.RawMessage(`{"currentTime":"2026-01-01T00:00:00Z"}`)}}
	if err := h.srv.Send("CP1", ans); err != nil {
		t.Fatalf("answer: %v", err)
	}
	if ans.Frame.Action != "Heartbeat" {
		t.Fatalf("answer's action %q", ans.Frame.Action)
	}
	if got := read(t, ws); got[0] != float64(3) || got[1] != "u2" {
		t.Fatalf("got %v", got)
	}
	again := &Command{Frame: Frame{Type: TypeCallResult, UniqueID: "u2", Payload: json.RawMessage(`{}`)}}
	if err := h.srv.Send("CP1", again); err == nil || err.Reason != ReasonUnknownCall {
		t.Fatalf("second answer: %v, want unknown_call", err)
	}
	cerr := &Command{Frame: Frame{Type: TypeCallError, UniqueID: "u1", ErrorCode: "GenericError"}}
	if err := h.srv.Send("CP1", cerr); err != nil {
		t.Fatalf("callerror answer: %v", err)
	}
	if got := read(t, ws); got[0] != float64(4) || got[1] != "u1" || got[2] != "GenericError" {
		t.Fatalf("got %v", got)
	}
}

func TestTakeoverMovesQueue(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MaxQueue: 5, CallTimeout: time.Hour})
	old := h.dial(t, "CP1")
	h.srv.Send("CP1", call("k1", "Reset"))
	h.srv.Send("CP1", call("k2", "Reset"))
	if got := read(t, old); got[1] != "k1" {
		t.Fatalf("got %v", got)
	}
	nu := h.dial(t, "CP1")
	_, _, err := old.Read(context.Background())
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("old connection: %v, want close 1000", err)
	}
	e := h.rec.next(t, "disconnected")
	if !e.replaced || e.reason != ReasonReplaced {
		t.Fatalf("old connection ended %+v", e)
	}
	// The unanswered call is resent first, then the queue.
	if got := read(t, nu); got[1] != "k1" {
		t.Fatalf("new connection got %v, want k1 resent", got)
	}
	write(t, nu, `[3,"k1",{"status":"Accepted"}]`)
	if e := h.rec.next(t, "received"); e.in.Command == nil {
		t.Fatalf("answer not matched: %+v", e.in)
	}
	if got := read(t, nu); got[1] != "k2" {
		t.Fatalf("got %v, want k2", got)
	}
	if n := len(h.srv.Sessions()); n != 1 {
		t.Fatalf("%d sessions", n)
	}
}

func TestDisconnectFailsCommandsOffline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MaxQueue: 5, CallTimeout: time.Hour})
	ws := h.dial(t, "CP1")
	h.srv.Send("CP1", call("o1", "Reset"))
	h.srv.Send("CP1", call("o2", "Reset"))
	read(t, ws)
	ws.Close(websocket.StatusNormalClosure, "bye")
	var ids []string
	for range 2 {
		e := h.rec.next(t, "failed")
		if e.err.Reason != ReasonOffline {
			t.Fatalf("reason %s", e.err.Reason)
		}
		ids = append(ids, e.cmd.Frame.UniqueID)
	}
	if strings.Join(ids, ",") != "o1,o2" {
		t.Fatalf("failed in order %v", ids)
	}
	if e := h.rec.next(t, "disconnected"); e.reason != ReasonClosed || e.replaced {
		t.Fatalf("%+v", e)
	}
}

func TestShutdownClosesGoingAway(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	ws := h.dial(t, "CP1")
	var wg sync.WaitGroup
	wg.Add(1)
	var err error
	go func() { defer wg.Done(); _, _, err = ws.Read(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("read: %v, want 1001", err)
	}
	if e := h.rec.next(t, "disconnected"); e.reason != ReasonShutdown {
		t.Fatalf("reason %s", e.reason)
	}
	_, resp, derr := websocket.Dial(context.Background(), h.url+"CP2", nil)
	if derr == nil && resp != nil && resp.StatusCode == http.StatusSwitchingProtocols {
		t.Fatal("accepted a connection after shutdown")
	}
}

// TestMalformedBurstIsNotASlowConsumer: a charge point that sends many bad
// frames at once, and reads the answers, gets every CALLERROR and stays.
func TestMalformedBurstIsNotASlowConsumer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	ws := h.dial(t, "CP1")
	const n = 500
	go func() {
		for range n {
			if ws.Write(context.Background(), websocket.MessageText, []byte("garbage")) != nil {
				return
			}
		}
	}()
	for i := range n {
		if got := read(t, ws); got[2] != "FormationViolation" {
			t.Fatalf("answer %d: %v", i, got)
		}
	}
	select {
	case e := <-h.rec.ch:
		t.Fatalf("unexpected %s (%s)", e.kind, e.reason)
	default:
	}
}

// TestSlowConsumerIsClosed: a charge point that keeps calling but never
// reads its socket is closed as slow_consumer; the gateway does not stall.
func TestSlowConsumerIsClosed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{WriteTimeout: 100 * time.Millisecond, MaxFrameSize: 1 << 20})
	ws := h.dial(t, "CP1")
	big := json.RawMessage(`{"status":"Accepted","data":"` + strings.Repeat("x", 60<<10) + `"}`)
	for i := range 2000 {
		id := "d" + strconv.Itoa(i)
		write(t, ws, `[2,"`+id+`","DataTransfer",{"vendorId":"v"}]`)
		select {
		case e := <-h.rec.ch:
			if e.kind == "disconnected" {
				if e.reason != ReasonSlowConsumer {
					t.Fatalf("reason %s, want slow_consumer", e.reason)
				}
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
		}
		h.srv.Send("CP1", &Command{Frame: Frame{Type: TypeCallResult, UniqueID: id, Payload: big}})
	}
	t.Fatal("a charge point that never reads was not closed")
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
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

// TestRefusedFramesDoNotFloodTheLog: the first refusals of a connection
// are logged at INFO with the charge point id, the rest at DEBUG.
func TestRefusedFramesDoNotFloodTheLog(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	rec := &recorder{ch: make(chan event, 1024)}
	srv := NewServer(Options{Handler: rec, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	h := &harness{srv: srv, rec: rec, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ocpp/"}
	ws := h.dial(t, "CP1")
	for range 30 {
		write(t, ws, "garbage")
		read(t, ws)
	}
	if n := strings.Count(logs.String(), `level=INFO msg="malformed frame" cid=CP1`); n != refusedLogFirst {
		t.Fatalf("%d INFO lines for 30 malformed frames, want %d:\n%s", n, refusedLogFirst, logs.String())
	}
	ws.Close(websocket.StatusNormalClosure, "")
	rec.next(t, "disconnected")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}
