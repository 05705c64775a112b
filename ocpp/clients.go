package ocpp

import (
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// ClientInfo describes one connected charge point, as the admin API's
// clients list shows it.
type ClientInfo struct {
	SessionInfo
	// LastSeen is the last frame, ping or pong from the charge point.
	LastSeen time.Time `json:"last_seen"`
	// QueueDepth is the commands waiting behind the outstanding one.
	QueueDepth int `json:"queue_depth"`
	// Held is the commands held for the charge point while it was offline
	// and not yet sent (they go first once it is back).
	Held int `json:"held"`
	// Outstanding is the downstream CALL awaiting its answer, if any.
	Outstanding *OutstandingCall `json:"outstanding"`
	// FramesIn and FramesOut count the connection's frames by type.
	FramesIn  FrameCounts `json:"frames_in"`
	FramesOut FrameCounts `json:"frames_out"`
}

// ClientDetail is ClientInfo with what a detail view adds.
type ClientDetail struct {
	ClientInfo
	// HeartbeatInterval is the interval the liveness check follows now
	// (what the central system told the charge point), in seconds.
	HeartbeatInterval float64 `json:"heartbeat_interval_seconds"`
	// Frames are the charge point's last frames, oldest first.
	Frames []FrameRecord `json:"frames"`
}

// OutstandingCall is the downstream CALL a charge point has not answered.
type OutstandingCall struct {
	Action   string    `json:"action"`
	UniqueID string    `json:"unique_id"`
	SentAt   time.Time `json:"sent_at"`
}

// FrameCounts counts frames by type.
type FrameCounts struct {
	Call       uint64 `json:"call"`
	CallResult uint64 `json:"callresult"`
	CallError  uint64 `json:"callerror"`
}

// frameCounter counts one connection's frames by type, one way.
type frameCounter [3]atomic.Uint64

func (f *frameCounter) add(t MessageType) {
	if t >= TypeCall && t <= TypeCallError {
		f[t-TypeCall].Add(1)
	}
}

func (f *frameCounter) load() FrameCounts {
	return FrameCounts{Call: f[0].Load(), CallResult: f[1].Load(), CallError: f[2].Load()}
}

// Clients lists the connected charge points whose id contains q (all for
// ""), sorted by id, from offset, at most limit of them (limit ≤ 0: all);
// total is how many matched.
func (s *Server) Clients(q string, offset, limit int) (page []ClientInfo, total int) {
	conns := s.connections()
	matched := conns[:0]
	for _, c := range conns {
		if strings.Contains(c.cid, q) {
			matched = append(matched, c)
		}
	}
	sort.Slice(matched, func(i, j int) bool { return matched[i].cid < matched[j].cid })
	total = len(matched)
	offset = min(max(offset, 0), total)
	end := total
	if limit > 0 {
		end = min(offset+limit, total)
	}
	page = make([]ClientInfo, 0, end-offset)
	for _, c := range matched[offset:end] {
		page = append(page, c.clientInfo())
	}
	return page, total
}

// ClientInfo describes connected charge point cid, as Clients lists it;
// false when it is not connected.
func (s *Server) ClientInfo(cid string) (ClientInfo, bool) {
	c := s.current(cid)
	if c == nil {
		return ClientInfo{}, false
	}
	return c.clientInfo(), true
}

// Client describes charge point cid with its frame history; false when it
// is not connected.
func (s *Server) Client(cid string) (ClientDetail, bool) {
	c := s.current(cid)
	if c == nil {
		return ClientDetail{}, false
	}
	return ClientDetail{
		ClientInfo:        c.clientInfo(),
		HeartbeatInterval: time.Duration(c.heartbeat.Load()).Seconds(),
		Frames:            s.Frames(cid),
	}, true
}

// Frames returns the last frames of charge point cid, oldest first, both
// ways (ocpp.frame_history of them): also after it disconnected, until
// they age out of ocpp.frame_history_bytes. Empty when history is off or
// nothing of cid is recorded.
func (s *Server) Frames(cid string) []FrameRecord {
	if s.history == nil {
		return []FrameRecord{}
	}
	return s.history.frames(cid)
}

// clientInfo snapshots c.
func (c *conn) clientInfo() ClientInfo {
	ci := ClientInfo{
		SessionInfo: c.info,
		LastSeen:    time.Unix(0, c.lastActive.Load()),
		FramesIn:    c.framesIn.load(),
		FramesOut:   c.framesOut.load(),
	}
	st := c.st
	st.mu.Lock()
	ci.QueueDepth = len(st.queue)
	if st.holding {
		ci.Held = len(st.queue)
	}
	if f := st.inflight; f != nil && st.conn == c {
		ci.Outstanding = &OutstandingCall{Action: f.cmd.Frame.Action, UniqueID: f.cmd.Frame.UniqueID, SentAt: f.sentAt}
	}
	st.mu.Unlock()
	return ci
}

// Kick closes charge point cid's connection, as an operator would: close
// 1000 "kicked", and presence offline with reason kicked. With block > 0
// its reconnects are refused with HTTP 403 for that long, since a charger
// reconnects at once. It reports false when the charge point is not
// connected (nothing is blocked then).
func (s *Server) Kick(cid string, block time.Duration) bool {
	c := s.current(cid)
	if c == nil || c.closing() {
		return false // a second kick finds the first one's connection closing
	}
	if block > 0 {
		s.block(cid, time.Now().Add(block))
	}
	c.shut(ReasonKicked, websocket.StatusNormalClosure)
	return true
}

// maxBlocked bounds the charge point ids blocked at once; expired entries
// are dropped first, then the one that ends soonest.
const maxBlocked = 10000

// block refuses cid's handshakes until until.
func (s *Server) block(cid string, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocked == nil {
		s.blocked = make(map[string]time.Time)
	}
	if len(s.blocked) >= maxBlocked {
		now := time.Now()
		soonest, at := "", time.Time{}
		for id, t := range s.blocked {
			if now.After(t) {
				delete(s.blocked, id)
			} else if soonest == "" || t.Before(at) {
				soonest, at = id, t
			}
		}
		if len(s.blocked) >= maxBlocked {
			delete(s.blocked, soonest)
		}
	}
	s.blocked[cid] = until
}

// blockedUntil reports until when cid's handshakes are refused, if they
// are.
func (s *Server) blockedUntil(cid string) (time.Time, bool) {
	s.mu.RLock()
	until, ok := s.blocked[cid]
	s.mu.RUnlock()
	if !ok {
		return time.Time{}, false
	}
	if time.Now().After(until) {
		s.mu.Lock()
		if t, ok := s.blocked[cid]; ok && t.Equal(until) {
			delete(s.blocked, cid)
		}
		s.mu.Unlock()
		return time.Time{}, false
	}
	return until, true
}
