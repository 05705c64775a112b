package ocpp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// conn is one WebSocket connection of a charge point. Its reader runs
// run; a writer goroutine exists only while there is something to write:
// senders queue frames without blocking and start one when none runs, and
// it ends when the queues are empty, so an idle charge point costs one
// goroutine. A charge point too slow to take its frames is closed as a
// slow consumer rather than stalling the MQTT publisher that sent them.
// run owns the writer, the pinger and the closer goroutines (wg) and
// waits for them before it returns.
type conn struct {
	srv  *Server
	st   *station // set by attach; its mu guards pending
	cid  string
	info SessionInfo
	log  *slog.Logger
	ws   *websocket.Conn

	out     chan []byte   // frames from other goroutines (answers, commands) for the writer
	replies chan []byte   // CALLERRORs the reader makes itself for the writer
	done    chan struct{} // closed by shut
	// raw is the socket under the WebSocket (set at the hijack): closing it
	// ends whatever the library is doing, a close handshake included
	// (Server.Close). A cancellable read context would do the same, but
	// the library registers a callback on it for every read: 1.5 KiB per
	// idle charge point.
	raw net.Conn

	shutOnce sync.Once
	reason   Reason // why shut was called; read after done is closed
	wg       sync.WaitGroup
	// wmu guards writing (a writer goroutine runs) and ended (run waits
	// for its goroutines: none may start).
	wmu     sync.Mutex
	writing bool
	ended   bool

	// validator and checks are fixed for the connection's life.
	validator Validator
	checks    Checking

	// Liveness (liveness.go).
	lastActive atomic.Int64 // unix nanoseconds of the last frame, ping or pong
	gotFrame   atomic.Bool
	heartbeat  atomic.Int64 // interval, as a time.Duration
	watchdog   atomic.Pointer[time.Timer]

	refused uint64 // frames refused on this connection; reader only
	// quickFrames counts the frames in a row that came less than busyGap
	// apart; reader only.
	quickFrames int

	// framesIn and framesOut count the connection's frames by type, for
	// the admin API.
	framesIn, framesOut frameCounter

	// Proving the certificate's serial (prove.go): bootSerial is fixed at
	// the handshake; unproven is true until a BootNotification matched it,
	// and the connection is attached only then.
	bootSerial        string
	unproven          atomic.Bool
	proveTimer        *time.Timer
	revocationsBefore uint64

	// pending holds the charge point's calls awaiting an answer from MQTT,
	// a ring of MaxPending; guarded by st.mu.
	pending []pendingCall
	oldest  int
}

// outboxSize bounds the frames other goroutines hand to the writer.
// Downstream CALLs go one at a time and answers exist only for the charge
// point's open calls (at most MaxPending), so a full outbox means the
// charge point keeps calling while not reading: it is a slow consumer.
func outboxSize(maxPending int) int { return maxPending + 2 }

// repliesSize bounds the CALLERRORs the reader has made and the writer not
// yet sent. The reader waits for room, so a charge point that sends bad
// frames faster than it reads the answers is slowed down, not dropped; it
// is closed only when the writer cannot write within write_timeout.
const repliesSize = 8

func newConn(s *Server, cid string, p Protocol, remote string) *conn {
	c := &conn{
		srv:     s,
		cid:     cid,
		info:    SessionInfo{CID: cid, Protocol: p, Remote: remote, ConnectedAt: time.Now()},
		log:     s.log.With("cid", cid),
		out:     make(chan []byte, outboxSize(s.opts.MaxPending)),
		replies: make(chan []byte, repliesSize),
		done:    make(chan struct{}),
	}
	var rule string
	c.validator, c.checks, rule = s.validator(cid, p)
	if rule != "" {
		c.log.Info("schema checking override", "rule", rule, "upstream", c.checks&CheckUpstream != 0, "downstream", c.checks&CheckDownstream != 0)
	}
	return c
}

// run starts the connection's reader; when the connection has ended, its
// state is detached, its other goroutines waited for, and done called.
func (c *conn) run(done func()) {
	c.startWatchdog()
	if every := c.srv.opts.PingInterval; every > 0 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.pingLoop(every)
		}()
	}
	c.read(done)
}

