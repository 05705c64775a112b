package ocpp

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Options configures a Server. Zero durations and sizes take the defaults
// documented on each field.
type Options struct {
	// Path is the URL prefix before the charge point id (default "/ocpp/").
	Path string
	// MaxFrameSize bounds a frame both ways (default 64 KiB): a larger frame
	// from a charge point closes it with 1009, a larger command is refused.
	MaxFrameSize int64
	// FailIfNoSubprotocol refuses clients that offer no subprotocol instead
	// of assuming ocpp1.6.
	FailIfNoSubprotocol bool
	// WriteTimeout is how long a charge point may take to read a frame
	// before it is closed as a slow consumer (default 10s).
	WriteTimeout time.Duration
	// CallTimeout is how long a downstream CALL waits for its answer, and
	// how long the charge point's own calls are remembered (default 30s).
	CallTimeout time.Duration
	// MaxQueue is how many downstream CALLs may wait behind the outstanding
	// one, per charge point (0 means none may wait).
	MaxQueue int
	// MaxPending is how many of the charge point's unanswered calls are
	// remembered to match their answers (default 16).
	MaxPending int
	// OfflineTTL is how long commands for an offline charge point are held
	// for it (0: they fail as offline at once). Held commands are bounded
	// per charge point by MaxQueue, in charge points by MaxOfflineCIDs
	// (default 1,000) and in bytes by MaxOfflineBytes (default 64 MiB).
	OfflineTTL      time.Duration
	MaxOfflineCIDs  int
	MaxOfflineBytes int64
	// HeartbeatInterval × (1 + HeartbeatBackoff) of silence (no frame, ping
	// or pong) closes a charge point (default 60s × 2). The interval follows
	// what the central system tells the charge point. Negative disables.
	HeartbeatInterval time.Duration
	HeartbeatBackoff  int
	// IdleTimeout is the deadline for the first OCPP frame after the
	// upgrade (default 30s; negative disables).
	IdleTimeout time.Duration
	// PingInterval makes the server send WebSocket pings (default off).
	PingInterval time.Duration
	// Validators check payloads, per protocol; none means no checking.
	Validators map[Protocol]Validator
	// Checking returns the checking mode of a charge point and, when an
	// override rule chose it, the rule (logged once per connection). nil
	// checks everything.
	Checking func(cid string) (mode Checking, rule string)
	// Handler receives what happens; required.
	Handler Handler
	// Logger receives the server's logs (default slog.Default()).
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	opts := *o
	if opts.Path == "" {
		opts.Path = "/ocpp/"
	}
	if opts.MaxFrameSize <= 0 {
		opts.MaxFrameSize = 64 << 10
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 16
	}
	if opts.MaxOfflineCIDs <= 0 {
		opts.MaxOfflineCIDs = 1000
	}
	if opts.MaxOfflineBytes <= 0 {
		opts.MaxOfflineBytes = 64 << 20
	}
	if opts.HeartbeatInterval == 0 {
		opts.HeartbeatInterval = 60 * time.Second
	}
	if opts.HeartbeatBackoff < 0 {
		opts.HeartbeatBackoff = 0
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return opts
}

// Handler is told what happens on the gateway's OCPP side. The server calls
// it from connection goroutines and timers, never while holding a lock, and
// in order per charge point; a method must not block.
type Handler interface {
	// Connected: a charge point's connection is ready.
	Connected(s SessionInfo)
	// Disconnected: a connection ended. replaced is true when a new
	// connection with the same id took over, so the charge point is online.
	Disconnected(s SessionInfo, reason Reason, replaced bool)
	// Received: a frame from the charge point that passed the checks.
	Received(s SessionInfo, in Inbound)
	// CommandFailed: a command accepted by Send ended without an answer.
	CommandFailed(cid string, cmd *Command, err *GatewayError)
}

// SessionInfo describes one connection of a charge point.
type SessionInfo struct {
	CID         string    `json:"cid"`
	Protocol    Protocol  `json:"protocol"`
	Remote      string    `json:"remote"`
	ConnectedAt time.Time `json:"connected_at"`
}

// Inbound is a frame from a charge point with what the gateway knows of it.
type Inbound struct {
	Frame
	// Command is the downstream command a CALLRESULT or CALLERROR answers;
	// nil for a CALL, a late answer and an unsolicited one.
	Command *Command
	// Late marks an answer to a command that had already timed out.
	Late bool
	// Unsolicited marks an answer matching no call the gateway knows of.
	Unsolicited bool
	// Violations is the JSON array of schema violations of a CALLRESULT
	// that failed its response schema; it is still published.
	Violations []byte
}

// Command is a frame for a charge point, handed to Server.Send.
type Command struct {
	Frame Frame
	// Ref belongs to the sender; the server hands it back with the answer
	// or the failure (for example an MQTT 5 response topic).
	Ref any
	// raw is Frame encoded once, at Send.
	raw []byte
	// heldUntil is set while the command waits for an offline charge point.
	heldUntil time.Time
}

// Server accepts OCPP-J charge points over WebSocket (it is an
// http.Handler) and keeps, per charge point, the request/response
// discipline: one outstanding downstream CALL, a bounded FIFO behind it,
// answers matched by UniqueId [OCPP-J 1.6 §4.1.1].
//
// Lock order: Server.mu before station.mu; neither is held while calling
// the Handler.
type Server struct {
	opts     Options
	log      *slog.Logger
	stats    counters
	failures schemaFailures
	// heldCIDs and heldBytes bound what is held for offline charge points.
	heldCIDs  atomic.Int64
	heldBytes atomic.Int64

	mu       sync.RWMutex
	stations map[string]*station
	closing  bool
	conns    sync.WaitGroup
}

// NewServer returns a Server; opts.Handler is required.
func NewServer(opts Options) *Server {
	o := opts.withDefaults()
	return &Server{opts: o, log: o.Logger, stations: make(map[string]*station)}
}

// supported lists the subprotocols the server speaks, in its preference.
var supported = []Protocol{OCPP16}

// ServeHTTP performs the handshake and then runs the connection's reader
// until it ends [OCPP-J 1.6 §3].
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cid, why := s.chargePointID(r)
	if why != "" {
		s.refuse(w, http.StatusBadRequest, refusedBadID, why)
		return
	}
	proto, echo, why := s.negotiate(r)
	if why != "" {
		s.refuse(w, http.StatusBadRequest, refusedSubprotocol, why)
		return
	}
	s.mu.RLock()
	closing := s.closing
	s.mu.RUnlock()
	if closing {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	c := newConn(s, cid, proto, r.RemoteAddr)
	var subprotocols []string
	if echo {
		subprotocols = []string{string(proto)}
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: subprotocols,
		// Charge points send arbitrary Origin headers (or none); OCPP has
		// no browser clients to protect, so the origin is not checked.
		InsecureSkipVerify: true,
		// A charge point's pings, and its pongs to ours, are signs of life.
		OnPingReceived: func(context.Context, []byte) bool { c.touch(); return true },
		OnPongReceived: func(context.Context, []byte) { c.touch() },
	})
	if err != nil {
		s.stats.refused(refusedUpgrade)
		s.log.Info("websocket upgrade failed", "cid", cid, "remote", r.RemoteAddr, "error", err)
		return
	}
	ws.SetReadLimit(s.opts.MaxFrameSize)
	c.ws = ws
	if !s.attach(c) {
		ws.Close(websocket.StatusGoingAway, string(ReasonShutdown))
		return
	}
	defer s.conns.Done()
	c.run()
}

