package ocpp

import "sync/atomic"

// Counters the server keeps itself: mochi's $SYS counts only network
// clients, and charge points are virtual ones.
type inCounter int

const (
	inCall inCounter = iota
	inCallResult
	inCallError
	inMalformed
	inBinary
	inTooLarge
	inLate
	inUnsolicited
	inPendingEvicted
	inConcurrentCall
	inInvalid
	inBeforeBoot
	numIn
)

var inNames = [numIn]string{"call", "callresult", "callerror", "malformed", "binary", "too_large", "late",
	"unsolicited", "pending_evicted", "concurrent_call", "schema_invalid", "before_boot"}

type refusal int

const (
	refusedBadID refusal = iota
	refusedSubprotocol
	refusedUpgrade
	refusedShutdown
	refusedMaxConnections
	refusedHandshakes
	refusedPerIP
	refusedUnauthorized
	refusedAuthBackoff
	refusedForbidden
	refusedSerialMismatch
	refusedKicked
	numRefusals
)

var refusalNames = [numRefusals]string{"bad_id", "bad_subprotocol", "upgrade_failed", "shutting_down",
	"max_connections", "max_handshakes", "max_connections_per_ip", "unauthorized", "auth_backoff",
	"forbidden", "serial_mismatch", "kicked"}

type counters struct {
	connected atomic.Int64
	accepted  atomic.Uint64
	frameIn   [numIn]atomic.Uint64
	frameOut  [TypeCallError + 1]atomic.Uint64
	refusals  [numRefusals]atomic.Uint64
	bytesIn   atomic.Uint64
	bytesOut  atomic.Uint64
	// disconnects counts ended connections by reason, in the order of
	// connectionReasons.
	disconnects [len(connectionReasons)]atomic.Uint64
}

// connectionReasons are the reasons a connection ends, for the
// disconnect counters: a fixed set, so a metric label can never be
// anything else.
var connectionReasons = [...]Reason{ReasonClosed, ReasonReplaced, ReasonShutdown, ReasonNetworkError,
	ReasonSlowConsumer, ReasonBinaryFrame, ReasonFrameTooLarge, ReasonIdleTimeout, ReasonHeartbeatTimeout,
	ReasonKicked, ReasonAuthRevoked, ReasonAuthFailed}

// disconnected counts a connection that ended for reason.
func (c *counters) disconnected(reason Reason) {
	for i, r := range connectionReasons {
		if r == reason {
			c.disconnects[i].Add(1)
			return
		}
	}
}

func (c *counters) in(k inCounter)           { c.frameIn[k].Add(1) }
func (c *counters) out(t MessageType)        { c.frameOut[t].Add(1) }
func (c *counters) refused(r refusal) uint64 { return c.refusals[r].Add(1) }

// Stats is a snapshot of what the OCPP server has counted since it started.
type Stats struct {
	// Connected is the number of charge points connected now.
	Connected int64 `json:"connected"`
	// FramesIn counts frames from charge points by kind: call, callresult,
	// callerror, malformed, binary, too_large; of the answers those that
	// were late or unsolicited; calls sent while another was unanswered
	// (concurrent_call), forgotten unanswered calls (pending_evicted),
	// frames that failed their schema (schema_invalid) and frames refused
	// because the charge point has not yet proven its certificate's serial
	// number by a BootNotification (before_boot).
	FramesIn map[string]uint64 `json:"frames_in"`
	// FramesOut counts frames sent to charge points by type.
	FramesOut map[string]uint64 `json:"frames_out"`
	// Refused counts handshakes refused, by reason: bad_id,
	// bad_subprotocol, upgrade_failed, shutting_down, max_connections,
	// max_handshakes, max_connections_per_ip, unauthorized (401: missing
	// or wrong credentials), auth_backoff (429: in a failed-login
	// back-off), forbidden (403: a client certificate or a security
	// profile the rules refuse) and serial_mismatch (after the upgrade: a
	// BootNotification whose serial is not the certificate's, or none in
	// time; closed 1008 auth_failed) and kicked (403: an operator kicked
	// the charge point with a block, which has not run out).
	Refused map[string]uint64 `json:"refused"`
	// SchemaFailures counts frames and commands that failed their schema.
	SchemaFailures []SchemaFailure `json:"schema_failures"`
	// HeldCIDs and HeldBytes measure what is held for offline charge points.
	HeldCIDs  int64 `json:"held_cids"`
	HeldBytes int64 `json:"held_bytes"`
	// Accepted counts WebSocket upgrades that became a connection.
	Accepted uint64 `json:"accepted"`
	// Disconnects counts ended connections by reason (closed, replaced,
	// shutdown, network_error, slow_consumer, binary_frame,
	// frame_too_large, idle_timeout, heartbeat_timeout, kicked,
	// auth_revoked, auth_failed).
	Disconnects map[string]uint64 `json:"disconnects"`
	// BytesIn and BytesOut count the bytes of OCPP frames both ways
	// (WebSocket framing not included).
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
	// Queued is the downstream commands waiting behind an outstanding
	// one, Outstanding the commands awaiting their answer, over all
	// charge points (held ones included in Queued).
	Queued      int64 `json:"queued"`
	Outstanding int64 `json:"outstanding"`
	// HistoryBytes and HistoryFrames measure the frame histories.
	HistoryBytes  int64 `json:"history_bytes"`
	HistoryFrames int   `json:"history_frames"`
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Connected:   c.connected.Load(),
		Accepted:    c.accepted.Load(),
		BytesIn:     c.bytesIn.Load(),
		BytesOut:    c.bytesOut.Load(),
		Disconnects: make(map[string]uint64, len(connectionReasons)),
		FramesIn:    make(map[string]uint64, numIn),
		FramesOut:   make(map[string]uint64, 3),
		Refused:     make(map[string]uint64, numRefusals),
	}
	for i, n := range inNames {
		s.FramesIn[n] = c.frameIn[i].Load()
	}
	for _, t := range []MessageType{TypeCall, TypeCallResult, TypeCallError} {
		s.FramesOut[t.String()] = c.frameOut[t].Load()
	}
	for i, n := range refusalNames {
		s.Refused[n] = c.refusals[i].Load()
	}
	for i, r := range connectionReasons {
		s.Disconnects[string(r)] = c.disconnects[i].Load()
	}
	return s
}
