package ocpp

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Options configures a Server. Start from DefaultOptions: it is the one
// place the defaults live, for the binary, for embedders and for the docs.
// A zero duration or size that has no meaning of its own also takes the
// default (documented on each field), so a partly filled Options works.
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
	// one, per charge point (default 100; 0 means none may wait).
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
	// or pong) closes a charge point (defaults 60s and 1: two minutes). The
	// interval follows what the central system tells the charge point.
	// Negative disables.
	HeartbeatInterval time.Duration
	HeartbeatBackoff  int
	// IdleTimeout is the deadline for the first OCPP frame after the
	// upgrade (default 30s; negative disables).
	IdleTimeout time.Duration
	// PingInterval makes the server send WebSocket pings (default off).
	PingInterval time.Duration
	// MaxConnections bounds the charge points connected at once, handshakes
	// in progress included (default 20,000); beyond it a new charge point is
	// answered HTTP 503. A charge point that is already connected may always
	// reconnect (take over its id).
	MaxConnections int
	// MaxHandshakes bounds the WebSocket upgrades in progress at once
	// (default 1,000), so a reconnect storm is answered 503 instead of
	// queueing without end.
	MaxHandshakes int
	// MaxConnectionsPerIP bounds the connections from one remote address
	// (0, the default: no bound; a depot's chargers often share one NAT
	// address). Beyond it: HTTP 503.
	MaxConnectionsPerIP int
	// Validators check payloads, per protocol; none means no checking.
	Validators map[Protocol]Validator
	// Checking returns the checking mode of a charge point and, when an
	// override rule chose it, the rule (logged once per connection). nil
	// checks everything.
	Checking func(cid string) (mode Checking, rule string)
	// Authenticate decides, before the WebSocket upgrade, whether a charge
	// point may connect, from the HTTP Basic credentials it presents (OCPP
	// security profile 1). nil admits every charge point, as when no
	// credentials are configured (the embedder should warn that none is
	// authenticated). It is called once per handshake, after the id and
	// subprotocol checks and before the connection bounds, from the
	// request's goroutine, never after Shutdown has begun (Shutdown waits
	// for the calls under way). It must be safe for concurrent use and
	// should not block for long: a slow one holds the charge point's
	// request, and no handshake slot bounds how many run at once.
	Authenticate func(a AuthRequest) AuthResult
	// FrameHistory is how many of each charge point's last frames are
	// kept, both ways together, for Server.Frames (default 16; negative
	// keeps none). FrameHistoryBytes bounds all histories together, the
	// oldest record of all dropped first (default 32 MiB).
	FrameHistory      int
	FrameHistoryBytes int64
	// OnFrame, when set, is told every frame to and from a charge point
	// (for metrics, an event stream or a frame log). It is called on the
	// connection's goroutines, in order per direction, without the
	// server's locks held; it must not block. f.Payload is empty: payload
	// (already cut) is the caller's buffer, valid only during the call, so
	// a consumer that does not need it costs no copy.
	OnFrame func(cid string, f FrameRecord, payload []byte)
	// Handler receives what happens; required.
	Handler Handler
	// Logger receives the server's logs (default slog.Default()).
	Logger *slog.Logger
}

// DefaultOptions returns the gateway's defaults, as docs/configuration.md
// lists them (a test holds the two equal).
func DefaultOptions() Options {
	return Options{
		Path:              "/ocpp/",
		MaxFrameSize:      64 << 10,
		WriteTimeout:      10 * time.Second,
		CallTimeout:       30 * time.Second,
		MaxQueue:          100,
		MaxPending:        16,
		MaxOfflineCIDs:    1000,
		MaxOfflineBytes:   64 << 20,
		HeartbeatInterval: 60 * time.Second,
		HeartbeatBackoff:  1,
		IdleTimeout:       30 * time.Second,
		MaxConnections:    20000,
		MaxHandshakes:     1000,
		FrameHistory:      16,
		FrameHistoryBytes: 32 << 20,
	}
}

