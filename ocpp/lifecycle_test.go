package ocpp

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestOfflineHold(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MaxQueue: 2, OfflineTTL: time.Hour, CallTimeout: time.Hour})
	// Held for a charge point that has never connected, up to MaxQueue.
	for _, id := range []string{"h1", "h2"} {
		if err := h.srv.Send("CP1", call(id, "Reset")); err != nil {
			t.Fatalf("hold %s: %v", id, err)
		}
	}
	if err := h.srv.Send("CP1", call("h3", "Reset")); err == nil || err.Reason != ReasonOffline {
		t.Fatalf("third held command: %v, want offline", err)
	}
	if st := h.srv.Stats(); st.HeldCIDs != 1 || st.HeldBytes == 0 {
		t.Fatalf("held %d cids %d bytes", st.HeldCIDs, st.HeldBytes)
	}
	ws := h.dial(t, "CP1")
	if got := read(t, ws); got[1] != "h1" {
		t.Fatalf("got %v, want h1", got)
	}
	if st := h.srv.Stats(); st.HeldCIDs != 0 || st.HeldBytes != 0 {
		t.Fatalf("after reconnect held %d cids %d bytes", st.HeldCIDs, st.HeldBytes)
	}
	// The connection drops with h1 outstanding and h2 queued: both are held,
	// the outstanding one first, and resent on the next connection.
	ws.Close(websocket.StatusNormalClosure, "")
	h.rec.next(t, "disconnected")
	ws = h.dial(t, "CP1")
	for _, id := range []string{"h1", "h2"} {
		got := read(t, ws)
		if got[1] != id {
			t.Fatalf("got %v, want %s", got, id)
		}
		write(t, ws, `[3,"`+id+`",{"status":"Accepted"}]`)
		if e := h.rec.next(t, "received"); e.in.Command == nil {
			t.Fatalf("answer to %s not matched", id)
		}
	}
}

func TestOfflineHoldExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MaxQueue: 5, OfflineTTL: 30 * time.Millisecond})
	h.srv.Send("CP1", call("e1", "Reset"))
	h.srv.Send("CP1", call("e2", "Reset"))
	for _, id := range []string{"e1", "e2"} {
		e := h.rec.next(t, "failed")
		if e.err.Reason != ReasonOffline || e.cmd.Frame.UniqueID != id {
			t.Fatalf("failed %v %s, want offline %s", e.err, e.cmd.Frame.UniqueID, id)
		}
	}
	waitFor(t, "station forgotten", func() bool {
		h.srv.mu.RLock()
		defer h.srv.mu.RUnlock()
		return len(h.srv.stations) == 0
	})
	if st := h.srv.Stats(); st.HeldCIDs != 0 || st.HeldBytes != 0 {
		t.Fatalf("held %d cids %d bytes", st.HeldCIDs, st.HeldBytes)
	}
}

func TestOfflineHoldBounds(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MaxQueue: 10, OfflineTTL: time.Hour, MaxOfflineCIDs: 2, MaxOfflineBytes: 300})
	if err := h.srv.Send("A", call("a", "Reset")); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Send("B", call("b", "Reset")); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Send("C", call("c", "Reset")); err == nil || err.Reason != ReasonOffline {
		t.Fatalf("third charge point: %v, want offline (max_offline_cids)", err)
	}
	big := &Command{Frame: Frame{Type: TypeCall, UniqueID: "big", Action: "DataTransfer",
		Payload: json.RawMessage(`{"data":"` + strings.Repeat("x", 300) + `"}`)}}
	if err := h.srv.Send("A", big); err == nil || err.Reason != ReasonOffline {
		t.Fatalf("over max_offline_bytes: %v, want offline", err)
	}
	h.srv.mu.RLock()
	n := len(h.srv.stations)
	h.srv.mu.RUnlock()
	if n != 2 {
		t.Fatalf("%d stations kept, want 2 (a refused command leaves nothing behind)", n)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{IdleTimeout: 30 * time.Millisecond, HeartbeatInterval: time.Hour})
	ws := h.dial(t, "CP1")
	_, _, err := ws.Read(context.Background())
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("read: %v", err)
	}
	if e := h.rec.next(t, "disconnected"); e.reason != ReasonIdleTimeout {
		t.Fatalf("reason %s, want idle_timeout", e.reason)
	}
}