// read reads and handles frames. Handling one (parse, schema check, the
// MQTT publish) grows a goroutine's stack to 8 KiB, which the runtime does
// not shrink while it waits in the library's read: an idle charge point
// would keep it for its connection's life. So after a frame the reader
// hands the connection to a fresh goroutine, which waits on a 4 KiB stack
// — unless the charge point is busy (its last busyFrames frames came less
// than busyGap apart): growing the stack again for every frame was 17 % of
// the server's CPU under load (docs/BENCHMARKS.md), and a busy charge point
// is about to need it. A busy one that falls silent keeps the grown stack
// until its next frame. Only one of these goroutines runs at a time.
//
// A frame's buffer comes from the server's pool once the frame has begun
// to arrive and goes back when it has been handled (ParseFrame copies
// what it keeps), so an idle charge point holds none.
func (c *conn) read(done func()) {
	for {
		typ, r, err := c.ws.Reader(context.Background())
		if err != nil {
			c.finish(c.readError(err), done)
			return
		}
		buf := c.srv.frameBuffer()
		if _, err := buf.ReadFrom(r); err != nil {
			c.srv.recycle(buf)
			c.finish(c.readError(err), done)
			return
		}
		if typ != websocket.MessageText {
			c.srv.recycle(buf)
			c.srv.stats.in(inBinary)
			c.shut(ReasonBinaryFrame, websocket.StatusUnsupportedData)
			c.finish(ReasonBinaryFrame, done)
			return
		}
		previous := c.lastActive.Load()
		c.handle(buf.Bytes())
		c.srv.recycle(buf)
		if time.Duration(c.lastActive.Load()-previous) < busyGap {
			c.quickFrames++
		} else {
			c.quickFrames = 0
		}
		if c.quickFrames < busyFrames {
			go c.read(done)
			return
		}
	}
}

// busyGap and busyFrames say when a charge point counts as busy, so that
// its reader keeps its grown stack (read).
const (
	busyGap    = time.Second
	busyFrames = 3
)

// finish ends the connection once its reader has stopped.
func (c *conn) finish(reason Reason, done func()) {
	c.shut(reason, websocket.StatusNormalClosure)
	c.stopWatchdog()
	if c.unproven.Load() {
		c.srv.dropUnproven(c, c.reason)
	} else {
		c.srv.detach(c, c.reason)
	}
	c.wmu.Lock()
	c.ended = true
	c.wmu.Unlock()
	c.wg.Wait()
	done()
}

// readError maps the reader's error to why the connection ended.
func (c *conn) readError(err error) Reason {
	select {
	case <-c.done:
		return c.reason
	default:
	}
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig):
		c.srv.stats.in(inTooLarge)
		return ReasonFrameTooLarge // the library has already closed with 1009
	case websocket.CloseStatus(err) != -1:
		return ReasonClosed
	}
	c.log.Debug("read failed", "error", err)
	return ReasonNetworkError
}

// handle processes one text frame from the charge point.
func (c *conn) handle(data []byte) {
	s := c.srv
	c.touch()
	c.firstFrame()
	s.stats.bytesIn.Add(uint64(len(data)))
	// A validator that scans checks a CALL while the frame is split;
	// checkCall checks it otherwise.
	var sv ScanValidator
	if c.checks&CheckUpstream != 0 {
		sv, _ = c.validator.(ScanValidator)
	}
	f, refusal, err := parseFrame(data, sv)
	if err != nil {
		c.record(DirectionIn, "malformed", "", "", len(data), data)
		s.stats.in(inMalformed)
		ce := AsCallError(err)
		c.logRefused("malformed frame", "code", c.info.Protocol.Spell(ce.Code), "error", ce.Description)
		c.reply(ce)
		return
	}
	c.framesIn.add(f.Type)
	switch f.Type {
	case TypeCall:
		c.record(DirectionIn, f.Type.String(), f.Action, f.UniqueID, len(data), f.Payload)
		s.stats.in(inCall)
		ce := refusal
		if sv == nil {
			ce = c.checkCall(&f)
		}
		if ce != nil {
			s.stats.in(inInvalid)
			s.failures.add(c.validator, "upstream", f.Action, ce.Code)
			c.logRefused("call refused", "action", f.Action, "unique_id", f.UniqueID, "code", ce.Code, "error", ce.Description)
			c.reply(ce)
			return
		}
		if c.unproven.Load() && !c.prove(&f) {
			return
		}
		if c.rememberPending(f) {
			s.stats.in(inConcurrentCall)
		}
		s.opts.Handler.Received(c.info, Inbound{Frame: f})
	default:
		if c.unproven.Load() {
			// Nothing was sent to it that it could answer.
			c.recordFrame(DirectionIn, &f, len(data))
			s.stats.in(inBeforeBoot)
			c.logRefused("answer dropped before BootNotification", "unique_id", f.UniqueID)
			return
		}
		if f.Type == TypeCallResult {
			s.stats.in(inCallResult)
		} else {
			s.stats.in(inCallError)
		}
		c.handleAnswer(f, len(data))
	}
}