// withDefaults fills the zero fields whose zero has no meaning of its own
// from DefaultOptions.
func (o *Options) withDefaults() Options {
	opts, def := *o, DefaultOptions()
	if opts.Path == "" {
		opts.Path = def.Path
	}
	if opts.MaxFrameSize <= 0 {
		opts.MaxFrameSize = def.MaxFrameSize
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = def.WriteTimeout
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = def.CallTimeout
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = def.MaxPending
	}
	if opts.MaxOfflineCIDs <= 0 {
		opts.MaxOfflineCIDs = def.MaxOfflineCIDs
	}
	if opts.MaxOfflineBytes <= 0 {
		opts.MaxOfflineBytes = def.MaxOfflineBytes
	}
	if opts.HeartbeatInterval == 0 {
		opts.HeartbeatInterval = def.HeartbeatInterval
	}
	if opts.HeartbeatBackoff < 0 {
		opts.HeartbeatBackoff = 0
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = def.IdleTimeout
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = def.MaxConnections
	}
	if opts.MaxHandshakes <= 0 {
		opts.MaxHandshakes = def.MaxHandshakes
	}
	if opts.FrameHistory == 0 {
		opts.FrameHistory = def.FrameHistory
	}
	if opts.FrameHistoryBytes <= 0 {
		opts.FrameHistoryBytes = def.FrameHistoryBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return opts
}

// Handler is told what happens on the gateway's OCPP side. The server calls
// it from connection goroutines and timers, in order per charge point, and
// never while holding the server's or a station's state lock (so a method
// may call Send or Kick). What concerns one charge point's connections,
// command timeouts and answers is serialised by that charge point's events
// lock, which is held during the call: that is what keeps its presence in
// order and a timeout error ahead of the late answer. A method must not
// block.
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

// SessionInfo describes one connection of a charge point. It is fixed for
// the connection's life.
type SessionInfo struct {
	CID         string    `json:"cid"`
	Protocol    Protocol  `json:"protocol"`
	Remote      string    `json:"remote"`
	ConnectedAt time.Time `json:"connected_at"`
	// Username is the user Options.Authenticate admitted the charge point
	// as, so that RevokeWhere can find the connections of a user whose
	// credentials changed. Empty when Authenticate is nil (a name nobody
	// checked is not recorded) or admitted it without credentials.
	Username string `json:"username,omitempty"`
	// SecurityProfile is the OCPP security profile the connection met: 1
	// (plain), 2 (TLS) or 3 (TLS with a verified client certificate).
	SecurityProfile int `json:"security_profile"`
}

// Inbound is a frame from a charge point with what the gateway knows of it.
type Inbound struct {
	Frame
	// Command is the downstream command a CALLRESULT or CALLERROR answers;
	// nil for a CALL, a late answer and an unsolicited one.
	Command *Command
	// RoundTrip is, for the answer to a command, the time from Send
	// accepting the command to its answer arriving.
	RoundTrip time.Duration
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
	// CheckedAs, when not empty, says the CALL's payload was checked while
	// it was decoded, against the schemas of that protocol (the one
	// CommandValidator named), and PayloadRefusal is the verdict. Send
	// uses it instead of checking the payload again while the charge
	// point speaks that protocol.
	CheckedAs      Protocol
	PayloadRefusal *CallError
	// raw is Frame encoded once, at Send.
	raw []byte
	// heldUntil is set while the command waits for an offline charge point.
	heldUntil time.Time
	// accepted is when Send took the command, for Inbound.RoundTrip.
	accepted time.Time
}

// Server accepts OCPP-J charge points over WebSocket (it is an
// http.Handler) and keeps, per charge point, the request/response
// discipline: one outstanding downstream CALL, a bounded FIFO behind it,
// answers matched by UniqueId [OCPP-J 1.6 §4.1.1].
//
// Lock order (docs/architecture.md): station.events, then Server.mu, then
// station.mu. Only events may be held while calling the Handler.
type Server struct {
	opts     Options
	log      *slog.Logger
	stats    counters
	failures schemaFailures
	// heldCIDs and heldBytes bound what is held for offline charge points.
	heldCIDs  atomic.Int64
	heldBytes atomic.Int64
	// handshakes counts upgrades in progress (MaxHandshakes).
	handshakes atomic.Int64
	perIP      perIPCounter

	// gate admits connections and timer callbacks until Shutdown, which
	// waits for them.
	gate gate

	mu       sync.RWMutex
	stations map[string]*station
	// live is every connection between its upgrade and the end of its
	// run, including replaced ones still closing and those still proving
	// their certificate's serial, so Shutdown and Close reach them all.
	live map[*conn]struct{}
	// frames pools the buffers readers read frames into.
	frames sync.Pool
	// revoked remembers the last revocations for the handshakes they
	// overlapped (auth.go); written under mu.
	revoked revocations
	// blocked holds the ids whose reconnects are refused after a Kick
	// with a block, until when; guarded by mu.
	blocked map[string]time.Time
	// history keeps every charge point's last frames; nil when off.
	history *history
}

// NewServer returns a Server; opts.Handler is required.
func NewServer(opts Options) *Server {
	o := opts.withDefaults()
	return &Server{opts: o, log: o.Logger, stations: make(map[string]*station), live: make(map[*conn]struct{}),
		history: newHistory(o.FrameHistory, o.FrameHistoryBytes)}
}

// supported lists the subprotocols the server speaks, in its preference.
var supported = []Protocol{OCPP16}

// ServeHTTP performs the handshake [OCPP-J 1.6 §3] within the connection
// bounds, attaches the charge point and starts the connection's reader,
// which the server's gate accounts for until it ends.
//
// The checks run cheapest and least privileged first: the id and the
// subprotocol (400, no state touched); the gate (503 once Shutdown began,
// so Authenticate is never called after it); the credentials (401, or 429
// in a failed-login back-off); only then the connection bounds, which take
// a handshake slot and a slot of the remote address (503). Authenticating
// before the bounds keeps a flood of unauthenticated requests from taking
// the handshake and per-address slots that charge points with valid
// credentials need, and tells a client without credentials nothing about
// the gateway's load.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cid, why := s.chargePointID(r)
	if why != "" {
		s.refuse(w, r, http.StatusBadRequest, refusedBadID, why)
		return
	}
	proto, echo, why := s.negotiate(r)
	if why != "" {
		s.refuse(w, r, http.StatusBadRequest, refusedSubprotocol, why)
		return
	}
	if until, ok := s.blockedUntil(cid); ok {
		w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(time.Until(until)), 10))
		s.refuse(w, r, http.StatusForbidden, refusedKicked, "kicked by an operator; reconnects refused until "+until.UTC().Format(time.RFC3339))
		return
	}
	if !s.gate.enter() {
		s.refuse(w, r, http.StatusServiceUnavailable, refusedShutdown, "shutting down")
		return
	}
	ip := remoteHost(r.RemoteAddr)
	// admitted: admit took ip's slot. served: the reader goroutine gives
	// back the gate ticket and ip's slot. Deferred, so that a panicking
	// Authenticate cannot keep Shutdown waiting for the ticket.
	admitted, served := false, false
	defer func() {
		if served {
			return
		}
		if admitted {
			s.perIP.remove(ip, s.opts.MaxConnectionsPerIP)
		}
		s.gate.leave()
	}()
	// Read before Authenticate: a revocation from here on may have been
	// missed by the credentials check, and is applied once c is attached.
	revocationsBefore := s.revoked.count.Load()
	profile, cert := securityProfile(r.TLS)
	username, auth := s.authenticate(w, r, cid, ip, profile, cert)
	if !auth.OK {
		return
	}
	if counter, why := s.admit(cid, ip); why != "" {
		w.Header().Set("Retry-After", "10")
		s.refuse(w, r, http.StatusServiceUnavailable, counter, why)
		return
	}
	admitted = true
	c := newConn(s, cid, proto, r.RemoteAddr)
	c.info.Username = username
	c.info.SecurityProfile = profile
	c.bootSerial = auth.BootSerial
	c.revocationsBefore = revocationsBefore
	var subprotocols []string
	if echo {
		subprotocols = []string{string(proto)}
	}
	ws, err := websocket.Accept(smallBuffers{w, c}, r, &websocket.AcceptOptions{
		Subprotocols: subprotocols,
		// Charge points send arbitrary Origin headers (or none); OCPP has
		// no browser clients to protect, so the origin is not checked.
		InsecureSkipVerify: true,
		// A charge point's pings, and its pongs to ours, are signs of life.
		OnPingReceived: func(context.Context, []byte) bool { c.touch(); return true },
		OnPongReceived: func(context.Context, []byte) { c.touch() },
	})
	if err != nil {
		s.handshakes.Add(-1)
		s.stats.refused(refusedUpgrade)
		s.log.Info("websocket upgrade failed", "cid", cid, "remote", r.RemoteAddr, "error", err)
		return
	}
	ws.SetReadLimit(s.opts.MaxFrameSize)
	c.ws = ws
	s.stats.accepted.Add(1)
	if c.bootSerial == "" {
		s.attach(c) // counts it as connected before the handshake slot is given back
		s.handshakes.Add(-1)
	} else {
		s.awaitProof(c) // keeps the handshake slot until proven
	}
	// The reader gets a goroutine of its own and net/http's returns: the
	// handshake grew that one's stack to 16 KiB, which an idle charge
	// point would otherwise keep for its whole connection.
	served = true
	go c.run(func() {
		s.mu.Lock()
		delete(s.live, c)
		s.mu.Unlock()
		s.perIP.remove(ip, s.opts.MaxConnectionsPerIP)
		s.gate.leave()
	})
	if c.bootSerial == "" && s.revokedSince(revocationsBefore, c.info) {
		c.shut(ReasonAuthRevoked, websocket.StatusPolicyViolation)
	}
}

