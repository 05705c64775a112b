package sim

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// Report is the outcome of a run: what was offered, what came back and how long it took, per
// direction. It marshals to the one JSON object `chargemq sim --json` prints, and WriteText
// prints it for people. Failed calls and connections are counted here, not returned as errors:
// a load test that overloads the gateway has still run.
type Report struct {
	// URL is the OCPP endpoint the charge points connected to.
	URL string `json:"url"`
	// Count is how many charge points the run asked for.
	Count int `json:"count"`
	// Interrupted is true when the run was cancelled (SIGINT) before its end.
	Interrupted bool `json:"interrupted,omitempty"`
	// RampSeconds is the time until every charge point had been dialled.
	RampSeconds float64 `json:"ramp_s"`
	// SteadySeconds is the steady phase after the ramp, over which rates are computed.
	SteadySeconds float64 `json:"steady_s"`
	// TotalSeconds is the whole run, the final drain and closes included.
	TotalSeconds float64 `json:"total_s"`

	// Connections counts the charge points' WebSocket connections.
	Connections ConnectionReport `json:"connections"`
	// Upstream is the charge points' calls (CP→gateway→MQTT→responder→gateway→CP).
	Upstream CallReport `json:"upstream"`
	// Downstream is the commands published on MQTT (MQTT→gateway→CP→gateway→MQTT).
	Downstream CallReport `json:"downstream"`
	// CommandsAnswered counts commands the charge points received and answered, from this
	// run's publisher or any other MQTT client.
	CommandsAnswered int64 `json:"commands_answered_by_charge_points"`
	// Responder is set when the run had one (Options.Respond).
	Responder *ResponderReport `json:"responder,omitempty"`

	// SourceAddrs is how many loopback source addresses dials used (see sourcePool).
	SourceAddrs int `json:"source_addrs"`
	// OpenFilesSoft is the open-file limit after raising it to the hard limit, which bounds
	// the charge points one process can hold (0: unknown on this OS).
	OpenFilesSoft uint64 `json:"open_files_soft,omitempty"`
	// OpenFilesHard is the hard open-file limit (0: unknown on this OS).
	OpenFilesHard uint64 `json:"open_files_hard,omitempty"`
	// Warnings are problems that did not stop the run (an MQTT connection lost, a limit too
	// low for Count).
	Warnings []string `json:"warnings,omitempty"`
}

// ConnectionReport counts the charge points' WebSocket connections.
type ConnectionReport struct {
	// Attempted is the dials started.
	Attempted int64 `json:"attempted"`
	// Connected is the completed upgrades.
	Connected int64 `json:"connected"`
	// Failed is the dials that did not connect, counted by cause in FailReasons.
	Failed int64 `json:"failed"`
	// Dropped is the connections the other side ended before the run did, counted by cause in
	// DropReasons.
	Dropped int64 `json:"dropped"`
	// FailReasons counts failed dials by cause: "HTTP 503 Service Unavailable", "connection
	// refused", "timeout", "no free source port (EADDRNOTAVAIL)", ….
	FailReasons map[string]int64 `json:"fail_reasons,omitempty"`
	// DropReasons counts drops by the close code and reason ("1000 replaced", "1000
	// heartbeat_timeout", "1001 shutdown") or the network error.
	DropReasons map[string]int64 `json:"drop_reasons,omitempty"`
	// Latency is the time from the start of a dial to the completed upgrade.
	Latency Latency `json:"latency"`
}