// chargePointID takes the id from the escaped path, so that "a%2Fb" is
// refused as containing "/" instead of being cleaned into another path.
func (s *Server) chargePointID(r *http.Request) (string, string) {
	esc := r.URL.EscapedPath()
	if !strings.HasPrefix(esc, s.opts.Path) {
		return "", "path must be " + s.opts.Path + "{chargePointId}"
	}
	cid, err := url.PathUnescape(esc[len(s.opts.Path):])
	switch {
	case err != nil:
		return "", "charge point id is not valid percent-encoding"
	case cid == "":
		return "", "charge point id is empty"
	case strings.ContainsAny(cid, "/+#\x00"):
		return "", "charge point id must not contain '/', '+', '#' or NUL"
	}
	return cid, ""
}

// negotiate picks the first subprotocol the client lists that the server
// speaks. echo is false when the client offered none: RFC 6455 then forbids
// answering with one, and the connection is taken as OCPP 1.6.
func (s *Server) negotiate(r *http.Request) (p Protocol, echo bool, why string) {
	var offered []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, v := range strings.Split(h, ",") {
			if v = strings.TrimSpace(v); v != "" {
				offered = append(offered, v)
			}
		}
	}
	if len(offered) == 0 {
		if s.opts.FailIfNoSubprotocol {
			return "", false, "a subprotocol is required (offer " + string(OCPP16) + ")"
		}
		return OCPP16, false, ""
	}
	for _, o := range offered {
		for _, p := range supported {
			if strings.EqualFold(o, string(p)) {
				return p, true, ""
			}
		}
	}
	return "", false, "no supported subprotocol offered (supported: " + string(OCPP16) + ")"
}

