package sim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// maxPending is how many unanswered calls a charge point remembers to match answers when it
// does not wait for them (without a responder), as the gateway remembers 16 by default. The
// oldest is forgotten first; an answer to it then counts as late.
const maxPending = 16

// readLimit bounds a frame from the gateway; answers and commands are small.
const readLimit = 1 << 20

// pendingCall is a call sent and not yet answered.
type pendingCall struct {
	uid    string
	action string
	sent   time.Time
}

// chargePoint is one simulated charge point: a sender goroutine that dials, calls on schedule
// and closes, and a reader goroutine that matches answers and answers commands. The two share
// the fields under mu.
type chargePoint struct {
	r   *runner
	idx int
	cid string

	conn  *websocket.Conn // set before the reader starts
	alive atomic.Bool     // connected, not yet closing: a target for commands
	// closing is set before the simulator closes the connection, so the reader's error then
	// is not counted as a drop.
	closing atomic.Bool
	// wake tells the sender that the reader changed something (an answer, an interval).
	wake chan struct{}

	mu          sync.Mutex
	pending     []pendingCall
	booted      bool          // a BootNotification was Accepted
	bootRetryAt time.Time     // when to send BootNotification (zero: not scheduled)
	heartbeat   time.Duration // interval of heartbeats when quiet (0: none)
}

func newChargePoint(r *runner, idx int, cid string) *chargePoint {
	return &chargePoint{r: r, idx: idx, cid: cid, wake: make(chan struct{}, 1)}
}

func (cp *chargePoint) url() string { return cp.r.baseURL + "/" + url.PathEscape(cp.cid) }

// authHeader is the charge point's Basic credentials, or nil without any.
func (cp *chargePoint) authHeader() http.Header {
	o := &cp.r.opts
	if o.Username == "" && o.Password == "" {
		return nil
	}
	user := strings.ReplaceAll(o.Username, "{cid}", cp.cid)
	if user == "" {
		user = cp.cid
	}
	pass := strings.ReplaceAll(o.Password, "{cid}", cp.cid)
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
}

// poke wakes the sender without blocking.
func (cp *chargePoint) poke() {
	select {
	case cp.wake <- struct{}{}:
	default:
	}
}

// dial opens the charge point's WebSocket, within Timeout, and counts a failure by cause. A
// client certificate that cannot be loaded fails it before anything is dialled.
func (cp *chargePoint) dial(ctx context.Context) (*websocket.Conn, error) {
	r := cp.r
	client, done, err := r.httpClient(cp.cid)
	if err != nil {
		r.m.failReasons.add(errorClass(err))
		r.m.warn("%s: %v", cp.cid, err) // the class has no path: say which file
		return nil, err
	}
	defer done()
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, cp.url(), &websocket.DialOptions{
		HTTPClient:   client,
		Subprotocols: []string{"ocpp1.6"},
		HTTPHeader:   cp.authHeader(),
	})
	if err != nil {
		r.m.failReasons.add(dialFailure(err, resp))
		return nil, err
	}
	if conn.Subprotocol() != "ocpp1.6" {
		conn.CloseNow()
		err := fmt.Errorf("server chose subprotocol %q, not ocpp1.6", conn.Subprotocol())
		r.m.failReasons.add("subprotocol")
		return nil, err
	}
	r.m.connectLat.Record(time.Since(start))
	conn.SetReadLimit(readLimit)
	return conn, nil
}

// dialFailure names the cause of a failed dial for the report: the HTTP status when the
// gateway refused the handshake (400 for a bad id, 404 for a wrong path), else errorClass.
func dialFailure(err error, resp *http.Response) string {
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		return "HTTP " + resp.Status
	}
	return errorClass(err)
}