// handleAnswer matches and publishes a CALLRESULT or CALLERROR from the
// charge point. The events lock keeps it behind a timeout error of the
// same command that is being reported (station.timeout).
func (c *conn) handleAnswer(f Frame, size int) {
	s := c.srv
	st := c.st
	st.events.Lock()
	defer st.events.Unlock()
	in := Inbound{Frame: f}
	st.matchAnswer(&in)
	c.recordFrame(DirectionIn, &in.Frame, size)
	if in.Command != nil {
		c.watchCommandAnswer(in.Command, &f)
	}
	if f.Type == TypeCallResult && in.Action != "" && c.checks&CheckUpstream != 0 {
		if ce := c.validator.Check(in.Action, true, f.Payload); ce != nil {
			// The charge point cannot be refused an answer: publish it
			// with what is wrong, and count it.
			in.Violations = violations(ce.Details)
			s.stats.in(inInvalid)
			s.failures.add(c.validator, "upstream", in.Action, ce.Code)
		}
	}
	if in.Late {
		s.stats.in(inLate)
	} else if in.Unsolicited {
		s.stats.in(inUnsolicited)
	}
	s.opts.Handler.Received(c.info, in)
}

// logRefused logs a refused frame: the first few of a connection at INFO,
// then one in every refusedLogEvery with the running count, the rest at
// DEBUG, so a charge point that floods bad frames cannot flood the log.
// Every refusal is counted in Stats regardless. Reader goroutine only.
func (c *conn) logRefused(msg string, args ...any) {
	c.refused++
	level := slog.LevelDebug
	if c.refused <= refusedLogFirst || c.refused%refusedLogEvery == 0 {
		level = slog.LevelInfo
	}
	c.log.Log(context.Background(), level, msg, append(args, "refused_so_far", c.refused)...)
}

const (
	refusedLogFirst = 10
	refusedLogEvery = 1000
)

// reply answers a frame with a CALLERROR. It runs on the reader and waits
// for room in replies: back-pressure on the charge point that caused it.
func (c *conn) reply(ce *CallError) {
	f := ce.Frame(c.info.Protocol)
	raw := f.AppendJSON(nil)
	select {
	case c.replies <- raw:
		c.countOut(&f, raw)
		c.startWriter()
	case <-c.done:
	}
}

// countOut counts and records a frame queued for the charge point.
func (c *conn) countOut(f *Frame, raw []byte) {
	c.srv.stats.out(f.Type)
	c.srv.stats.bytesOut.Add(uint64(len(raw)))
	c.framesOut.add(f.Type)
	if f.Type == TypeCallError {
		c.record(DirectionOut, f.Type.String(), f.Action, f.UniqueID, len(raw), raw)
		return
	}
	c.record(DirectionOut, f.Type.String(), f.Action, f.UniqueID, len(raw), f.Payload)
}

// recordFrame records a parsed frame from the charge point: its payload,
// or the whole frame for a CALLERROR (which has none).
func (c *conn) recordFrame(dir string, f *Frame, size int) {
	if c.srv.history == nil && c.srv.opts.OnFrame == nil {
		return
	}
	payload := []byte(f.Payload)
	if f.Type == TypeCallError {
		payload = f.AppendJSON(nil)
	}
	c.record(dir, f.Type.String(), f.Action, f.UniqueID, size, payload)
}

// record keeps a frame in the history and hands it to Options.OnFrame.
func (c *conn) record(dir, typ, action, id string, size int, payload []byte) {
	h, on := c.srv.history, c.srv.opts.OnFrame
	if h == nil && on == nil {
		return
	}
	r := FrameRecord{Time: time.Now(), Direction: dir, Type: typ, Action: action, UniqueID: id, Size: size}
	if h != nil {
		h.add(c.cid, r, payload)
	}
	if on != nil {
		if len(payload) > maxRecordedPayload {
			payload, r.Truncated = payload[:maxRecordedPayload], true
		}
		on(c.cid, r, payload)
	}
}

