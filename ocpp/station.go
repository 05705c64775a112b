package ocpp

import (
	"sync"
	"time"
)

// station is the gateway's state for one charge point id. It outlives a
// connection: during a takeover the queue and the outstanding call move to
// the new connection, and with an offline TTL the commands wait here for
// the charge point to come back.
//
// events serialises what the Handler is told about the charge point:
// Connected, Disconnected and the failures of a disconnect (so presence is
// never published out of order), and the timeouts of its commands and the
// answers to them (so a timeout error always comes before the late answer
// of the same command). It is taken before Server.mu and mu; removal from
// Server.stations happens only under it.
type station struct {
	cid string
	srv *Server

	events  sync.Mutex
	removed bool // deleted from Server.stations; guarded by Server.mu and mu

	mu       sync.Mutex
	conn     *conn      // current connection; nil when none
	inflight *inflight  // the downstream CALL awaiting its answer
	queue    []*Command // CALLs waiting behind inflight, oldest first
	// holding is set while the station is offline with commands held; it
	// counts once in Server.heldCIDs and heldBytes in Server.heldBytes.
	holding   bool
	heldBytes int64
	expiry    *time.Timer
	// late remembers the last few calls that timed out, so their answers can
	// still be published, marked late, with their action; made at the first
	// timeout (most charge points never have one).
	late *[lateMemory]pendingCall
	next int // next slot of late to overwrite
}

const lateMemory = 8

// inflight is the one outstanding downstream CALL.
type inflight struct {
	cmd    *Command
	timer  *time.Timer
	sentAt time.Time
}

// pendingCall is a call whose answer is still expected: the charge point's
// own calls (answered from MQTT) and recently timed-out downstream calls.
type pendingCall struct {
	id       string
	action   string
	deadline time.Time
}

// errOffline is the refusal of a command for a charge point that is not
// connected. Each call makes a new one: callers own what they are given.
func errOffline() *GatewayError {
	return gatewayError(ReasonOffline, "charge point is not connected")
}

// enqueue queues a downstream CALL or refuses it. It reports retry when
// the station was removed meanwhile and the caller must look it up again.
func (st *station) enqueue(cmd *Command) (err *GatewayError, retry bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.removed {
		return nil, true
	}
	if st.conn == nil && (st.srv.opts.OfflineTTL <= 0 || st.srv.gate.isClosed()) {
		return errOffline(), false
	}
	id := cmd.Frame.UniqueID
	if st.inflight != nil && st.inflight.cmd.Frame.UniqueID == id {
		return gatewayError(ReasonDuplicateID, "a call with this UniqueId is outstanding"), false
	}
	for _, q := range st.queue {
		if q.Frame.UniqueID == id {
			return gatewayError(ReasonDuplicateID, "a call with this UniqueId is queued"), false
		}
	}
	if st.inflight != nil && len(st.queue) >= st.srv.opts.MaxQueue {
		return gatewayError(ReasonQueueFull, "the charge point's command queue is full"), false
	}
	if st.conn == nil {
		if len(st.queue) >= st.srv.opts.MaxQueue || !st.holdLocked(cmd, time.Now()) {
			return gatewayError(ReasonOffline, "charge point is not connected and no more commands can be held for it"), false
		}
		return nil, false
	}
	st.queue = append(st.queue, cmd)
	st.dispatchLocked()
	return nil, false
}

// holdLocked keeps cmd for an offline charge point until the TTL ends,
// within the server-wide bounds. It reports false when a bound is reached.
func (st *station) holdLocked(cmd *Command, now time.Time) bool {
	s := st.srv
	n := int64(len(cmd.raw))
	if s.heldBytes.Add(n) > s.opts.MaxOfflineBytes {
		s.heldBytes.Add(-n)
		return false
	}
	if !st.holding {
		if s.heldCIDs.Add(1) > int64(s.opts.MaxOfflineCIDs) {
			s.heldCIDs.Add(-1)
			s.heldBytes.Add(-n)
			return false
		}
		st.holding = true
	}
	st.heldBytes += n
	cmd.heldUntil = now.Add(s.opts.OfflineTTL)
	st.queue = append(st.queue, cmd)
	if st.expiry == nil {
		st.expiry = time.AfterFunc(s.opts.OfflineTTL, st.expire)
	}
	return true
}

// releaseLocked ends holding: the charge point is back, or nothing is left.
func (st *station) releaseLocked() {
	if !st.holding {
		return
	}
	st.holding = false
	st.srv.heldCIDs.Add(-1)
	st.srv.heldBytes.Add(-st.heldBytes)
	st.heldBytes = 0
	if st.expiry != nil {
		st.expiry.Stop()
		st.expiry = nil
	}
	for _, c := range st.queue {
		c.heldUntil = time.Time{}
	}
}