func TestHeartbeatWindowFollowsBootNotification(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{IdleTimeout: time.Hour, HeartbeatInterval: time.Hour, HeartbeatBackoff: 1})
	ws := h.dial(t, "CP1")
	write(t, ws, `[2,"b1","BootNotification",{"chargePointVendor":"v","chargePointModel":"m"}]`)
	h.rec.next(t, "received")
	ans := &Command{Frame: Frame{Type: TypeCallResult, UniqueID: "b1",
		Payload: json.RawMessage(`{"currentTime":"2026-01-01T00:00:00Z","interval":0.02,"status":"Accepted"}`)}}
	if err := h.srv.Send("CP1", ans); err != nil {
		t.Fatal(err)
	}
	read(t, ws)
	ws.CloseRead(context.Background())
	// 20 ms × (1 + 1) of silence now closes the connection; an hour would not.
	if e := h.rec.next(t, "disconnected"); e.reason != ReasonHeartbeatTimeout {
		t.Fatalf("reason %s, want heartbeat_timeout", e.reason)
	}
}

func TestHeartbeatWindowFollowsChangeConfiguration(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{IdleTimeout: time.Hour, HeartbeatInterval: time.Hour, CallTimeout: time.Hour})
	ws := h.dial(t, "CP1")
	cmd := &Command{Frame: Frame{Type: TypeCall, UniqueID: "cc", Action: "ChangeConfiguration",
		Payload: json.RawMessage(`{"key":"HeartbeatInterval","value":"0.02"}`)}}
	h.srv.Send("CP1", cmd)
	read(t, ws)
	write(t, ws, `[3,"cc",{"status":"Accepted"}]`)
	ws.CloseRead(context.Background())
	h.rec.next(t, "received")
	if e := h.rec.next(t, "disconnected"); e.reason != ReasonHeartbeatTimeout {
		t.Fatalf("reason %s, want heartbeat_timeout", e.reason)
	}
}

// TestPongsKeepAlive: with ws_ping_interval set, a charge point that sends
// no frame but answers pings stays connected well past its window.
func TestPongsKeepAlive(t *testing.T) {
	t.Parallel()
	// Generous margins: the window is a second, ten ping intervals, so a
	// loaded machine running the race detector does not miss it.
	h := newHarness(t, Options{IdleTimeout: -1, HeartbeatInterval: time.Second, HeartbeatBackoff: 0, PingInterval: 100 * time.Millisecond})
	ws := h.dial(t, "CP1")
	ctx := ws.CloseRead(context.Background()) // reads, so pings are answered
	// Count the server's pings through the activity stamp: wait for many
	// windows' worth of time by observing pings, not by sleeping.
	deadline := time.After(10 * time.Second)
	start := time.Now()
	for time.Since(start) < 3*time.Second {
		select {
		case e := <-h.rec.ch:
			t.Fatalf("event %s (%s) while pongs flow", e.kind, e.reason)
		case <-ctx.Done():
			t.Fatal("connection closed while pongs flow")
		case <-deadline:
			t.Fatal("deadline")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestSilentChargePointIsClosed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{IdleTimeout: -1, HeartbeatInterval: 20 * time.Millisecond})
	ws := h.dial(t, "CP1")
	ws.CloseRead(context.Background())
	if e := h.rec.next(t, "disconnected"); e.reason != ReasonHeartbeatTimeout {
		t.Fatalf("reason %s", e.reason)
	}
}

func TestConcurrentUpstreamCallsForwarded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	ws := h.dial(t, "CP1")
	write(t, ws, `[2,"u1","Heartbeat",{}]`)
	write(t, ws, `[2,"u2","Heartbeat",{}]`)
	h.rec.next(t, "received")
	h.rec.next(t, "received")
	if n := h.srv.Stats().FramesIn["concurrent_call"]; n != 1 {
		t.Fatalf("concurrent_call = %d", n)
	}
}

