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
	numRefusals
)

var refusalNames = [numRefusals]string{"bad_id", "bad_subprotocol", "upgrade_failed", "shutting_down",
	"max_connections", "max_handshakes", "max_connections_per_ip", "unauthorized", "auth_backoff",
	"forbidden", "serial_mismatch"}

type counters struct {
	connected atomic.Int64
	frameIn   [numIn]atomic.Uint64
	frameOut  [TypeCallError + 1]atomic.Uint64
	refusals  [numRefusals]atomic.Uint64
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
	// time; closed 1008 auth_failed).
	Refused map[string]uint64 `json:"refused"`
	// SchemaFailures counts frames and commands that failed their schema.
	SchemaFailures []SchemaFailure `json:"schema_failures"`
	// HeldCIDs and HeldBytes measure what is held for offline charge points.
	HeldCIDs  int64 `json:"held_cids"`
	HeldBytes int64 `json:"held_bytes"`
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Connected: c.connected.Load(),
		FramesIn:  make(map[string]uint64, numIn),
		FramesOut: make(map[string]uint64, 3),
		Refused:   make(map[string]uint64, numRefusals),
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
	return s
}