// frameBuffer returns an empty buffer to read a frame into.
func (s *Server) frameBuffer() *bytes.Buffer {
	if b, ok := s.frames.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

// recycle gives a frame buffer back, unless a large frame grew it: the
// pool should not keep max_frame_size buffers around for small frames.
func (s *Server) recycle(b *bytes.Buffer) {
	if b.Cap() > 4<<10 {
		return
	}
	b.Reset()
	s.frames.Put(b)
}

// smallBuffers hands coder/websocket smaller buffers than net/http's
// 4 KiB reader and writer, which it would keep for the connection's life:
// OCPP frames are small, and 6 KiB per idle charge point adds up at
// 20,000 of them. Bytes net/http has already read past the request stay
// in front of the new reader.
type smallBuffers struct {
	http.ResponseWriter
	c *conn // gets the socket, for Server.Close
}

const connBufferSize = 1 << 10

// Hijack implements http.Hijacker.
func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.c.raw = nc
	pending := brw.Reader.Buffered()
	if pending > connBufferSize {
		return nc, brw, nil // a client in a hurry: keep what net/http read
	}
	var src io.Reader = nc
	if pending > 0 {
		early, _ := brw.Reader.Peek(pending)
		src = io.MultiReader(bytes.NewReader(bytes.Clone(early)), nc)
	}
	r := bufio.NewReaderSize(src, connBufferSize)
	if pending > 0 {
		r.Peek(pending) // into the buffer, where coder/websocket looks for them; no read of nc
	}
	return nc, bufio.NewReadWriter(r, bufio.NewWriterSize(nc, connBufferSize)), nil
}