// TestKick: an operator's kick closes 1000 "kicked" with presence reason
// kicked; with a block the charge point's reconnects are refused 403 with
// Retry-After until it runs out; an unknown id is not kicked.
func TestKick(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	ws := h.dial(t, "CP1")
	if h.srv.Kick("nobody", time.Minute) {
		t.Fatal("kicked a charge point that is not connected")
	}
	if !h.srv.Kick("CP1", 0) {
		t.Fatal("Kick CP1")
	}
	if h.srv.Kick("CP1", time.Minute) {
		t.Fatal("a second kick found the closing connection")
	}
	if ce := readClose(t, ws); ce.Code != websocket.StatusNormalClosure || ce.Reason != "kicked" {
		t.Fatalf("closed %v %q, want 1000 kicked", ce.Code, ce.Reason)
	}
	if e := h.rec.next(t, "disconnected"); e.reason != ReasonKicked {
		t.Fatalf("reason %s", e.reason)
	}
	if n := h.srv.Stats().Disconnects["kicked"]; n != 1 {
		t.Errorf("disconnects kicked = %d, want 1", n)
	}

	ws = h.dial(t, "CP1") // not blocked: back at once
	if !h.srv.Kick("CP1", 400*time.Millisecond) {
		t.Fatal("Kick with block")
	}
	readClose(t, ws)
	h.rec.next(t, "disconnected")
	_, resp, err := dialAuth(t, h, "CP1")
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("reconnect while blocked: %v %+v, want 403 with Retry-After 1", err, resp)
	}
	if n := h.srv.Stats().Refused["kicked"]; n != 1 {
		t.Errorf("refused kicked = %d, want 1", n)
	}
	waitFor(t, "the block to run out", func() bool {
		_, ok := h.srv.blockedUntil("CP1")
		return !ok
	})
	h.dial(t, "CP1")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestChargePointPingsKeepAlive: a charge point's own WebSocket pings
// count as activity (ocpp-rpc, for one, pings every 30 s by default).
func TestChargePointPingsKeepAlive(t *testing.T) {
	t.Parallel()
	// The window is a second, ten of the charge point's ping intervals.
	h := newHarness(t, Options{IdleTimeout: -1, HeartbeatInterval: time.Second, HeartbeatBackoff: 0})
	ws := h.dial(t, "CP1")
	ctx := ws.CloseRead(context.Background()) // reads, so pongs arrive
	start := time.Now()
	for time.Since(start) < 3*time.Second {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := ws.Ping(pctx)
		cancel()
		if err != nil {
			t.Fatalf("ping: %v", err)
		}
		select {
		case e := <-h.rec.ch:
			t.Fatalf("event %s (%s) while the charge point pings", e.kind, e.reason)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestShutdownFailsHeldCommands: commands held for an offline charge point
// get their final message when the gateway stops; none vanish.
func TestShutdownFailsHeldCommands(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MaxQueue: 5, OfflineTTL: time.Hour})
	h.srv.Send("CP1", call("s1", "Reset"))
	h.srv.Send("CP1", call("s2", "Reset"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s1", "s2"} {
		if e := h.rec.next(t, "failed"); e.err.Reason != ReasonOffline || e.cmd.Frame.UniqueID != id {
			t.Fatalf("got %+v %s, want offline %s", e.err, e.cmd.Frame.UniqueID, id)
		}
	}
	if st := h.srv.Stats(); st.HeldCIDs != 0 || st.HeldBytes != 0 {
		t.Fatalf("held after shutdown: %+v", st)
	}
}

// TestWriteDeadlineIsCleared: a frame's write deadline (write_timeout)
// is cleared once the frame is written, so a close long after the last
// frame still gets its close handshake, not a dropped socket.
func TestWriteDeadlineIsCleared(t *testing.T) {
	t.Parallel()
	const writeTimeout = time.Second // no shorter: the frame itself must be written within it on a busy box
	h := newHarness(t, Options{WriteTimeout: writeTimeout})
	ws := h.dial(t, "CP1")
	write(t, ws, `[2,"hb","Heartbeat",{}]`)
	h.rec.next(t, "received")
	if err := h.srv.Send("CP1", &Command{Frame: Frame{Type: TypeCallResult, UniqueID: "hb", Payload: json.RawMessage(`{"currentTime":"2024-05-01T10:00:00Z"}`)}}); err != nil {
		t.Fatal(err)
	}
	read(t, ws)
	// Not synchronisation: the frame's deadline must be well past when
	// the close frame is written.
	time.Sleep(writeTimeout + writeTimeout/2)
	if !h.srv.Kick("CP1", 0) {
		t.Fatal("Kick CP1")
	}
	if ce := readClose(t, ws); ce.Code != websocket.StatusNormalClosure || ce.Reason != "kicked" {
		t.Fatalf("closed %v %q, want 1000 kicked (the close frame written)", ce.Code, ce.Reason)
	}
}
