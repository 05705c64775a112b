package broker

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chargemq/chargemq/ocpp"
)

// Event is one message of the admin API's event stream (GET
// /api/v1/events, Server-Sent Events): what a live view of the charge
// points needs to stay current without refetching the list.
type Event struct {
	// Type is connected, disconnected or frame (the SSE event name too).
	Type string    `json:"type"`
	CID  string    `json:"cid"`
	Time time.Time `json:"time"`
	// Client is the charge point that connected.
	Client *ocpp.ClientInfo `json:"client,omitempty"`
	// Reason is why it disconnected (a presence reason).
	Reason string `json:"reason,omitempty"`
	// Frame is a frame to or from it: a summary (no payload) on the
	// stream of all charge points, the whole record on a stream for one.
	Frame *ocpp.FrameRecord `json:"frame,omitempty"`
}

// Event stream bounds: subscribers at once, and events queued for one.
// A subscriber that falls further behind loses events and is told so
// (event "overflow"), so it can refetch the list; nothing else waits
// for it.
const (
	maxEventSubscribers = 32
	eventQueue          = 1024
	eventKeepAlive      = 15 * time.Second
)

// eventHub hands events to the stream subscribers without blocking the
// connection goroutines that produce them. With no subscriber an event
// costs an atomic load.
type eventHub struct {
	count atomic.Int32
	mu    sync.Mutex
	subs  map[*subscriber]struct{}
	done  chan struct{} // closed at shutdown: every stream ends
	once  sync.Once
}

type subscriber struct {
	ch chan []byte // SSE messages, encoded
	// cid, when set, limits frame events to that charge point's, with
	// payloads; frames false sends none.
	cid    string
	frames bool
	lost   atomic.Bool
}

func newEventHub() *eventHub {
	return &eventHub{subs: make(map[*subscriber]struct{}), done: make(chan struct{})}
}

func (h *eventHub) active() bool { return h.count.Load() > 0 }

func (h *eventHub) subscribe(cid string, frames bool) (*subscriber, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= maxEventSubscribers {
		return nil, false
	}
	s := &subscriber{ch: make(chan []byte, eventQueue), cid: cid, frames: frames}
	h.subs[s] = struct{}{}
	h.count.Add(1)
	return s, true
}

func (h *eventHub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		h.count.Add(-1)
	}
}

// close ends every stream.
func (h *eventHub) close() { h.once.Do(func() { close(h.done) }) }

// publish encodes e once (twice for a frame: summary and full) and
// offers it to every subscriber that wants it.
func (h *eventHub) publish(e Event, payload []byte) {
	if !h.active() {
		return
	}
	var summary, full []byte
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		var msg []byte
		switch {
		case e.Type != "frame":
			if summary == nil {
				summary = sseMessage(e)
			}
			msg = summary
		case !s.frames || s.cid != "" && s.cid != e.CID:
			continue
		case s.cid != "":
			if full == nil {
				f := *e.Frame
				f.Payload = string(payload)
				fe := e
				fe.Frame = &f
				full = sseMessage(fe)
			}
			msg = full
		default:
			if summary == nil {
				summary = sseMessage(e)
			}
			msg = summary
		}
		select {
		case s.ch <- msg:
		default:
			s.lost.Store(true)
		}
	}
}

// sseMessage is e as one Server-Sent Event.
func sseMessage(e Event) []byte {
	data, _ := json.Marshal(e)
	b := make([]byte, 0, len(data)+len(e.Type)+16)
	b = append(b, "event: "...)
	b = append(b, e.Type...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// overflowMessage tells a subscriber it lost events.
var overflowMessage = []byte("event: overflow\ndata: {\"type\":\"overflow\"}\n\n")

// handleEvents serves GET /api/v1/events: ?cid=ID limits frame events to
// one charge point and includes their payloads; ?frames=false sends
// connections only. The stream ends at shutdown.
func (b *Broker) handleEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sub, ok := b.events.subscribe(q.Get("cid"), q.Get("frames") != "false")
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "too many event streams open (at most %d)", maxEventSubscribers)
		return
	}
	defer b.events.unsubscribe(sub)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The stream lives past the server's write timeout, if one is set.
	_ = rc.SetWriteDeadline(time.Time{})
	if _, err := w.Write([]byte(": chargemq events\n\n")); err != nil {
		return
	}
	_ = rc.Flush()
	keepAlive := time.NewTicker(eventKeepAlive)
	defer keepAlive.Stop()
	for {
		var msg []byte
		select {
		case msg = <-sub.ch:
		case <-keepAlive.C:
			msg = []byte(": keep-alive\n\n")
		case <-r.Context().Done():
			return
		case <-b.events.done:
			// What was queued before the end (the charge points' offline
			// events of the shutdown) still goes out.
			for {
				select {
				case msg := <-sub.ch:
					if _, err := w.Write(msg); err != nil {
						return
					}
				default:
					_ = rc.Flush()
					return
				}
			}
		}
		if _, err := w.Write(msg); err != nil {
			return
		}
		if len(sub.ch) == 0 && sub.lost.Swap(false) {
			if _, err := w.Write(overflowMessage); err != nil {
				return
			}
		}
		if len(sub.ch) == 0 {
			_ = rc.Flush()
		}
	}
}