func (s *Server) refuse(w http.ResponseWriter, status int, counter refusal, why string) {
	s.stats.refused(counter)
	http.Error(w, why, status)
}

// acquire returns the station of cid, in the map, with its events lock
// held, so that what the Handler is told about it stays in order.
func (s *Server) acquire(cid string) (*station, bool) {
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return nil, false
		}
		st := s.stationLocked(cid)
		s.mu.Unlock()
		st.events.Lock()
		s.mu.RLock()
		removed := st.removed
		s.mu.RUnlock()
		if !removed {
			return st, true
		}
		st.events.Unlock()
	}
}

// stationLocked returns the station of cid, making it if needed. Caller
// holds s.mu for writing.
func (s *Server) stationLocked(cid string) *station {
	st := s.stations[cid]
	if st == nil {
		st = &station{cid: cid, srv: s}
		s.stations[cid] = st
	}
	return st
}

// forgetIfIdle removes a station that holds nothing any more. Caller holds
// st.events.
func (s *Server) forgetIfIdle(st *station) {
	s.mu.Lock()
	st.mu.Lock()
	if st.idleLocked() && !st.removed {
		st.removed = true
		delete(s.stations, st.cid)
	}
	st.mu.Unlock()
	s.mu.Unlock()
}

// attach makes c the charge point's current connection, replacing any
// previous one, which is closed with 1000 "replaced". Commands held while
// it was offline, and a takeover's outstanding call, go out first. It
// reports false when the server is shutting down.
func (s *Server) attach(c *conn) bool {
	st, ok := s.acquire(c.cid)
	if !ok {
		return false
	}
	defer st.events.Unlock()
	s.conns.Add(1)
	c.st = st
	st.mu.Lock()
	old := st.conn
	st.conn = c
	st.releaseLocked()
	if cmd := st.takeInflightLocked(); cmd != nil {
		// The predecessor never answered: send the call again on the new
		// connection under the same UniqueId, with a fresh timeout, so the
		// charge point can recognise a repeat.
		st.queue = append([]*Command{cmd}, st.queue...)
	}
	st.dispatchLocked()
	st.mu.Unlock()

	s.stats.connected.Add(1)
	c.log.Info("charge point connected", "protocol", c.info.Protocol, "remote", c.info.Remote, "takeover", old != nil)
	s.opts.Handler.Connected(c.info)
	if old != nil {
		old.shut(ReasonReplaced, websocket.StatusNormalClosure)
	}
	return true
}

// detach ends c's part in its charge point's state. With no successor the
// outstanding call and the queue are held for the offline TTL, or fail as
// offline at once.
func (s *Server) detach(c *conn, reason Reason) {
	st := c.st
	st.events.Lock()
	defer st.events.Unlock()
	st.mu.Lock()
	replaced := st.conn != c
	var failed []*Command
	if !replaced {
		st.conn = nil
		cmds := st.queue
		if cmd := st.takeInflightLocked(); cmd != nil {
			cmds = append([]*Command{cmd}, cmds...)
		}
		st.queue = nil
		if s.opts.OfflineTTL > 0 && reason != ReasonShutdown {
			now := time.Now()
			for _, cmd := range cmds {
				if !st.holdLocked(cmd, now) {
					failed = append(failed, cmd)
				}
			}
		} else {
			failed = cmds
		}
	}
	st.mu.Unlock()

	s.stats.connected.Add(-1)
	c.log.Info("charge point disconnected", "reason", reason, "replaced", replaced, "held", !replaced && len(failed) == 0 && st.holding)
	for _, cmd := range failed {
		s.fail(c.cid, cmd, gatewayError(ReasonOffline, "charge point disconnected ("+string(reason)+")"))
	}
	s.opts.Handler.Disconnected(c.info, reason, replaced)
	if !replaced {
		s.forgetIfIdle(st)
	}
}

