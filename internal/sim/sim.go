// Package sim simulates OCPP 1.6-J charge points against a chargemq gateway, for demos and load
// tests: it connects many charge points over WebSocket at a set rate, has them send valid calls
// at a total rate, optionally answers those calls from the MQTT side and publishes commands for
// the charge points to answer, and measures both directions' round trips.
//
// Run owns every goroutine it starts and returns only when all have ended. A run is in phases:
// the ramp (charge points dial at Options.ConnectRate and start calling as soon as each is
// connected), the steady phase (Options.Duration, whose throughput the report gives), and the
// drain (nothing new is sent; answers in flight get up to Options.Timeout; then every charge
// point closes with 1000).
package sim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnreachable is returned by Run when the gateway or the broker cannot be reached at all:
// the first charge point cannot connect, or an MQTT client cannot. Later failures are counted
// in the Report instead.
var ErrUnreachable = errors.New("sim: cannot reach")

// Topic layout of the gateway's default templates (README "The topic contract"); a gateway
// configured with other templates is not supported yet.
const (
	topicUpstream  = "ocpp/cp/"       // + cid: the charge points' CALLs
	topicReply     = "/Reply"         // ocpp/cp/<cid>/Reply: answers to commands, gateway errors
	topicCommand   = "ocpp/cs/"       // + cid: commands and answers to the charge points
	topicPresence  = "ocpp/presence/" // + cid: retained online/offline
	commandAction  = "Reset"
	commandPayload = `{"type":"Soft"}`
)

// callMetrics counts one direction's calls.
type callMetrics struct {
	sent, answered, errors, timedOut, skipped, late, sendFailed atomic.Int64
	lat                                                         histogram
	codes, byAction                                             tally
}

// metrics is everything a run counts, updated from every goroutine without locks (tallies
// lock briefly, and only on errors).
type metrics struct {
	attempted, connected, failed, dropped atomic.Int64
	closed                                atomic.Int64 // connections the simulator closed
	connectLat                            histogram
	failReasons, dropReasons              tally
	up, down                              callMetrics
	commandsAnswered                      atomic.Int64
	respAnswered, respNotImpl, respIgnore atomic.Int64

	warnMu   sync.Mutex
	warnings []string
}

// maxWarnings bounds the warnings kept for the report.
const maxWarnings = 20

func (m *metrics) warn(format string, args ...any) {
	m.warnMu.Lock()
	defer m.warnMu.Unlock()
	if len(m.warnings) < maxWarnings {
		m.warnings = append(m.warnings, fmt.Sprintf(format, args...))
	}
}

// runner is one run's shared state. Fields set before the first goroutine starts are read-only
// afterwards.
type runner struct {
	opts    Options
	action  string // scheduled action
	padded  []byte // DataTransfer payload when PayloadBytes > 0 (shared, never written)
	wait    bool   // one outstanding call per charge point, timed out after Timeout
	baseURL string
	client  *http.Client // the charge points' handshakes, unless certs gives each its own
	pool    *sourcePool
	ocppTLS *tls.Config // wss: roots, server name, TLS 1.2+, a shared certificate; nil for ws
	certs   *certCache  // client certificates named after the charge point; nil otherwise
	mqttTLS *tls.Config // mqtts; nil for mqtt
	t0      time.Time

	cps   []*chargePoint
	index map[string]int // cid → index in cps

	// stopSend ends the sending (closed after the steady phase or on cancellation); closeCPs
	// lets the charge points close (after the commands in flight were answered).
	stopSend, closeCPs chan struct{}
	wg                 sync.WaitGroup // every goroutine of the run
	dialed             sync.WaitGroup // one per charge point until its dial has ended
	m                  metrics
}

