package ocpp

import (
	"context"
	"errors"
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

// orderHandler records the order in which a command's timeout error and
// its late answer reach the Handler. On a timeout it lets the test send
// the late answer, then gives the server time to publish it concurrently:
// only the events lock keeps that from happening.
type orderHandler struct {
	mu       sync.Mutex
	order    []string
	timedOut chan string
	late     chan struct{}
}

func (h *orderHandler) record(s string) {
	h.mu.Lock()
	h.order = append(h.order, s)
	h.mu.Unlock()
}

func (h *orderHandler) Connected(SessionInfo)                  {}
func (h *orderHandler) Disconnected(SessionInfo, Reason, bool) {}
func (h *orderHandler) Received(_ SessionInfo, in Inbound) {
	if in.Late {
		h.record("late " + in.UniqueID)
		select {
		case h.late <- struct{}{}:
		default:
		}
	}
}
func (h *orderHandler) CommandFailed(_ string, cmd *Command, err *GatewayError) {
	if err.Reason != ReasonTimeout {
		return
	}
	h.timedOut <- cmd.Frame.UniqueID
	select {
	case <-h.late: // the late answer overtook the timeout error
	case <-time.After(300 * time.Millisecond):
	}
	h.record("timeout " + cmd.Frame.UniqueID)
}

// TestTimeoutErrorBeforeLateAnswer: the late answer of a command that has
// just timed out is reported after the timeout error, even when it
// arrives while the error is being published.
func TestTimeoutErrorBeforeLateAnswer(t *testing.T) {
	t.Parallel()
	oh := &orderHandler{timedOut: make(chan string, 1), late: make(chan struct{}, 1)}
	srv := NewServer(Options{Handler: oh, CallTimeout: 200 * time.Millisecond, MaxQueue: 10,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	ws, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http")+"/ocpp/CP1",
		&websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	waitFor(t, "attached", func() bool { return srv.Stats().Connected == 1 })
	write(t, ws, `[2,"boot","Heartbeat",{}]`) // any first frame
	const rounds = 3
	for i := range rounds {
		id := "c" + strconv.Itoa(i)
		if err := srv.Send("CP1", call(id, "Reset")); err != nil {
			t.Fatal(err)
		}
		if got := read(t, ws); got[1] != id {
			t.Fatalf("got %v, want %s", got, id)
		}
		select {
		case got := <-oh.timedOut:
			if got != id {
				t.Fatalf("timed out %s, want %s", got, id)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no timeout")
		}
		write(t, ws, `[3,"`+id+`",{"status":"Accepted"}]`)
		// Both reports of this round, before the next command.
		deadline := time.Now().Add(10 * time.Second)
		for {
			oh.mu.Lock()
			n := len(oh.order)
			oh.mu.Unlock()
			if n == 2*(i+1) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("order so far %v", oh.order)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for i := range rounds {
		id := "c" + strconv.Itoa(i)
		if oh.order[2*i] != "timeout "+id || oh.order[2*i+1] != "late "+id {
			t.Fatalf("order %v: want each timeout error before its late answer", oh.order)
		}
	}
}

// TestShutdownDuringHandshakes: connections whose handshake completes while
// Shutdown runs are closed too, and Shutdown waits for all of them.
func TestShutdownDuringHandshakes(t *testing.T) {
	t.Parallel()
	rec := &recorder{ch: make(chan event, 4096)}
	srv := NewServer(Options{Handler: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ocpp/"

	const n = 100
	var wg sync.WaitGroup
	leftOpen := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cid := "CP" + strconv.Itoa(i)
			ws, _, err := websocket.Dial(ctx, url+cid, &websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}})
			if err != nil {
				return // refused: the server was shutting down
			}
			defer ws.CloseNow()
			// Read (which answers the close handshake) until the server
			// closes the connection.
			if _, _, err := ws.Read(ctx); errors.Is(err, context.DeadlineExceeded) {
				leftOpen <- cid
			}
		}()
	}
	// Shut down once some charge points are connected, while the others
	// are still in their handshakes.
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().Connected < 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if c := srv.Stats().Connected; c != 0 {
		t.Fatalf("%d charge points still connected after Shutdown", c)
	}
	wg.Wait()
	close(leftOpen)
	for cid := range leftOpen {
		t.Errorf("%s: connection accepted during Shutdown was left open", cid)
	}
}

// TestCloseForcesWhatShutdownLeft: a charge point that never answers the
// close handshake keeps Shutdown waiting until its context ends; Close then
// drops it and returns promptly.
func TestCloseForcesWhatShutdownLeft(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	ws := h.dial(t, "CP1") // never reads, so never answers the close frame
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want the deadline (the peer never closes)", err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	n, err := h.srv.Close(cctx)
	if err != nil || n != 1 {
		t.Fatalf("Close: %d, %v; want 1 connection dropped", n, err)
	}
	if e := h.rec.next(t, "disconnected"); e.reason != ReasonShutdown {
		t.Fatalf("reason %s", e.reason)
	}
	ws.CloseNow()
}

// TestConnectionBounds: max_connections, max_connections_per_ip and
// max_handshakes refuse with 503 and are counted; a connected charge point
// may still take over its own id at the limit.
func TestConnectionBounds(t *testing.T) {
	t.Parallel()
	dial := func(h *harness, cid string) (*websocket.Conn, int) {
		ws, resp, err := websocket.Dial(context.Background(), h.url+cid, &websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}})
		if err != nil {
			if resp == nil {
				t.Fatalf("dial %s: %v", cid, err)
			}
			return nil, resp.StatusCode
		}
		t.Cleanup(func() { ws.CloseNow() })
		return ws, http.StatusSwitchingProtocols
	}

	t.Run("max_connections", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, Options{MaxConnections: 2})
		a := h.dial(t, "A")
		h.dial(t, "B")
		if _, code := dial(h, "C"); code != http.StatusServiceUnavailable {
			t.Fatalf("third charge point: %d, want 503", code)
		}
		if _, code := dial(h, "A"); code != http.StatusSwitchingProtocols {
			t.Fatalf("takeover at the limit: %d, want 101", code)
		}
		a.CloseNow() // the replaced connection; spares the server's close handshake
		if got := h.srv.Stats().Refused["max_connections"]; got != 1 {
			t.Fatalf("refused max_connections = %d", got)
		}
	})
	t.Run("max_connections_per_ip", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, Options{MaxConnectionsPerIP: 2})
		h.dial(t, "A")
		b := h.dial(t, "B")
		if _, code := dial(h, "C"); code != http.StatusServiceUnavailable {
			t.Fatalf("third from one address: %d, want 503", code)
		}
		b.Close(websocket.StatusNormalClosure, "")
		h.rec.next(t, "disconnected")
		// The slot is given back when the request ends, just after the
		// disconnect is reported: retry until then.
		deadline := time.Now().Add(10 * time.Second)
		for {
			ws, code := dial(h, "C")
			if code == http.StatusSwitchingProtocols {
				ws.CloseNow()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("slot not given back: %d", code)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := h.srv.Stats().Refused["max_connections_per_ip"]; got < 1 {
			t.Fatalf("refused max_connections_per_ip = %d", got)
		}
	})
	t.Run("max_handshakes", func(t *testing.T) {
		t.Parallel()
		srv := NewServer(Options{Handler: &recorder{ch: make(chan event, 8)}, MaxHandshakes: 3})
		srv.handshakes.Store(3) // three upgrades under way
		if r, why := srv.admit("X", "127.0.0.1"); r != refusedHandshakes || why == "" {
			t.Fatalf("admit at the handshake limit: %v %q", r, why)
		}
		srv.handshakes.Store(2)
		if _, why := srv.admit("X", "127.0.0.1"); why != "" {
			t.Fatalf("admit below the limit: %q", why)
		}
	})
}

