package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// The plain-MQTT round-trip baseline of the latency scenario: requesters publish on
// rttRequestPrefix+<i>, one responder echoes each message on rttResponsePrefix+<i>.
const (
	rttRequestPrefix  = "rtt/req/"
	rttResponsePrefix = "rtt/resp/"
	// rttTimeout is how long a request may go unanswered before it counts as timed out: the
	// simulator's default call timeout, so both tables count alike.
	rttTimeout = 10 * time.Second
	// rttDialers bounds the requesters connecting at once, so the ramp stays well inside the
	// broker's connect handling instead of measuring a connection storm.
	rttDialers = 50
)

// mqttRTTResult is the plain-MQTT round-trip baseline at one rate: the OCPP round trip's load
// shape (clients, total rate, one request outstanding per client, the responder in the suite)
// without OCPP, through the same binary's embedded mochi, so the OCPP p99 can be read as a
// ratio against what the box and the load generator allow.
type mqttRTTResult struct {
	Rate       float64
	Requesters int
	Window     time.Duration // the steady window the samples and the rate are taken over
	// P50, P90, P99 and Max are the round trips answered in the window, in milliseconds
	// (exact: every sample is kept and sorted).
	P50, P90, P99, Max float64
	Answered           int64   // round trips answered in the window
	AnsweredPerSecond  float64 // Answered ÷ Window
	Sent               int64   // requests published over the whole run
	Skipped            int64   // slots lost because the previous request was still unanswered
	TimedOut           int64   // requests unanswered rttTimeout after they were sent
	PublishFailed      int64   // requests or answers whose publish failed
	Ignored            int64   // messages the responder could not map to a requester
	ServerCPU          time.Duration
	Wall               time.Duration // of the whole run: ramp, window and drain, as ServerCPU
	Err                error         // the baseline could not run; the OCPP row still counts
}

// reached says whether the answered rate was within 1 % of the target, as for the OCPP rows.
func (m mqttRTTResult) reached() bool { return m.AnsweredPerSecond >= 0.99*m.Rate }

// cores is the server's mean CPU use over the run.
func (m mqttRTTResult) cores() float64 {
	if m.Wall <= 0 {
		return 0
	}
	return m.ServerCPU.Seconds() / m.Wall.Seconds()
}

// rttSchedule is what every requester of a run shares. Its times are written once, after the
// ramp and before any requester starts sending (a requester reads them only for a request it
// sent), so it needs no lock.
type rttSchedule struct {
	window   time.Duration // windowEnd − windowStart, known before the ramp
	start    time.Time     // requester 0's first slot
	interval time.Duration // between one requester's slots
	clients  int
	// A round trip counts when its answer arrives in [windowStart, windowEnd); no request is
	// sent at or after windowEnd.
	windowStart, windowEnd time.Time
}

// rttRequester is one MQTT client that publishes a request and waits for its echo, as an
// OCPP-J charge point waits for the answer to its one call before the next.
type rttRequester struct {
	idx      int
	topic    string
	client   *mqttClient
	answered chan struct{} // capacity 1: wakes the sender once its request is answered
	sched    *rttSchedule

	mu          sync.Mutex
	outstanding bool
	sentAt      time.Time
	payload     []byte // of the outstanding request: the echo must match it
	seq         uint64
	samples     []time.Duration // preallocated for the window (see newRTTRequester)
	sent        int64
	skipped     int64
	timedOut    int64
	failed      int64
}

// newRTTRequester makes requester i. Its samples slice is preallocated for the window: each
// answer follows its own request, and each request uses its own slot, sent after the slot is
// due and normally within maxLate of it, so the window holds about window/interval + 1
// samples; the margin covers a sender held up by the scheduler, and append still works past it.
func newRTTRequester(i int, sched *rttSchedule) *rttRequester {
	return &rttRequester{
		idx:      i,
		topic:    rttRequestPrefix + strconv.Itoa(i),
		answered: make(chan struct{}, 1),
		sched:    sched,
		samples:  make([]time.Duration, 0, int((sched.window+2*maxLate)/sched.interval)+3),
	}
}

// received handles a message on the requester's response topic (paho's delivery goroutine).
// An echo of anything but the outstanding request (one that already timed out) is dropped.
func (r *rttRequester) received(p *paho.Publish) {
	now := time.Now()
	r.mu.Lock()
	if r.outstanding && bytes.Equal(p.Payload, r.payload) {
		r.outstanding = false
		switch rtt := now.Sub(r.sentAt); {
		case rtt >= rttTimeout:
			r.timedOut++
		case !now.Before(r.sched.windowStart) && now.Before(r.sched.windowEnd):
			r.samples = append(r.samples, rtt)
		}
	}
	r.mu.Unlock()
	select {
	case r.answered <- struct{}{}:
	default:
	}
}

// busy says whether a request is still outstanding at now, first timing it out when it has
// waited rttTimeout. It returns the time-out's deadline while busy.
func (r *rttRequester) busy(now time.Time) (bool, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.outstanding && now.Sub(r.sentAt) >= rttTimeout {
		r.outstanding = false
		r.timedOut++
	}
	return r.outstanding, r.sentAt.Add(rttTimeout)
}