// Run simulates opts.Count charge points until the steady phase has lasted opts.Duration or ctx
// is cancelled, and reports what happened. It writes a progress line a second to progress
// when that is not nil. It returns an error only when the run could not start: invalid
// options, a TLS file every charge point needs that cannot be loaded (ErrClientCertificate
// for a client certificate, the first charge point's included), or an endpoint that cannot
// be reached at all, TLS handshake included (ErrUnreachable); everything after that,
// failures included, is in the Report.
func Run(ctx context.Context, opts Options, progress io.Writer) (Report, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return Report{}, fmt.Errorf("sim: %w", err)
	}
	r := newRunner(opts)
	if err := r.setupTLS(); err != nil {
		return Report{}, fmt.Errorf("sim: %w", err)
	}
	start := time.Now()

	soft, hard, err := raiseOpenFileLimit()
	if err != nil {
		r.m.warn("raising the open-file limit: %v", err)
	}
	if soft > 0 && uint64(opts.Count)+64 > soft {
		r.m.warn("open-file limit %d is too low for %d charge points: raise the hard limit (ulimit -Hn)", soft, opts.Count)
	}

	u, _ := url.Parse(opts.URL) // Validate parsed it
	r.pool = newSourcePool(resolveTarget(ctx, u.Hostname()), nil)
	transport := r.transport(r.ocppTLS)
	defer transport.CloseIdleConnections()
	r.client = &http.Client{Transport: transport}

	var clients []*mqttClient
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	if opts.Respond {
		c, err := r.startResponder(ctx)
		if err != nil {
			return Report{}, err
		}
		clients = append(clients, c)
	}
	var cmd *commander
	if opts.CommandRate > 0 {
		cmd, err = r.startCommander(ctx)
		if err != nil {
			return Report{}, err
		}
		clients = append(clients, cmd.client)
	}

	// The first charge point tells whether the gateway is there at all.
	r.t0 = time.Now()
	r.dialed.Add(opts.Count)
	r.m.attempted.Add(1)
	conn, err := r.cps[0].dial(ctx)
	if err != nil {
		r.m.failed.Add(1)
		if errors.Is(err, ErrClientCertificate) { // says nothing of the gateway, but nothing dialled
			return Report{}, fmt.Errorf("sim: %s: %w", r.cps[0].cid, err)
		}
		return Report{}, fmt.Errorf("%w %s: %v", ErrUnreachable, r.cps[0].url(), err)
	}
	r.dialed.Done()
	r.wg.Add(1)
	go r.cps[0].run(ctx, conn)

	r.wg.Add(1)
	go r.ramp(ctx)
	rampDone := make(chan struct{})
	go func() { r.dialed.Wait(); close(rampDone) }() // ends: every dial ends (Timeout), or ramp stops

	if cmd != nil {
		r.wg.Add(1)
		go cmd.run(ctx)
	}
	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	if progress != nil {
		progressDone.Add(1)
		go func() { defer progressDone.Done(); r.progress(progress, stopProgress) }()
	}

	var steadyStart, steadyEnd time.Time
	var before, after counterSnap
	interrupted := false
	select {
	case <-rampDone:
		steadyStart = time.Now()
		before = r.counters()
		t := time.NewTimer(opts.Duration)
		select {
		case <-t.C:
		case <-ctx.Done():
			interrupted = true
		}
		t.Stop()
		steadyEnd = time.Now()
		after = r.counters()
	case <-ctx.Done():
		interrupted = true
	}
	rampEnd := steadyStart
	if interrupted && steadyStart.IsZero() {
		rampEnd = time.Now()
	}
	close(r.stopSend)
	<-rampDone // the ramp stops dialling on stopSend; dials in flight end within Timeout
	if cmd != nil {
		<-cmd.drained
	}
	close(r.closeCPs)
	r.wg.Wait()
	close(stopProgress)
	progressDone.Wait()
	for _, c := range clients {
		c.close()
	}
	clients = nil

	rep := r.report(before, after, steadyEnd.Sub(steadyStart))
	rep.Interrupted = interrupted
	rep.RampSeconds = seconds(rampEnd.Sub(start))
	rep.TotalSeconds = seconds(time.Since(start))
	rep.OpenFilesSoft, rep.OpenFilesHard = soft, hard
	return rep, nil
}

func seconds(d time.Duration) float64 { return float64(d.Round(time.Millisecond)) / 1e9 }

func newRunner(opts Options) *runner {
	r := &runner{
		opts:     opts,
		action:   opts.scheduledAction(),
		wait:     opts.Respond,
		baseURL:  strings.TrimSuffix(opts.URL, "/"),
		cps:      make([]*chargePoint, opts.Count),
		index:    make(map[string]int, opts.Count),
		stopSend: make(chan struct{}),
		closeCPs: make(chan struct{}),
	}
	if opts.PayloadBytes > 0 {
		r.padded = dataTransferPayload(opts.PayloadBytes)
	}
	width := len(strconv.Itoa(opts.Count))
	for i := range r.cps {
		cid := fmt.Sprintf("%s%0*d", opts.IDPrefix, width, i+1)
		r.cps[i] = newChargePoint(r, i, cid)
		r.index[cid] = i
	}
	return r
}

// ramp dials charge points 1… at ConnectRate, each on its own goroutine so a slow handshake
// does not slow the ramp, until all are dialled or sending stops. Unlike calls, dials are never
// dropped: a ramp that falls behind its schedule catches up.
func (r *runner) ramp(ctx context.Context) {
	defer r.wg.Done()
	var step time.Duration
	if r.opts.ConnectRate > 0 {
		step = rateInterval(r.opts.ConnectRate)
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for i := 1; i < len(r.cps); i++ {
		wait := time.Until(r.t0.Add(time.Duration(i) * step)) // charge point 0 was the probe, at t0
		if wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-r.stopSend:
				r.dialed.Add(-(len(r.cps) - i)) // never dialled
				return
			}
		} else {
			select {
			case <-r.stopSend:
				r.dialed.Add(-(len(r.cps) - i))
				return
			default:
			}
		}
		r.m.attempted.Add(1)
		r.wg.Add(1)
		go r.cps[i].dialAndRun(ctx)
	}
}

// counterSnap is the counters the steady-phase throughput is computed from.
type counterSnap struct {
	upSent, upAnswered, downSent, downAnswered int64
	upLat, downLat                             histSnapshot
}

