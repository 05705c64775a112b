package ocpp

import (
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestClientsList: Clients filters by id substring, sorts by id, pages,
// and reports each connection's counts, queue and outstanding call.
func TestClientsList(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MaxQueue: 10})
	a := h.dial(t, "CP-A")
	h.dial(t, "CP-B")
	h.dial(t, "X-1")
	write(t, a, `[2,"1","Heartbeat",{}]`)
	h.rec.next(t, "received")
	if err := h.srv.Send("CP-A", call("c1", "Reset")); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Send("CP-A", call("c2", "Reset")); err != nil {
		t.Fatal(err)
	}
	read(t, a) // c1 is outstanding, c2 waits

	page, total := h.srv.Clients("CP", 0, 0)
	if total != 2 || len(page) != 2 || page[0].CID != "CP-A" || page[1].CID != "CP-B" {
		t.Fatalf("Clients(CP) = %+v, %d", page, total)
	}
	ca := page[0]
	if ca.Protocol != OCPP16 || ca.Remote == "" || ca.SecurityProfile != 1 || ca.LastSeen.IsZero() {
		t.Errorf("CP-A info %+v", ca)
	}
	if ca.FramesIn.Call != 1 || ca.FramesOut.Call != 1 || ca.QueueDepth != 1 {
		t.Errorf("CP-A counts in %+v out %+v queue %d", ca.FramesIn, ca.FramesOut, ca.QueueDepth)
	}
	if o := ca.Outstanding; o == nil || o.Action != "Reset" || o.UniqueID != "c1" || o.SentAt.IsZero() {
		t.Errorf("CP-A outstanding %+v", o)
	}
	if page[1].Outstanding != nil {
		t.Errorf("CP-B outstanding %+v", page[1].Outstanding)
	}
	if page, total := h.srv.Clients("", 1, 1); total != 3 || len(page) != 1 || page[0].CID != "CP-B" {
		t.Errorf("Clients page 2 = %+v, %d", page, total)
	}
	if page, total := h.srv.Clients("", 5, 10); total != 3 || len(page) != 0 {
		t.Errorf("Clients past the end = %+v, %d", page, total)
	}
	if _, ok := h.srv.Client("nobody"); ok {
		t.Error("Client(nobody) found")
	}
	st := h.srv.Stats()
	if st.Queued != 1 || st.Outstanding != 1 || st.Accepted != 3 || st.BytesIn == 0 || st.BytesOut == 0 {
		t.Errorf("stats queued %d outstanding %d accepted %d bytes %d/%d", st.Queued, st.Outstanding, st.Accepted, st.BytesIn, st.BytesOut)
	}
}

// TestClientDetailAndRoundTrip: the detail view has the liveness interval
// and the frames both ways, answers carry the action of their call, and
// the answer to a command reports its round trip.
func TestClientDetailAndRoundTrip(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []FrameRecord
	h := newHarness(t, Options{OnFrame: func(cid string, f FrameRecord, payload []byte) {
		mu.Lock()
		seen = append(seen, f)
		mu.Unlock()
	}})
	ws := h.dial(t, "CP1")
	write(t, ws, `[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]`)
	h.rec.next(t, "received")
	answer := &Command{Frame: Frame{Type: TypeCallResult, UniqueID: "b1",
		Payload: json.RawMessage(`{"status":"Accepted","currentTime":"2026-12-01T00:00:00Z","interval":300}`)}}
	if err := h.srv.Send("CP1", answer); err != nil {
		t.Fatal(err)
	}
	read(t, ws)
	if err := h.srv.Send("CP1", call("r1", "Reset")); err != nil {
		t.Fatal(err)
	}
	read(t, ws)
	write(t, ws, `[3,"r1",{"status":"Accepted"}]`)
	if e := h.rec.next(t, "received"); e.in.Command == nil || e.in.RoundTrip <= 0 {
		t.Fatalf("answer %+v: want its command and a round trip", e.in)
	}
	write(t, ws, `not json`)
	read(t, ws) // the CALLERROR

	d, ok := h.srv.Client("CP1")
	if !ok {
		t.Fatal("Client(CP1) not found")
	}
	if d.HeartbeatInterval != 300 {
		t.Errorf("heartbeat interval %v, want 300 (from the BootNotification answer)", d.HeartbeatInterval)
	}
	want := []string{"in call BootNotification b1", "out callresult BootNotification b1", "out call Reset r1",
		"in callresult Reset r1", "in malformed  ", "out callerror  -1"}
	var got []string
	for _, f := range d.Frames {
		got = append(got, f.Direction+" "+f.Type+" "+f.Action+" "+f.UniqueID)
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("frames\n%q\nwant\n%q", got, want)
	}
	if f := d.Frames[0]; f.Size == 0 || !strings.Contains(f.Payload, `"chargePointVendor":"V"`) || f.Time.IsZero() {
		t.Errorf("first frame %+v", f)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(want) {
		t.Errorf("OnFrame saw %d frames, want %d", len(seen), len(want))
	}
}

func rec(i int) FrameRecord {
	return FrameRecord{Direction: DirectionIn, Type: "call", Action: "Heartbeat", UniqueID: strconv.Itoa(i)}
}

// TestHistoryBounds: per charge point the last n frames; in all, the byte
// budget, the oldest record of all dropped first; a long payload cut.
func TestHistoryBounds(t *testing.T) {
	t.Parallel()
	h := newHistory(3, 10*(recordOverhead+20))
	for i := 0; i < 5; i++ {
		h.add("A", rec(i), []byte(`{}`))
	}
	if got := h.frames("A"); len(got) != 3 || got[0].UniqueID != "2" || got[2].UniqueID != "4" {
		t.Fatalf("A: %+v, want frames 2..4", got)
	}
	// B's frames push the oldest of all (A's) out of the budget.
	for i := 0; i < 9; i++ {
		h.add("B"+strconv.Itoa(i), rec(i), []byte(`{}`))
	}
	if got := h.frames("A"); len(got) != 1 || got[0].UniqueID != "4" {
		t.Fatalf("A after B: %+v, want only frame 4", got)
	}
	if bytes, n := h.size(); bytes > h.maxBytes || n != 10 {
		t.Errorf("size %d bytes, %d records; budget %d", bytes, n, h.maxBytes)
	}
	h.add("C", rec(0), []byte(strings.Repeat("x", 3000)))
	if f := h.frames("C")[0]; len(f.Payload) != maxRecordedPayload || !f.Truncated {
		t.Errorf("long payload kept %d bytes, truncated %v", len(f.Payload), f.Truncated)
	}
	if got := h.frames("nobody"); got == nil || len(got) != 0 {
		t.Errorf("unknown id: %v, want empty", got)
	}
}

// TestHistoryQueueStaysBounded: a busy charge point behind an idle one
// does not grow the global queue: dead records are compacted away.
func TestHistoryQueueStaysBounded(t *testing.T) {
	t.Parallel()
	h := newHistory(4, 1<<30)
	h.add("idle", rec(0), nil)
	for i := 0; i < 100000; i++ {
		h.add("busy", rec(i), nil)
	}
	h.mu.Lock()
	queue := len(h.all)
	h.mu.Unlock()
	if _, n := h.size(); n != 5 || queue > 200 {
		t.Fatalf("%d live records, queue of %d; want 5 and a small queue", n, queue)
	}
}

// TestHistoryOutlivesConnection: a charge point's frames can be read after
// it disconnected.
func TestHistoryOutlivesConnection(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	ws := h.dial(t, "CP1")
	write(t, ws, `[2,"1","Heartbeat",{}]`)
	h.rec.next(t, "received")
	ws.CloseNow()
	h.rec.next(t, "disconnected")
	if got := h.srv.Frames("CP1"); len(got) != 1 || got[0].Action != "Heartbeat" {
		t.Fatalf("frames after disconnect: %+v", got)
	}
	off := newHarness(t, Options{FrameHistory: -1})
	ws = off.dial(t, "CP2")
	write(t, ws, `[2,"1","Heartbeat",{}]`)
	off.rec.next(t, "received")
	if got := off.srv.Frames("CP2"); len(got) != 0 {
		t.Errorf("history off kept %+v", got)
	}
}

// BenchmarkHistoryMemory measures what a full frame history costs per
// charge point: 1,000 charge points, each with ocpp.frame_history (16)
// frames of a typical size (a StatusNotification-sized payload, 160
// bytes), under a budget that holds them all. It reports heap bytes per
// charge point and what the byte budget accounts for them.
func BenchmarkHistoryMemory(b *testing.B) {
	payload := []byte(`{"connectorId":1,"errorCode":"NoError","status":"Charging","timestamp":"2026-12-01T22:00:00.000Z","info":"ok","vendorId":"ACME","vendorErrorCode":"0000000"}`)
	const cps = 1000
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		h := newHistory(16, 1<<30)
		for f := 0; f < 16; f++ {
			for c := 0; c < cps; c++ {
				h.add("CP-"+strconv.Itoa(c), FrameRecord{Time: time.Now(), Direction: DirectionIn, Type: "call",
					Action: "StatusNotification", UniqueID: strconv.Itoa(f), Size: len(payload) + 40}, payload)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		accounted, _ := h.size()
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/cps, "heapB/cp")
		b.ReportMetric(float64(accounted)/cps, "accountedB/cp")
		runtime.KeepAlive(h)
	}
}