// CallReport counts one direction's calls. Unanswered = Sent − Answered − Errors: calls that
// got no answer in time (TimedOut, with a waiting sender) or, without --respond, none at all.
type CallReport struct {
	// Action is what was sent on schedule ("" for idle charge points, or no commands).
	Action string `json:"action,omitempty"`
	// TargetRate is the total rate per second asked for.
	TargetRate float64 `json:"target_per_s"`
	// Sent is the calls written (upstream) or published (downstream).
	Sent int64 `json:"sent"`
	// Answered is the calls answered with a CALLRESULT.
	Answered int64 `json:"answered"`
	// Errors is the calls answered with a CALLERROR, the gateway's own errors on commands
	// included.
	Errors int64 `json:"errors"`
	// TimedOut is the calls with no answer within Options.Timeout (only counted when the
	// sender waits: with --respond upstream, always downstream).
	TimedOut int64 `json:"timed_out"`
	// Unanswered is Sent − Answered − Errors.
	Unanswered int64 `json:"unanswered"`
	// Skipped is scheduled calls not sent because the previous one was still outstanding
	// (OCPP-J allows one at a time) or there was no charge point online to command: the part
	// of the target rate the gateway could not absorb.
	Skipped int64 `json:"skipped"`
	// Late is answers that came after their call had timed out or been forgotten.
	Late int64 `json:"late"`
	// SendFailed is calls whose write or publish failed (the connection was going away).
	SendFailed int64 `json:"send_failed"`
	// ErrorCodes counts Errors by OCPP error code, or "gateway:<reason>" for the gateway's
	// errors on commands (queue_full, offline, …).
	ErrorCodes map[string]int64 `json:"error_codes,omitempty"`
	// SentByAction counts upstream calls by action: the scheduled ones, BootNotification and
	// the heartbeats of otherwise quiet charge points.
	SentByAction map[string]int64 `json:"sent_by_action,omitempty"`
	// SentPerSecond is the calls sent per second in the steady phase.
	SentPerSecond float64 `json:"sent_per_s"`
	// AnsweredPerSecond is the answers received per second in the steady phase: the
	// throughput.
	AnsweredPerSecond float64 `json:"answered_per_s"`
	// Latency is the round trip of answered calls (CALLRESULTs), the ramp's included.
	Latency Latency `json:"latency"`
	// SteadyLatency is the round trip of the calls answered in the steady phase: the
	// latency at the target rate, without the BootNotifications and the calls of the ramp,
	// which wait behind the connection handshakes.
	SteadyLatency Latency `json:"steady_latency"`
}

// ResponderReport counts what the MQTT-side responder did.
type ResponderReport struct {
	// Answered is the calls answered with a CALLRESULT.
	Answered int64 `json:"answered"`
	// NotImplemented is the calls answered with a CALLERROR NotImplemented (an action a
	// charge point may not send).
	NotImplemented int64 `json:"not_implemented"`
	// Ignored is the messages not answered: another charge point's, or not a CALL.
	Ignored int64 `json:"ignored"`
}

// Latency summarises a histogram, in milliseconds (to the microsecond). Quantiles are within
// 1/64 (1.6%) of the exact value, half the histogram's bucket width; Max is exact.
type Latency struct {
	// Count is the number of round trips measured.
	Count uint64 `json:"count"`
	// P50 is the median.
	P50 float64 `json:"p50_ms"`
	// P90 is the 90th percentile.
	P90 float64 `json:"p90_ms"`
	// P99 is the 99th percentile.
	P99 float64 `json:"p99_ms"`
	// Max is the slowest.
	Max float64 `json:"max_ms"`
}

// latencyOf summarises a snapshot.
func latencyOf(s *histSnapshot) Latency {
	return Latency{Count: s.Count(), P50: ms(s.Quantile(0.5)), P90: ms(s.Quantile(0.9)),
		P99: ms(s.Quantile(0.99)), Max: ms(s.Quantile(1))}
}

// ms converts to milliseconds rounded to the microsecond.
func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// fmtMS prints milliseconds compactly: 0.412ms, 12.3ms, 1840ms.
func fmtMS(v float64) string {
	switch {
	case v < 1:
		return fmt.Sprintf("%.3fms", v)
	case v < 100:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.0fms", v)
}

func (l Latency) text() string {
	if l.Count == 0 {
		return "latency -"
	}
	return fmt.Sprintf("latency p50 %s  p90 %s  p99 %s  max %s", fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P99), fmtMS(l.Max))
}