// admit applies the connection bounds before the upgrade and, when they
// allow it, takes a handshake slot (given back once the connection is
// attached or the upgrade failed) and a slot of ip's (given back by the
// caller when the request ends).
func (s *Server) admit(cid, ip string) (refusal, string) {
	if n := s.handshakes.Add(1); n > int64(s.opts.MaxHandshakes) {
		s.handshakes.Add(-1)
		return refusedHandshakes, "too many handshakes in progress (ocpp.max_handshakes); retry later"
	}
	if s.stats.connected.Load()+s.handshakes.Load() > int64(s.opts.MaxConnections) && !s.isConnected(cid) {
		s.handshakes.Add(-1)
		return refusedMaxConnections, "connection limit reached (ocpp.max_connections); retry later"
	}
	if !s.perIP.add(ip, s.opts.MaxConnectionsPerIP) {
		s.handshakes.Add(-1)
		return refusedPerIP, "too many connections from this address (ocpp.max_connections_per_ip)"
	}
	return 0, ""
}

// isConnected reports whether charge point cid has a connection now.
func (s *Server) isConnected(cid string) bool { return s.current(cid) != nil }

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

// refuse answers a handshake with an HTTP error and counts it. Refusals
// of each kind are logged at INFO for the first few, then one in
// refusedLogEvery with the running count, so a reconnect storm or a
// scanner cannot flood the log. why is both logged and sent to the
// client; attrs are logged only. Neither may hold a secret: no request
// header is logged.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, counter refusal, why string, attrs ...any) {
	n := s.stats.refused(counter)
	level := slog.LevelDebug
	if n <= refusedLogFirst || n%refusedLogEvery == 0 {
		level = slog.LevelInfo
	}
	args := append([]any{"reason", refusalNames[counter], "status", status,
		"remote", r.RemoteAddr, "path", r.URL.EscapedPath(), "error", why}, attrs...)
	s.log.Log(r.Context(), level, "handshake refused", append(args, "refused_so_far", n)...)
	http.Error(w, why, status)
}