// errorClass reduces an error to a short cause that many connections share (the addresses in
// a net.OpError, the URL in a url.Error or the paths of a client certificate would make every
// one different).
func errorClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free source port (EADDRNOTAVAIL)"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	}
	var certErr *certError
	if errors.As(err, &certErr) {
		return certErr.class()
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
		// Its Detail has the current time, which would make every failure a cause of its own.
		return "tls: failed to verify certificate: x509: certificate has expired or is not yet valid"
	}
	var verify *tls.CertificateVerificationError
	if errors.As(err, &verify) {
		return verify.Error() // "tls: failed to verify certificate: x509: …", no address in it
	}
	if s := websocket.CloseStatus(err); s != -1 {
		var ce websocket.CloseError
		errors.As(err, &ce)
		return strconv.Itoa(int(s)) + " " + ce.Reason
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Op + ": " + oe.Err.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return errorClass(ue.Err) // without the URL, which names the charge point
	}
	return err.Error()
}

// dialAndRun is a ramp charge point's whole life.
func (cp *chargePoint) dialAndRun(ctx context.Context) {
	conn, err := cp.dial(ctx)
	cp.r.dialed.Done()
	if err != nil {
		cp.r.m.failed.Add(1)
		cp.r.wg.Done()
		return
	}
	cp.run(ctx, conn)
}

// run drives a connected charge point: it starts the reader, calls until sending stops, waits
// for its last answer, then for the run to let it close (commands in flight still need it),
// and closes with 1000. It is counted in r.wg by its starter.
func (cp *chargePoint) run(ctx context.Context, conn *websocket.Conn) {
	r := cp.r
	defer r.wg.Done()
	cp.conn = conn
	r.m.connected.Add(1)
	cp.alive.Store(true)

	// The reader gets its own context: cancelling a Read closes the connection at once, and
	// even an interrupted run closes its charge points with a close frame.
	readCtx, cancelRead := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRead()
	readerDone := make(chan struct{})
	var readErr error
	go func() {
		defer close(readerDone)
		readErr = cp.read(readCtx)
	}()

	cp.send(ctx, readerDone)

	select {
	case <-r.closeCPs:
	case <-readerDone:
	}
	cp.alive.Store(false)
	select {
	case <-readerDone: // the gateway ended it
	default:
		cp.closing.Store(true)
		_ = conn.Close(websocket.StatusNormalClosure, "simulation finished")
		<-readerDone
		r.m.closed.Add(1)
		return
	}
	r.m.dropped.Add(1)
	r.m.dropReasons.add(errorClass(readErr))
}

// sendState is the sender's own state between events.
type sendState struct {
	calls    *pacer // the scheduled calls (nil: idle, only BootNotification and heartbeats)
	joined   bool   // calls has skipped the slots before the charge point could call
	lastSent time.Time
	seq      uint64
}

// farAway stands for "no event scheduled": stopSend or wake come first.
const farAway = time.Hour

// send is the sender loop: it sends what is due (at most one call at a time when waiting for
// answers) and sleeps until the next event, an answer, or the end of sending. A charge point
// first sends BootNotification; while waiting for answers it calls on schedule only once
// accepted, and then heartbeats whenever it has sent nothing for the interval the answer gave.
func (cp *chargePoint) send(ctx context.Context, gone <-chan struct{}) {
	r := cp.r
	st := sendState{}
	if r.opts.CallRate > 0 {
		st.calls = chargePointPacer(r.t0, cp.idx, r.opts.Count, r.opts.CallRate)
	}
	cp.mu.Lock()
	cp.bootRetryAt = time.Now()
	cp.mu.Unlock()

	timer := time.NewTimer(farAway)
	defer timer.Stop()
	for {
		next := cp.step(ctx, time.Now(), &st)
		if next.IsZero() {
			continue // it sent: look again at once
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-r.stopSend:
			cp.drain(ctx, gone)
			return
		case <-gone:
			return
		case <-cp.wake:
		case <-timer.C:
		}
	}
}