// waitFor waits until deadline, an answer (when wake is true) or ctx's end; it reports
// whether an answer woke it.
func (r *rttRequester) waitFor(ctx context.Context, timer *time.Timer, deadline time.Time, wake bool) (bool, error) {
	d := time.Until(deadline)
	if d <= 0 {
		return false, ctx.Err()
	}
	timer.Reset(d)
	defer timer.Stop()
	answered := r.answered
	if !wake {
		answered = nil
	}
	select {
	case <-timer.C:
		return false, nil
	case <-answered:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// run sends on the requester's schedule until the window ends, then waits for its last
// request's answer (or its time-out). It follows the simulator's charge point: a slot may
// wait for the previous answer up to maxLate after it, then it is lost (skipped); a sender
// behind its schedule by more than maxLate skips the slots it missed rather than bursting.
func (r *rttRequester) run(ctx context.Context) error {
	s := r.sched
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	// Offset each requester by its share of one interval, so together they are evenly spaced.
	start := s.start.Add(s.interval * time.Duration(r.idx) / time.Duration(s.clients))
	for k := int64(0); ; k++ {
		due := start.Add(time.Duration(k) * s.interval)
		if late := time.Since(due); late > maxLate {
			skip := int64(late / s.interval)
			r.addSkipped(skip)
			k += skip
			due = start.Add(time.Duration(k) * s.interval)
		}
		if !due.Before(s.windowEnd) {
			break
		}
		if _, err := r.waitFor(ctx, timer, due, false); err != nil {
			return err
		}
		lost, deadline := false, due.Add(maxLate)
		for {
			if busy, _ := r.busy(time.Now()); !busy {
				break
			}
			if !time.Now().Before(deadline) {
				lost = true
				break
			}
			if _, err := r.waitFor(ctx, timer, deadline, true); err != nil {
				return err
			}
		}
		if lost {
			r.addSkipped(1)
			continue
		}
		if err := r.publish(ctx); err != nil {
			return err
		}
	}
	// Drain: the last request is answered or times out.
	for {
		busy, deadline := r.busy(time.Now())
		if !busy {
			return nil
		}
		if _, err := r.waitFor(ctx, timer, deadline, true); err != nil {
			return err
		}
	}
}

func (r *rttRequester) addSkipped(n int64) {
	r.mu.Lock()
	r.skipped += n
	r.mu.Unlock()
}

// publish sends the next request, the gateway's Heartbeat message numbered as the simulator
// numbers its calls, and marks it outstanding before the write, so an echo that overtakes
// the return of Publish still finds it.
func (r *rttRequester) publish(ctx context.Context) error {
	r.mu.Lock()
	r.seq++
	r.payload = heartbeatMessage(r.seq)
	payload := r.payload
	r.outstanding = true
	r.sentAt = time.Now()
	r.mu.Unlock()
	_, err := r.client.c.Publish(ctx, &paho.Publish{Topic: r.topic, QoS: 0, Payload: payload})
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.outstanding = false
		r.failed++
		if cerr := r.client.failed(); cerr != nil {
			return fmt.Errorf("requester %d: %w", r.idx, cerr)
		}
		return ctx.Err()
	}
	r.sent++
	return nil
}

// rttResponder is the one client that answers every requester: it echoes each request on
// rttResponsePrefix+<i>, publishing from paho's delivery goroutine as the simulator's OCPP
// responder does, so both round trips queue alike behind one subscriber.
type rttResponder struct {
	client  atomic.Pointer[mqttClient] // set before it subscribes
	topics  []string                   // response topic by requester index
	ignored atomic.Int64
	failed  atomic.Int64
}

// requesterIndex parses i from rttRequestPrefix+<i>, for i in [0, n).
func requesterIndex(topic string, n int) (int, bool) {
	s, ok := strings.CutPrefix(topic, rttRequestPrefix)
	if !ok || s == "" || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || i >= n || strconv.Itoa(i) != s {
		return 0, false
	}
	return i, true
}

func (rs *rttResponder) received(p *paho.Publish) {
	i, ok := requesterIndex(p.Topic, len(rs.topics))
	c := rs.client.Load()
	if !ok || c == nil {
		rs.ignored.Add(1)
		return
	}
	if _, err := c.c.Publish(context.Background(), &paho.Publish{Topic: rs.topics[i], QoS: 0, Payload: p.Payload}); err != nil {
		rs.failed.Add(1)
	}
}

// rttQuantiles returns the p50, p90, p99 and max of samples in milliseconds (nearest rank),
// sorting samples in place; all zero when there are none.
func rttQuantiles(samples []time.Duration) (p50, p90, p99, maxMS float64) {
	if len(samples) == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(samples)
	q := func(f float64) float64 {
		k := int(math.Ceil(f*float64(len(samples)))) - 1
		k = min(max(k, 0), len(samples)-1)
		return ms(samples[k])
	}
	return q(0.5), q(0.9), q(0.99), ms(samples[len(samples)-1])
}

// rttConfigFile writes a configuration raising mqtt.max_clients above the default 1,000,
// which the requesters and the responder would otherwise exceed; the limit is an admission
// check only, not on any message's path.
func (b *bench) rttConfigFile(clients int) (string, error) {
	path := filepath.Join(b.dir, "mqttrtt.yaml")
	conf := fmt.Sprintf("mqtt:\n  max_clients: %d\n", clients+100)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", fmt.Errorf("round-trip baseline configuration: %w", err)
	}
	return path, nil
}