// WriteText prints the report as a few aligned lines.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	state := ""
	if r.Interrupted {
		state = ", interrupted"
	}
	fmt.Fprintf(&b, "chargemq sim: %d charge points at %s: ramp %.1fs, steady %.1fs, total %.1fs%s\n",
		r.Count, r.URL, r.RampSeconds, r.SteadySeconds, r.TotalSeconds, state)
	c := r.Connections
	fmt.Fprintf(&b, "connections  %d connected, %d failed, %d dropped (of %d dialled)   connect %s\n",
		c.Connected, c.Failed, c.Dropped, c.Attempted, c.Latency.text())
	writeReasons(&b, "failed", c.FailReasons)
	writeReasons(&b, "dropped", c.DropReasons)
	writeCalls(&b, "upstream", &r.Upstream)
	if len(r.Upstream.SentByAction) > 1 {
		fmt.Fprintf(&b, "             sent by action: %s\n", joinCounts(r.Upstream.SentByAction))
	}
	if r.Downstream.Sent > 0 || r.Downstream.TargetRate > 0 {
		writeCalls(&b, "downstream", &r.Downstream)
	}
	fmt.Fprintf(&b, "commands     %d answered by the charge points\n", r.CommandsAnswered)
	if rs := r.Responder; rs != nil {
		fmt.Fprintf(&b, "responder    %d answered, %d not implemented, %d ignored\n", rs.Answered, rs.NotImplemented, rs.Ignored)
	}
	limits := fmt.Sprintf("source addresses %d", r.SourceAddrs)
	if r.OpenFilesHard > 0 {
		limits = fmt.Sprintf("open files %d (hard %d), %s", r.OpenFilesSoft, r.OpenFilesHard, limits)
	}
	fmt.Fprintf(&b, "limits       %s\n", limits)
	for _, warn := range r.Warnings {
		fmt.Fprintf(&b, "warning      %s\n", warn)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeCalls(b *strings.Builder, name string, c *CallReport) {
	what := fmt.Sprintf("%s at %g/s", c.Action, c.TargetRate)
	if c.Action == "" {
		what = "idle (BootNotification, heartbeats)"
	}
	fmt.Fprintf(b, "%-12s %s: %d sent, %d answered, %d errors, %d timed out, %d unanswered, %d skipped, %d late, %d send failed\n",
		name, what, c.Sent, c.Answered, c.Errors, c.TimedOut, c.Unanswered, c.Skipped, c.Late, c.SendFailed)
	fmt.Fprintf(b, "             steady %.1f sent/s, %.1f answered/s   %s\n", c.SentPerSecond, c.AnsweredPerSecond, c.SteadyLatency.text())
	if c.Latency.Count != 0 {
		fmt.Fprintf(b, "             whole run, ramp included: %s\n", c.Latency.text())
	}
	writeReasons(b, "errors", c.ErrorCodes)
}

func writeReasons(b *strings.Builder, what string, m map[string]int64) {
	if len(m) > 0 {
		fmt.Fprintf(b, "             %s: %s\n", what, joinCounts(m))
	}
}

// joinCounts prints a count map as "a 3, b 1", largest first.
func joinCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// maxTallyKeys bounds a tally: error texts can vary (addresses in them), and a summary needs
// the main causes, not every variant.
const maxTallyKeys = 32

// tally counts occurrences by key, safe for concurrent use and bounded to maxTallyKeys keys
// (later new keys count under "other").
type tally struct {
	mu sync.Mutex
	m  map[string]int64
}

func (t *tally) add(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]int64)
	}
	if _, ok := t.m[key]; !ok && len(t.m) >= maxTallyKeys {
		key = "other"
	}
	t.m[key]++
}

// snapshot returns a copy, nil when empty.
func (t *tally) snapshot() map[string]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(t.m))
	for k, v := range t.m {
		out[k] = v
	}
	return out
}
