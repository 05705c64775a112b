package ocpp

import (
	"sync"
	"time"
)

// station is the gateway's state for one charge point id. It outlives a
// single connection during a takeover, so the queue and the outstanding
// call move to the new connection instead of being lost.
type station struct {
	cid string
	srv *Server

	mu       sync.Mutex
	conn     *conn      // current connection; nil when none
	inflight *inflight  // the downstream CALL awaiting its answer
	queue    []*Command // CALLs waiting behind inflight, oldest first
	// late remembers the last few calls that timed out, so their answers can
	// still be published, marked late, with their action.
	late [lateMemory]pendingCall
	next int // next slot of late to overwrite
}

const lateMemory = 8

// inflight is the one outstanding downstream CALL.
type inflight struct {
	cmd   *Command
	timer *time.Timer
}

// pendingCall is a call whose answer is still expected: the charge point's
// own calls (answered from MQTT) and recently timed-out downstream calls.
type pendingCall struct {
	id       string
	action   string
	deadline time.Time
}

// enqueue queues a downstream CALL or refuses it.
func (st *station) enqueue(cmd *Command) *GatewayError {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.conn == nil {
		return gatewayError(ReasonOffline, "charge point is not connected")
	}
	id := cmd.Frame.UniqueID
	if st.inflight != nil && st.inflight.cmd.Frame.UniqueID == id {
		return gatewayError(ReasonDuplicateID, "a call with this UniqueId is outstanding")
	}
	for _, q := range st.queue {
		if q.Frame.UniqueID == id {
			return gatewayError(ReasonDuplicateID, "a call with this UniqueId is queued")
		}
	}
	if st.inflight != nil && len(st.queue) >= st.srv.opts.MaxQueue {
		return gatewayError(ReasonQueueFull, "the charge point's command queue is full")
	}
	st.queue = append(st.queue, cmd)
	st.dispatchLocked()
	return nil
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
	f := &inflight{cmd: cmd}
	f.timer = time.AfterFunc(st.srv.opts.CallTimeout, func() { st.timeout(f) })
	st.inflight = f
	st.conn.send(cmd.raw, TypeCall)
}

func (st *station) stopTimerLocked() {
	st.inflight.timer.Stop()
}

// timeout fails f if it is still outstanding and moves the queue on.
func (st *station) timeout(f *inflight) {
	st.mu.Lock()
	if st.inflight != f {
		st.mu.Unlock()
		return
	}
	st.inflight = nil
	st.late[st.next] = pendingCall{id: f.cmd.Frame.UniqueID, action: f.cmd.Frame.Action}
	st.next = (st.next + 1) % lateMemory
	st.dispatchLocked()
	st.mu.Unlock()
	st.srv.fail(st.cid, f.cmd, gatewayError(ReasonTimeout, "no answer within call_timeout"))
}

// answer sends a CALLRESULT or CALLERROR for one of the charge point's
// calls, ahead of the queue.
func (st *station) answer(cmd *Command) *GatewayError {
	st.mu.Lock()
	defer st.mu.Unlock()
	c := st.conn
	if c == nil {
		return gatewayError(ReasonOffline, "charge point is not connected")
	}
	action, ok := c.takePending(cmd.Frame.UniqueID, time.Now())
	if !ok {
		return gatewayError(ReasonUnknownCall, "no call of the charge point has this UniqueId")
	}
	cmd.Frame.Action = action
	c.send(cmd.raw, cmd.Frame.Type)
	return nil
}

// matchAnswer finds what an answer from the charge point refers to. It
// releases the outstanding call when the answer is its own.
func (st *station) matchAnswer(in *Inbound) {
	st.mu.Lock()
	defer st.mu.Unlock()
	id := in.UniqueID
	if f := st.inflight; f != nil && f.cmd.Frame.UniqueID == id {
		f.timer.Stop()
		st.inflight = nil
		in.Command = f.cmd
		in.Action = f.cmd.Frame.Action
		st.dispatchLocked()
		return
	}
	for i := range st.late {
		if l := &st.late[i]; l.id == id && l.id != "" {
			in.Late = true
			in.Action = l.action
			*l = pendingCall{}
			return
		}
	}
	in.Unsolicited = true
}