// mqttRTTRun measures the plain-MQTT round trip at rate on a fresh server, with the server's
// CPU over the whole run (ramp, window and drain, as the OCPP row's).
func (b *bench) mqttRTTRun(ctx context.Context, rate float64) (mqttRTTResult, error) {
	cfg := b.cfg.Latency
	conf, err := b.rttConfigFile(cfg.CPs)
	if err != nil {
		return mqttRTTResult{Rate: rate, Requesters: cfg.CPs}, err
	}
	s, err := b.startServer(ctx, "--config", conf)
	if err != nil {
		return mqttRTTResult{Rate: rate, Requesters: cfg.CPs}, err
	}
	defer s.stop(stopGrace)
	c0, err := readCPU(s.pid())
	if err != nil {
		return mqttRTTResult{Rate: rate, Requesters: cfg.CPs}, err
	}
	res, err := runRTT(ctx, s.MQTT, cfg.CPs, rate, cfg.Duration)
	c1, cerr := readCPU(s.pid())
	if err != nil {
		return res, err
	}
	if cerr != nil {
		return res, cerr
	}
	res.ServerCPU = c1.Sub(c0).Total()
	return res, s.alive()
}

// runRTT runs the round trip against the broker at addr: n requesters and one responder
// connect and subscribe (the ramp), every requester then sends on its schedule at its share
// of rate; the round trips answered in the window after one interval of warm-up (every
// requester has sent once) are the samples. It returns when every client is closed.
func runRTT(ctx context.Context, addr string, n int, rate float64, window time.Duration) (res mqttRTTResult, err error) {
	res = mqttRTTResult{Rate: rate, Requesters: n, Window: window}
	t0 := time.Now()
	defer func() { res.Wall = time.Since(t0) }() // runs last: the clients' closing included

	resp := &rttResponder{topics: make([]string, n)}
	for i := range resp.topics {
		resp.topics[i] = rttResponsePrefix + strconv.Itoa(i)
	}
	responder, err := dialMQTT(ctx, addr, "bench-rtt-responder", resp.received)
	if err != nil {
		return res, err
	}
	defer responder.close()
	resp.client.Store(responder)
	if err := responder.subscribe(ctx, rttRequestPrefix+"+", 0); err != nil {
		return res, err
	}

	interval := max(time.Duration(float64(time.Second)*float64(n)/rate), time.Microsecond)
	sched := &rttSchedule{window: window, interval: interval, clients: n}
	reqs := make([]*rttRequester, n)
	defer func() {
		for _, r := range reqs {
			if r != nil && r.client != nil {
				r.client.close()
			}
		}
	}()
	if err := dialRequesters(ctx, addr, reqs, sched); err != nil {
		return res, err
	}

	// The ramp is over: the schedule starts now, and the window after one interval, when every
	// requester has sent once.
	sched.start = time.Now()
	sched.windowStart = sched.start.Add(sched.interval)
	sched.windowEnd = sched.windowStart.Add(sched.window)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.run(ctx)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, err
	}

	var all []time.Duration
	for _, r := range reqs {
		r.mu.Lock()
		all = append(all, r.samples...)
		res.Sent += r.sent
		res.Skipped += r.skipped
		res.TimedOut += r.timedOut
		res.PublishFailed += r.failed
		r.mu.Unlock()
	}
	res.PublishFailed += resp.failed.Load()
	res.Ignored = resp.ignored.Load()
	res.Answered = int64(len(all))
	res.AnsweredPerSecond = float64(res.Answered) / window.Seconds()
	res.P50, res.P90, res.P99, res.Max = rttQuantiles(all)

	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	for _, r := range reqs {
		if err := r.client.failed(); err != nil {
			return res, fmt.Errorf("requester %d: %w", r.idx, err)
		}
	}
	if err := responder.failed(); err != nil {
		return res, fmt.Errorf("responder: %w", err)
	}
	return res, nil
}

// dialRequesters connects and subscribes every requester, rttDialers at a time, filling reqs;
// it returns the first error once the dials in progress have ended.
func dialRequesters(ctx context.Context, addr string, reqs []*rttRequester, sched *rttSchedule) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range min(rttDialers, len(reqs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(reqs) || ctx.Err() != nil {
					return
				}
				r := newRTTRequester(i, sched)
				c, err := dialMQTT(ctx, addr, fmt.Sprintf("bench-rtt-requester-%d", i), r.received)
				if err == nil {
					r.client = c
					reqs[i] = r
					err = c.subscribe(ctx, rttResponsePrefix+strconv.Itoa(i), 0)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("requester %d: %w", i, err)
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