// step sends the one call due at now, if any, and returns when the next event is due, or the
// zero time when it sent (the caller steps again).
func (cp *chargePoint) step(ctx context.Context, now time.Time, st *sendState) time.Time {
	r := cp.r
	cp.mu.Lock()
	cp.expire(now)
	waiting := r.wait && len(cp.pending) > 0
	if st.calls != nil && !st.joined && (cp.booted || !r.wait) {
		st.calls.skipTo(now)
		st.joined = true
	}
	if st.joined && waiting {
		// A slot may wait for the answer to the previous call up to catchUp, then it is lost.
		r.m.up.skipped.Add(st.calls.dropBefore(now.Add(-catchUp)))
	}
	action := ""
	switch {
	case !cp.booted && !cp.bootRetryAt.IsZero() && !now.Before(cp.bootRetryAt) && !waiting:
		action = ActionBootNotification
		cp.bootRetryAt = time.Time{} // set again by the answer, or by the time-out
	case st.joined && !waiting && !now.Before(st.calls.due()):
		r.m.up.skipped.Add(st.calls.take(now, catchUp))
		action = r.action
	case cp.booted && cp.heartbeat > 0 && !waiting && !now.Before(st.lastSent.Add(cp.heartbeat)):
		action = ActionHeartbeat
	}
	if action == "" {
		next := now.Add(farAway)
		earlier := func(t time.Time) {
			if !t.IsZero() && t.Before(next) {
				next = t
			}
		}
		if waiting {
			earlier(cp.pending[0].sent.Add(r.opts.Timeout))
		} else {
			if !cp.booted {
				earlier(cp.bootRetryAt)
			} else if cp.heartbeat > 0 {
				earlier(st.lastSent.Add(cp.heartbeat))
			}
		}
		if st.joined && waiting {
			earlier(st.calls.due().Add(catchUp)) // when it would be lost
		} else if st.joined {
			earlier(st.calls.due())
		}
		cp.mu.Unlock()
		return next
	}

	st.seq++
	uid := strconv.FormatUint(st.seq, 10)
	var payload []byte
	if action == r.action && r.padded != nil {
		payload = r.padded
	} else {
		payload = callPayload(action, cp.cid, st.seq, now)
	}
	if len(cp.pending) == maxPending { // not waiting: forget the oldest
		cp.pending = append(cp.pending[:0], cp.pending[1:]...)
	}
	cp.pending = append(cp.pending, pendingCall{uid: uid, action: action, sent: now})
	cp.mu.Unlock()

	st.lastSent = now
	// Not ctx itself: a cancelled Write closes the connection, and even an interrupted run
	// closes its charge points with a close frame.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.Timeout)
	err := cp.conn.Write(wctx, websocket.MessageText, callFrame(uid, action, payload))
	cancel()
	if err != nil {
		cp.mu.Lock()
		cp.take(uid)
		cp.mu.Unlock()
		r.m.up.sendFailed.Add(1)
		// The reader sees the connection end; wait for it rather than spin on a dead socket.
		return now.Add(farAway)
	}
	r.m.up.sent.Add(1)
	r.m.up.byAction.add(action)
	return time.Time{}
}

// expire times out the calls waited for longer than Timeout (only when waiting: otherwise
// calls are not waited for). A timed-out BootNotification is sent again at once. cp.mu held.
func (cp *chargePoint) expire(now time.Time) {
	r := cp.r
	if !r.wait {
		return
	}
	for len(cp.pending) > 0 && !now.Before(cp.pending[0].sent.Add(r.opts.Timeout)) {
		pc := cp.pending[0]
		cp.pending = append(cp.pending[:0], cp.pending[1:]...)
		r.m.up.timedOut.Add(1)
		if pc.action == ActionBootNotification && !cp.booted {
			cp.bootRetryAt = now
		}
	}
}