func (r *runner) counters() counterSnap {
	return counterSnap{r.m.up.sent.Load(), r.m.up.answered.Load(), r.m.down.sent.Load(), r.m.down.answered.Load(),
		r.m.up.lat.Snapshot(), r.m.down.lat.Snapshot()}
}

// progress prints a line a second until stop is closed: charge points connected, the last
// second's calls per second, errors so far and the last second's p99, per direction.
func (r *runner) progress(w io.Writer, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prev := r.counters()
	prevUp, prevDown := r.m.up.lat.Snapshot(), r.m.down.lat.Snapshot()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			cur := r.counters()
			up, down := r.m.up.lat.Snapshot(), r.m.down.lat.Snapshot()
			du, dd := up.Sub(&prevUp), down.Sub(&prevDown)
			secs := now.Sub(last).Seconds()
			open := r.m.connected.Load() - r.m.dropped.Load() - r.m.closed.Load()
			line := fmt.Sprintf("%5.0fs  connected %d/%d failed %d dropped %d | up %.0f/s answered %.0f/s errors %d timeouts %d p99 %s",
				now.Sub(r.t0).Seconds(), open, r.opts.Count, r.m.failed.Load(), r.m.dropped.Load(),
				float64(cur.upSent-prev.upSent)/secs, float64(cur.upAnswered-prev.upAnswered)/secs,
				r.m.up.errors.Load(), r.m.up.timedOut.Load(), p99(&du))
			if r.opts.CommandRate > 0 {
				line += fmt.Sprintf(" | down %.0f/s answered %.0f/s errors %d timeouts %d p99 %s",
					float64(cur.downSent-prev.downSent)/secs, float64(cur.downAnswered-prev.downAnswered)/secs,
					r.m.down.errors.Load(), r.m.down.timedOut.Load(), p99(&dd))
			}
			fmt.Fprintln(w, line)
			prev, prevUp, prevDown, last = cur, up, down, now
		}
	}
}

// p99 prints a snapshot's 99th percentile for the progress line, "-" when it is empty.
func p99(s *histSnapshot) string {
	if s.Count() == 0 {
		return "-"
	}
	return fmtMS(ms(s.Quantile(0.99)))
}

// report builds the Report from the counters at the end and at the steady phase's bounds.
func (r *runner) report(before, after counterSnap, steady time.Duration) Report {
	m := &r.m
	connLat := m.connectLat.Snapshot()
	rep := Report{
		URL:           r.opts.URL,
		Count:         r.opts.Count,
		SteadySeconds: seconds(steady),
		Connections: ConnectionReport{
			Attempted:   m.attempted.Load(),
			Connected:   m.connected.Load(),
			Failed:      m.failed.Load(),
			Dropped:     m.dropped.Load(),
			FailReasons: m.failReasons.snapshot(),
			DropReasons: m.dropReasons.snapshot(),
			Latency:     latencyOf(&connLat),
		},
		Upstream: callReport(&m.up, r.scheduled(), r.opts.CallRate, after.upSent-before.upSent,
			after.upAnswered-before.upAnswered, after.upLat.Sub(&before.upLat), steady),
		Downstream: callReport(&m.down, commandAction, r.opts.CommandRate, after.downSent-before.downSent,
			after.downAnswered-before.downAnswered, after.downLat.Sub(&before.downLat), steady),
		CommandsAnswered: m.commandsAnswered.Load(),
		SourceAddrs:      r.pool.Used(),
	}
	rep.Upstream.SentByAction = m.up.byAction.snapshot()
	if r.opts.CommandRate == 0 {
		rep.Downstream.Action = "" // no commands were sent
	}
	if r.opts.Respond {
		rep.Responder = &ResponderReport{Answered: m.respAnswered.Load(), NotImplemented: m.respNotImpl.Load(), Ignored: m.respIgnore.Load()}
	}
	m.warnMu.Lock()
	rep.Warnings = append([]string(nil), m.warnings...)
	m.warnMu.Unlock()
	return rep
}

// scheduled is the action sent on schedule, "" for idle charge points.
func (r *runner) scheduled() string {
	if r.opts.CallRate == 0 {
		return ""
	}
	return r.action
}

func callReport(c *callMetrics, action string, target float64, sent, answered int64, steadyLat histSnapshot, steady time.Duration) CallReport {
	lat := c.lat.Snapshot()
	rep := CallReport{
		SteadyLatency: latencyOf(&steadyLat),
		Action:        action,
		TargetRate:    target,
		Sent:          c.sent.Load(),
		Answered:      c.answered.Load(),
		Errors:        c.errors.Load(),
		TimedOut:      c.timedOut.Load(),
		Skipped:       c.skipped.Load(),
		Late:          c.late.Load(),
		SendFailed:    c.sendFailed.Load(),
		ErrorCodes:    c.codes.snapshot(),
		Latency:       latencyOf(&lat),
	}
	rep.Unanswered = max(0, rep.Sent-rep.Answered-rep.Errors)
	if s := steady.Seconds(); s > 0 {
		rep.SentPerSecond = round1(float64(sent) / s)
		rep.AnsweredPerSecond = round1(float64(answered) / s)
	}
	return rep
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }
