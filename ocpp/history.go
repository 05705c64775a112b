package ocpp

import (
	"sync"
	"time"
)

// FrameRecord is one frame of a charge point's history, as the admin API
// and its event stream show it: enough to see what a charger said and was
// told without a packet capture.
type FrameRecord struct {
	Time time.Time `json:"time"`
	// Direction is "in" (from the charge point) or "out" (to it).
	Direction string `json:"direction"`
	// Type is call, callresult, callerror, or malformed for a frame from
	// the charge point that did not parse.
	Type     string `json:"type"`
	Action   string `json:"action,omitempty"`
	UniqueID string `json:"unique_id,omitempty"`
	// Size is the frame's length in bytes, as sent.
	Size int `json:"size"`
	// Payload is the frame's payload as JSON text (the whole frame for a
	// malformed one), cut at maxRecordedPayload bytes; Truncated says so.
	Payload   string `json:"payload,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
}

// Directions of a FrameRecord.
const (
	DirectionIn  = "in"
	DirectionOut = "out"
)

// maxRecordedPayload is how much of a payload a record keeps: enough for
// every ordinary OCPP 1.6 message, little enough that 16 records of 20,000
// charge points stay within the default byte budget's order of magnitude.
const maxRecordedPayload = 1 << 10

// recordOverhead is what a record costs beyond its payload (the struct,
// its strings' headers, the two queue slots), for the byte budget.
const recordOverhead = 160

// history keeps the last frames of every charge point, both ways: at most
// perCID of each, and at most maxBytes in all, the oldest record of all
// dropped first. A charge point's records outlive its connection until
// they age out of the budget, so the frames that led to a disconnect can
// still be read after it.
//
// Both the global queue and each charge point's ring are in time order,
// so the globally oldest live record is always its charge point's oldest:
// dropping it is a pop from both fronts. A record pushed out of its
// charge point's ring by newer ones dies in place in the global queue and
// is skipped when it reaches the front; the queue is compacted when dead
// records outnumber live ones, so a busy charge point behind an idle one
// cannot grow it without bound.
type history struct {
	perCID   int
	maxBytes int64

	mu    sync.Mutex
	bytes int64
	byCID map[string]*ring
	all   []*record // global time order; index head is the oldest
	head  int
	dead  int // records in all[head:] that no ring holds any more
}

type record struct {
	cid  string
	rec  FrameRecord
	cost int64
	live bool
}

// ring is one charge point's records, oldest first.
type ring struct {
	recs []*record
}

func newHistory(perCID int, maxBytes int64) *history {
	if perCID <= 0 || maxBytes <= 0 {
		return nil
	}
	return &history{perCID: perCID, maxBytes: maxBytes, byCID: make(map[string]*ring)}
}

// add records a frame of cid. payload is copied (up to the cut).
func (h *history) add(cid string, r FrameRecord, payload []byte) {
	if len(payload) > maxRecordedPayload {
		payload, r.Truncated = payload[:maxRecordedPayload], true
	}
	r.Payload = string(payload)
	rec := &record{cid: cid, rec: r, live: true,
		cost: int64(len(r.Payload)+len(r.Action)+len(r.UniqueID)+len(cid)) + recordOverhead}

	h.mu.Lock()
	defer h.mu.Unlock()
	rg := h.byCID[cid]
	if rg == nil {
		rg = &ring{recs: make([]*record, 0, min(h.perCID, 4))}
		h.byCID[cid] = rg
	}
	if len(rg.recs) == h.perCID {
		h.kill(rg.recs[0])
		copy(rg.recs, rg.recs[1:])
		rg.recs = rg.recs[:len(rg.recs)-1]
	}
	rg.recs = append(rg.recs, rec)
	h.all = append(h.all, rec)
	h.bytes += rec.cost
	for h.bytes > h.maxBytes && h.head < len(h.all) {
		h.dropOldest()
	}
	// Compact when dead records outnumber live ones, or the consumed front
	// is most of the queue: either way the queue stays within twice the
	// live records (plus a small constant).
	if live := len(h.all) - h.head - h.dead; h.dead+h.head > 64 && h.dead+h.head > live {
		h.compact()
	}
}

// kill marks r as no longer in its ring.
func (h *history) kill(r *record) {
	r.live = false
	h.bytes -= r.cost
	h.dead++
}

// dropOldest removes the oldest record of all, live or dead.
func (h *history) dropOldest() {
	r := h.all[h.head]
	h.all[h.head] = nil
	h.head++
	if !r.live {
		h.dead--
		return
	}
	r.live = false
	h.bytes -= r.cost
	rg := h.byCID[r.cid]
	// r is its ring's oldest (see history).
	copy(rg.recs, rg.recs[1:])
	rg.recs[len(rg.recs)-1] = nil
	rg.recs = rg.recs[:len(rg.recs)-1]
	if len(rg.recs) == 0 {
		delete(h.byCID, r.cid)
	}
}

// compact drops dead records and the consumed front of the global queue.
func (h *history) compact() {
	live := make([]*record, 0, len(h.all)-h.head-h.dead)
	for _, r := range h.all[h.head:] {
		if r.live {
			live = append(live, r)
		}
	}
	h.all, h.head, h.dead = live, 0, 0
}

// frames returns cid's records, oldest first.
func (h *history) frames(cid string) []FrameRecord {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	rg := h.byCID[cid]
	if rg == nil {
		return []FrameRecord{}
	}
	out := make([]FrameRecord, len(rg.recs))
	for i, r := range rg.recs {
		out[i] = r.rec
	}
	return out
}

// size reports the bytes accounted and the records held, for tests and
// the memory figures.
func (h *history) size() (bytes int64, records int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bytes, len(h.all) - h.head - h.dead
}