// acquire returns the station of cid, in the map, with its events lock
// held, so that what the Handler is told about it stays in order.
func (s *Server) acquire(cid string) *station {
	for {
		s.mu.Lock()
		st := s.stationLocked(cid)
		s.mu.Unlock()
		st.events.Lock()
		s.mu.RLock()
		removed := st.removed
		s.mu.RUnlock()
		if !removed {
			return st
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
// it was offline, and a takeover's outstanding call, go out first. The
// caller holds a gate ticket; when Shutdown began meanwhile, c is shut at
// once (its run still goes through the usual end).
func (s *Server) attach(c *conn) {
	st := s.acquire(c.cid)
	defer st.events.Unlock()
	c.st = st
	s.mu.Lock()
	s.live[c] = struct{}{}
	s.mu.Unlock()
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
	args := []any{"protocol", c.info.Protocol, "remote", c.info.Remote, "takeover", old != nil}
	if c.info.Username != "" {
		args = append(args, "username", c.info.Username)
	}
	c.log.Info("charge point connected", args...)
	s.opts.Handler.Connected(c.info)
	if old != nil {
		old.log.Warn("charge point replaced by a new connection", "remote", old.info.Remote, "new_remote", c.info.Remote)
		old.shut(ReasonReplaced, websocket.StatusNormalClosure)
	}
	// Shutdown closes the gate, then shuts every station's connection. c
	// was installed above, before this check: either Shutdown saw it, or
	// this sees the closed gate (both use locks, so one must).
	if s.gate.isClosed() {
		c.shut(ReasonShutdown, websocket.StatusGoingAway)
	}
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
		// Nothing is held once Shutdown began: nobody would send it.
		if s.opts.OfflineTTL > 0 && reason != ReasonShutdown && !s.gate.isClosed() {
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
	held := !replaced && st.holding
	st.mu.Unlock()

	s.stats.connected.Add(-1)
	s.stats.disconnected(reason)
	c.log.Info("charge point disconnected", "reason", reason, "replaced", replaced, "held", held)
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
	cmd.accepted = time.Now()
	cmd.raw = cmd.Frame.AppendJSON(nil)
	if int64(len(cmd.raw)) > s.opts.MaxFrameSize {
		return &GatewayError{Reason: ReasonTooLarge, Code: GenericError,
			Description: "frame would exceed max_frame_size"}
	}
	st, p := s.commandTarget(cid)
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
			if s.gate.isClosed() {
				return errOffline()
			}
			s.mu.Lock()
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

// commandTarget returns charge point cid's station (nil when it has
// none) and the protocol a command for it is checked against.
func (s *Server) commandTarget(cid string) (*station, Protocol) {
	s.mu.RLock()
	st := s.stations[cid]
	s.mu.RUnlock()
	if st == nil {
		return nil, OCPP16 // the protocol a charge point that is not connected is assumed to speak
	}
	return st, st.protocol()
}

// CommandValidator returns what a CALL for charge point cid sent now is
// checked with, so that its decoder can check the payload while it reads
// it (Command.CheckedAs): the validator of the protocol cid speaks, nil
// when its commands are not checked or the validator cannot scan.
func (s *Server) CommandValidator(cid string) (ScanValidator, Protocol) {
	_, p := s.commandTarget(cid)
	v, mode, _ := s.validator(cid, p)
	sv, _ := v.(ScanValidator)
	if mode&CheckDownstream == 0 || sv == nil {
		return nil, p
	}
	return sv, p
}

func (s *Server) fail(cid string, cmd *Command, err *GatewayError) {
	s.opts.Handler.CommandFailed(cid, cmd, err)
}

// current returns charge point cid's connection, or nil.
func (s *Server) current(cid string) *conn {
	s.mu.RLock()
	st := s.stations[cid]
	s.mu.RUnlock()
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.conn
}

// connections returns every charge point's current connection, taken
// under the locks and handed back without them, so that the caller may
// close them (or call out) without holding any.
func (s *Server) connections() []*conn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	conns := make([]*conn, 0, len(s.stations))
	for _, st := range s.stations {
		st.mu.Lock()
		if st.conn != nil {
			conns = append(conns, st.conn)
		}
		st.mu.Unlock()
	}
	return conns
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
// for their connections to end and for timer callbacks under way. New
// connections are refused (HTTP 503) and timers do nothing from the start
// of the call. Commands held for offline charge points then get offline.
// When ctx ends first, Shutdown returns ctx.Err() and Close must force
// what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.gate.close()
	for _, c := range s.liveConns() {
		c.shut(ReasonShutdown, websocket.StatusGoingAway)
	}
	err := s.gate.wait(ctx)
	s.failHeld()
	return err
}

// Close drops every connection that is still open without a close
// handshake, for when Shutdown ran out of time, and waits until ctx ends
// for them to finish. It returns how many it dropped.
func (s *Server) Close(ctx context.Context) (int, error) {
	s.gate.close()
	conns := s.liveConns()
	for _, c := range conns {
		c.shut(ReasonShutdown, websocket.StatusGoingAway)
		c.raw.Close()
	}
	err := s.gate.wait(ctx)
	s.failHeld()
	return len(conns), err
}

// liveConns returns every connection between its upgrade and the end of
// its run: current, replaced ones still closing, and those still proving
// their certificate's serial.
func (s *Server) liveConns() []*conn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	conns := make([]*conn, 0, len(s.live))
	for c := range s.live {
		conns = append(conns, c)
	}
	return conns
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
	if s.history != nil {
		st.HistoryBytes, st.HistoryFrames = s.history.size()
	}
	s.mu.RLock()
	for _, station := range s.stations {
		station.mu.Lock()
		st.Queued += int64(len(station.queue))
		if station.inflight != nil {
			st.Outstanding++
		}
		station.mu.Unlock()
	}
	s.mu.RUnlock()
	return st
}

var _ http.Handler = (*Server)(nil)