// Send hands a command to charge point cid without blocking. A CALL joins
// the charge point's queue (or, with an offline TTL, waits for it to
// connect); a CALLRESULT or CALLERROR answering one of the charge point's
// calls goes out at once, ahead of the queue. A non-nil result is the
// refusal, and nothing is sent; otherwise the command ends later in
// exactly one Handler.Received answer or Handler.CommandFailed.
func (s *Server) Send(cid string, cmd *Command) *GatewayError {
	cmd.raw = cmd.Frame.AppendJSON(nil)
	if int64(len(cmd.raw)) > s.opts.MaxFrameSize {
		return &GatewayError{Reason: ReasonTooLarge, Code: GenericError,
			Description: "frame would exceed max_frame_size"}
	}
	s.mu.RLock()
	st := s.stations[cid]
	s.mu.RUnlock()
	p := OCPP16 // the protocol a charge point that is not connected is assumed to speak
	if st != nil {
		p = st.protocol()
	}
	if err := s.checkCommand(cid, p, cmd); err != nil {
		return err
	}
	if cmd.Frame.Type != TypeCall {
		if st == nil {
			return errOffline()
		}
		return st.answer(cmd)
	}
	for {
		created := false
		if st == nil {
			if s.opts.OfflineTTL <= 0 {
				return errOffline()
			}
			s.mu.Lock()
			if s.closing {
				s.mu.Unlock()
				return errOffline()
			}
			created = s.stations[cid] == nil
			st = s.stationLocked(cid)
			s.mu.Unlock()
		}
		err, retry := st.enqueue(cmd)
		if !retry {
			if err != nil && created {
				st.events.Lock()
				s.forgetIfIdle(st) // made for a command it could not hold
				st.events.Unlock()
			}
			return err
		}
		s.mu.RLock()
		st = s.stations[cid]
		s.mu.RUnlock()
	}
}

func (s *Server) fail(cid string, cmd *Command, err *GatewayError) {
	s.opts.Handler.CommandFailed(cid, cmd, err)
}

// Kick closes charge point cid's connection, as an operator would. It
// reports false when the charge point is not connected.
func (s *Server) Kick(cid string) bool {
	s.mu.RLock()
	st := s.stations[cid]
	s.mu.RUnlock()
	if st == nil {
		return false
	}
	st.mu.Lock()
	c := st.conn
	st.mu.Unlock()
	if c == nil {
		return false
	}
	c.shut(ReasonKicked, websocket.StatusPolicyViolation)
	return true
}

// Sessions lists the connected charge points.
func (s *Server) Sessions() []SessionInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]SessionInfo, 0, len(s.stations))
	for _, st := range s.stations {
		st.mu.Lock()
		if st.conn != nil {
			out = append(out, st.conn.info)
		}
		st.mu.Unlock()
	}
	return out
}

// Shutdown closes every charge point with 1001 and waits, until ctx ends,
// for their connections to finish. New connections are refused from the
// start of the call.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	var conns []*conn
	for _, st := range s.stations {
		st.mu.Lock()
		if st.conn != nil {
			conns = append(conns, st.conn)
		}
		st.mu.Unlock()
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.shut(ReasonShutdown, websocket.StatusGoingAway)
	}
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.failHeld()
	return err
}

// failHeld ends the commands held for offline charge points with offline
// when the gateway stops: nothing persists them yet, and an accepted
// command must not vanish without its final message.
func (s *Server) failHeld() {
	s.mu.RLock()
	stations := make([]*station, 0, len(s.stations))
	for _, st := range s.stations {
		stations = append(stations, st)
	}
	s.mu.RUnlock()
	for _, st := range stations {
		st.events.Lock()
		st.mu.Lock()
		var held []*Command
		if st.conn == nil && st.holding {
			held = st.queue
			st.queue = nil
			st.releaseLocked()
		}
		st.mu.Unlock()
		for _, cmd := range held {
			s.fail(st.cid, cmd, gatewayError(ReasonOffline, "gateway shutting down"))
		}
		st.events.Unlock()
	}
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	st := s.stats.snapshot()
	st.SchemaFailures = s.failures.snapshot()
	st.HeldCIDs = s.heldCIDs.Load()
	st.HeldBytes = s.heldBytes.Load()
	return st
}

var _ http.Handler = (*Server)(nil)