// rememberPending records a CALL of the charge point so its answer from
// MQTT can be matched; the oldest is forgotten when MaxPending are open.
// It reports whether another call was still unanswered: OCPP-J allows one
// at a time, but real charge points send more and are still served.
func (c *conn) rememberPending(f Frame) (concurrent bool) {
	st := c.st
	st.mu.Lock()
	defer st.mu.Unlock()
	now := time.Now()
	p := pendingCall{id: f.UniqueID, action: f.Action, deadline: now.Add(c.srv.opts.CallTimeout)}
	free := -1
	for i := range c.pending {
		if c.pending[i].id == "" || now.After(c.pending[i].deadline) {
			if free < 0 {
				free = i
			}
		} else {
			concurrent = true
		}
	}
	switch {
	case free >= 0:
		c.pending[free] = p
	case len(c.pending) < c.srv.opts.MaxPending:
		c.pending = append(c.pending, p)
	default:
		c.pending[c.oldest] = p
		c.oldest = (c.oldest + 1) % len(c.pending)
		c.srv.stats.in(inPendingEvicted)
	}
	return concurrent
}

// restorePending puts back a call whose answer was refused, so a corrected
// answer can still be sent. Caller holds st.mu.
func (c *conn) restorePending(id, action string) {
	for i := range c.pending {
		if c.pending[i].id == "" {
			c.pending[i] = pendingCall{id: id, action: action, deadline: time.Now().Add(c.srv.opts.CallTimeout)}
			return
		}
	}
}

// takePending removes and returns the action of the charge point's call
// with this id, if it is still awaited. Caller holds st.mu.
func (c *conn) takePending(id string, now time.Time) (string, bool) {
	for i := range c.pending {
		p := &c.pending[i]
		if p.id == id && !now.After(p.deadline) {
			action := p.action
			*p = pendingCall{}
			return action, true
		}
	}
	return "", false
}

// sendCommand hands a command's frame to the writer without blocking.
// When the outbox is full the charge point is not reading: it is closed as
// a slow consumer.
func (c *conn) sendCommand(cmd *Command) {
	select {
	case c.out <- cmd.raw:
		c.countOut(&cmd.Frame, cmd.raw)
		c.startWriter()
	default:
		c.shut(ReasonSlowConsumer, websocket.StatusPolicyViolation)
	}
}

// startWriter starts the writer goroutine unless one runs, or run has
// ended. A writer that finds the queues empty stops under wmu, so a frame
// queued just before this call is never left without one.
func (c *conn) startWriter() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.writing || c.ended {
		return
	}
	c.writing = true
	c.wg.Add(1)
	go c.writeLoop()
}

// writeLoop writes queued frames until the queues are empty, the
// connection is shut or a write fails (then no writer is started again).
func (c *conn) writeLoop() {
	defer c.wg.Done()
	for {
		var b []byte
		select {
		case b = <-c.out:
		case b = <-c.replies:
		case <-c.done:
			return
		default:
			c.wmu.Lock()
			if len(c.out) == 0 && len(c.replies) == 0 {
				c.writing = false
				c.wmu.Unlock()
				return
			}
			c.wmu.Unlock()
			continue
		}
		if !c.write(b) {
			return
		}
	}
}

// write sends one frame; a write that does not finish within write_timeout
// closes the charge point as a slow consumer. The bound is the socket's
// write deadline, which the runtime keeps in the socket's poller entry: no
// allocation per frame and nothing per connection, where a cancellable
// context costs a context, a timer and the library's callback on it for
// every frame. The deadline is cleared after each write, so a close
// handshake or a ping much later does not inherit it. The reason is
// recorded before the socket is dropped, so the reader, failing at once,
// finds slow_consumer, not a network error.
func (c *conn) write(b []byte) bool {
	c.raw.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteTimeout))
	err := c.ws.Write(context.Background(), websocket.MessageText, b)
	if err == nil {
		c.raw.SetWriteDeadline(time.Time{})
		return true
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.shut(ReasonSlowConsumer, websocket.StatusPolicyViolation)
	} else {
		c.shut(ReasonNetworkError, websocket.StatusInternalError)
	}
	return false
}

// closing reports whether shut was called.
func (c *conn) closing() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// shut closes the connection once, recording why. The close handshake
// waits for the peer (up to 5 s in the library), so it runs on its own
// goroutine and never holds up a caller. A slow consumer gets no
// handshake: it is not reading, so the close frame could not even be
// written, and its socket is dropped at once.
func (c *conn) shut(reason Reason, code websocket.StatusCode) {
	c.shutOnce.Do(func() {
		c.reason = reason
		close(c.done)
		// run waits for this goroutine; shutOnce makes this Add happen
		// before run's own shut returns, so before its Wait.
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if reason == ReasonSlowConsumer {
				c.ws.CloseNow()
				return
			}
			c.ws.Close(code, string(reason))
		}()
	})
}