// countingValidator defines Heartbeat only and fails every payload.
type countingValidator struct{}

func (countingValidator) Sender(action string) (bool, bool, bool) {
	return true, false, action == "Heartbeat"
}
func (countingValidator) Check(string, bool, []byte) *CallError {
	return &CallError{Code: PropertyConstraintViolation, Description: "bad"}
}

// TestSchemaFailureKeysAreBounded: actions a charge point invents are all
// counted under one "unknown" key.
func TestSchemaFailureKeysAreBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Validators: map[Protocol]Validator{OCPP16: countingValidator{}}})
	ws := h.dial(t, "CP1")
	const n = 500
	for i := range n {
		write(t, ws, `[2,"u`+strconv.Itoa(i)+`","Made`+strconv.Itoa(i)+`",{}]`)
		read(t, ws)
	}
	write(t, ws, `[2,"hb","Heartbeat",{}]`)
	read(t, ws)
	got := h.srv.Stats().SchemaFailures
	if len(got) != 2 {
		t.Fatalf("schema failure keys: %+v, want Heartbeat and unknown", got)
	}
	for _, f := range got {
		if f.Action == "unknown" && f.Count != n || f.Action != "unknown" && f.Action != "Heartbeat" {
			t.Fatalf("schema failures %+v", got)
		}
	}
}

// TestTakeoverLoggedAtWarn: a second connection with a connected id is
// logged at WARN with both remote addresses, so an impostor shows.
func TestTakeoverLoggedAtWarn(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	rec := &recorder{ch: make(chan event, 1024)}
	srv := NewServer(Options{Handler: rec, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Shutdown(context.Background()); hs.Close() }) // after the dials' cleanups close them
	h := &harness{srv: srv, rec: rec, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ocpp/"}
	old := h.dial(t, "CP1")
	first := srv.Sessions()[0].Remote
	h.dial(t, "CP1")
	old.CloseNow()
	var second string
	for _, s := range srv.Sessions() {
		second = s.Remote
	}
	want := `level=WARN msg="charge point replaced by a new connection" cid=CP1 remote=` + first + ` new_remote=` + second
	if first == second {
		t.Fatalf("both connections from %s", first)
	}
	// The line is written just after the new connection is reported.
	waitFor(t, "the takeover logged", func() bool { return strings.Contains(logs.String(), want) })
}