// take removes and returns the pending call uid. cp.mu held.
func (cp *chargePoint) take(uid string) (pendingCall, bool) {
	for i, pc := range cp.pending {
		if pc.uid == uid {
			cp.pending = append(cp.pending[:i], cp.pending[i+1:]...)
			return pc, true
		}
	}
	return pendingCall{}, false
}

// drain waits, when waiting for answers, until the last call is answered or times out.
func (cp *chargePoint) drain(ctx context.Context, gone <-chan struct{}) {
	r := cp.r
	if !r.wait {
		return
	}
	timer := time.NewTimer(farAway)
	defer timer.Stop()
	for {
		cp.mu.Lock()
		cp.expire(time.Now())
		if len(cp.pending) == 0 {
			cp.mu.Unlock()
			return
		}
		deadline := cp.pending[0].sent.Add(r.opts.Timeout)
		cp.mu.Unlock()
		timer.Reset(time.Until(deadline))
		select {
		case <-ctx.Done():
			return
		case <-gone:
			return
		case <-cp.wake:
		case <-timer.C:
		}
	}
}

// read reads frames until the connection ends and returns why it ended.
func (cp *chargePoint) read(ctx context.Context) error {
	for {
		typ, data, err := cp.conn.Read(ctx)
		if err != nil {
			return err
		}
		if typ == websocket.MessageText {
			cp.handle(ctx, data, time.Now())
		}
	}
}

// handle handles one frame from the gateway: an answer to one of the charge point's calls, or
// a command to answer.
func (cp *chargePoint) handle(ctx context.Context, data []byte, now time.Time) {
	r := cp.r
	var f []json.RawMessage
	var typ int
	var uid string
	if json.Unmarshal(data, &f) != nil || len(f) < 3 || json.Unmarshal(f[0], &typ) != nil || json.Unmarshal(f[1], &uid) != nil {
		r.m.up.codes.add("unreadable frame from the gateway")
		return
	}
	switch typ {
	case 2:
		var action string
		_ = json.Unmarshal(f[2], &action)
		cp.answerCommand(ctx, uid, action, f)
	case 3, 4:
		cp.mu.Lock()
		pc, ok := cp.take(uid)
		cp.mu.Unlock()
		if !ok {
			r.m.up.late.Add(1)
			return
		}
		if typ == 3 {
			r.m.up.answered.Add(1)
			r.m.up.lat.Record(now.Sub(pc.sent))
		} else {
			r.m.up.errors.Add(1)
			var code string
			_ = json.Unmarshal(f[2], &code)
			r.m.up.codes.add(code)
		}
		if pc.action == ActionBootNotification {
			cp.booted1(typ == 3, f[2], now)
		}
		cp.poke()
	}
}

// booted1 applies the answer to a BootNotification: Accepted starts heartbeats at its
// interval; anything else schedules the next attempt after the interval given (or Timeout).
func (cp *chargePoint) booted1(result bool, payload json.RawMessage, now time.Time) {
	accepted, interval := false, time.Duration(0)
	if result {
		accepted, interval = bootResult(payload)
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.booted {
		return
	}
	if accepted {
		cp.booted, cp.heartbeat = true, interval
		return
	}
	if interval <= 0 {
		interval = cp.r.opts.Timeout
	}
	cp.bootRetryAt = now.Add(interval)
}

// answerCommand answers a command from the central system at once (commandAnswer), following
// an accepted change of HeartbeatInterval as the gateway does.
func (cp *chargePoint) answerCommand(ctx context.Context, uid, action string, f []json.RawMessage) {
	r := cp.r
	if action == "ChangeConfiguration" && len(f) > 3 {
		if iv, ok := heartbeatIntervalSetting(f[3]); ok {
			cp.mu.Lock()
			cp.heartbeat = iv
			cp.mu.Unlock()
			cp.poke()
		}
	}
	wctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	if err := cp.conn.Write(wctx, websocket.MessageText, commandAnswer(uid, action)); err == nil {
		r.m.commandsAnswered.Add(1)
	}
}