// expire fails the held commands whose TTL has ended, oldest first, and
// forgets the station when nothing is left.
func (st *station) expire() {
	if !st.srv.gate.enter() {
		return // Shutdown fails what is held
	}
	defer st.srv.gate.leave()
	st.events.Lock()
	defer st.events.Unlock()
	st.mu.Lock()
	st.expiry = nil
	if st.conn != nil || !st.holding {
		st.mu.Unlock()
		return
	}
	now := time.Now()
	var failed []*Command
	for len(st.queue) > 0 && !st.queue[0].heldUntil.After(now) {
		c := st.queue[0]
		st.queue[0] = nil
		st.queue = st.queue[1:]
		st.heldBytes -= int64(len(c.raw))
		st.srv.heldBytes.Add(-int64(len(c.raw)))
		failed = append(failed, c)
	}
	if len(st.queue) > 0 {
		st.expiry = time.AfterFunc(time.Until(st.queue[0].heldUntil), st.expire)
	} else {
		st.releaseLocked()
	}
	st.mu.Unlock()
	for _, c := range failed {
		st.srv.fail(st.cid, c, gatewayError(ReasonOffline, "charge point did not reconnect within offline_ttl"))
	}
	st.srv.forgetIfIdle(st)
}

// protocol is the current connection's protocol, or 1.6 while offline.
func (st *station) protocol() Protocol {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.conn != nil {
		return st.conn.info.Protocol
	}
	return OCPP16
}

// idleLocked reports whether the station holds nothing worth keeping.
func (st *station) idleLocked() bool {
	return st.conn == nil && st.inflight == nil && len(st.queue) == 0
}

// dispatchLocked sends the next queued CALL when none is outstanding
// [OCPP-J 1.6 §4.1.1: one CALL at a time].
func (st *station) dispatchLocked() {
	if st.inflight != nil || st.conn == nil || len(st.queue) == 0 {
		return
	}
	cmd := st.queue[0]
	st.queue[0] = nil
	st.queue = st.queue[1:]
	f := &inflight{cmd: cmd, sentAt: time.Now()}
	f.timer = time.AfterFunc(st.srv.opts.CallTimeout, func() { st.timeout(f) })
	st.inflight = f
	st.conn.sendCommand(cmd)
}

// takeInflightLocked removes the outstanding call, stopping its timer.
func (st *station) takeInflightLocked() *Command {
	f := st.inflight
	if f == nil {
		return nil
	}
	f.timer.Stop()
	st.inflight = nil
	return f.cmd
}

// timeout fails f if it is still outstanding and moves the queue on. The
// failure is reported under the events lock, which the reader takes to
// match an answer: a late answer is published after the timeout error.
func (st *station) timeout(f *inflight) {
	if !st.srv.gate.enter() {
		return // the connection is closing; detach fails the call
	}
	defer st.srv.gate.leave()
	st.events.Lock()
	defer st.events.Unlock()
	st.mu.Lock()
	if st.inflight != f {
		st.mu.Unlock()
		return
	}
	st.inflight = nil
	if st.late == nil {
		st.late = new([lateMemory]pendingCall)
	}
	st.late[st.next] = pendingCall{id: f.cmd.Frame.UniqueID, action: f.cmd.Frame.Action}
	st.next = (st.next + 1) % lateMemory
	st.dispatchLocked()
	st.mu.Unlock()
	st.srv.fail(st.cid, f.cmd, gatewayError(ReasonTimeout, "no answer within call_timeout"))
}

// answer sends a CALLRESULT or CALLERROR for one of the charge point's
// calls, ahead of the queue. The schema check runs outside the station's
// lock; a refused answer puts the call back so a corrected one can follow.
func (st *station) answer(cmd *Command) *GatewayError {
	st.mu.Lock()
	c := st.conn
	var action string
	ok := false
	if c != nil {
		action, ok = c.takePending(cmd.Frame.UniqueID, time.Now())
	}
	st.mu.Unlock()
	switch {
	case c == nil:
		return errOffline()
	case !ok:
		return gatewayError(ReasonUnknownCall, "no call of the charge point has this UniqueId")
	}
	cmd.Frame.Action = action
	if err := st.srv.checkAnswer(c, cmd); err != nil {
		st.mu.Lock()
		c.restorePending(cmd.Frame.UniqueID, action)
		st.mu.Unlock()
		return err
	}
	c.sendCommand(cmd)
	if cmd.Frame.Type == TypeCallResult {
		c.watchAnswer(action, cmd.Frame.Payload)
	}
	return nil
}

// matchAnswer finds what an answer from the charge point refers to. It
// releases the outstanding call when the answer is its own.
func (st *station) matchAnswer(in *Inbound) {
	st.mu.Lock()
	defer st.mu.Unlock()
	id := in.UniqueID
	if f := st.inflight; f != nil && f.cmd.Frame.UniqueID == id {
		in.Command = st.takeInflightLocked()
		in.Action = in.Command.Frame.Action
		in.RoundTrip = time.Since(in.Command.accepted)
		st.dispatchLocked()
		return
	}
	for i := 0; st.late != nil && i < lateMemory; i++ {
		if l := &st.late[i]; l.id == id && l.id != "" {
			in.Late = true
			in.Action = l.action
			*l = pendingCall{}
			return
		}
	}
	in.Unsolicited = true
}
