package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/chargemq/chargemq/internal/sim"
)

// upstreamConfig is scenario 1: charge point → MQTT subscriber, against plain MQTT.
type upstreamConfig struct {
	CPs        int           // charge points (gateway) and topics (plain MQTT)
	Rate       float64       // messages per second, in total
	Warmup     time.Duration // after every charge point or publisher is running
	Window     time.Duration // the measured window
	Publishers int           // plain-MQTT publishing clients
	Repeats    int           // runs of each target, interleaved
	QoS        byte          // of the baseline publishes and every subscription
}

// Targets of scenario 1, in table order.
const (
	targetGateway   = "chargemq gateway"
	targetPlainMQTT = "chargemq plain MQTT"
	targetMosquitto = "Mosquitto"
)

// upstreamRun is one measured window.
type upstreamRun struct {
	Window    time.Duration
	Offered   float64 // messages per second published into the broker in the window
	Delivered float64 // messages per second the subscriber received in the window
	Msgs      int64   // received in the window
	ServerCPU time.Duration
	LoadCPU   time.Duration // the suite's own process: the load generator and the subscriber
	AvgBytes  float64       // mean payload the subscriber received in the window
	Lost      int64         // published − received, over the whole run after a drain
	Skipped   int64         // publish slots skipped by a publisher that fell behind
}

// usPerMsg is the server's CPU per delivered message in microseconds.
func (r upstreamRun) usPerMsg() float64 { return perMsg(r.ServerCPU, r.Msgs) }

// loadUSPerMsg is the suite's CPU per delivered message in microseconds.
func (r upstreamRun) loadUSPerMsg() float64 { return perMsg(r.LoadCPU, r.Msgs) }

func perMsg(d time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(n)
}

// upstreamResult is every run of one target.
type upstreamResult struct {
	Target string
	Runs   []upstreamRun
	Err    error // the target could not run (Mosquitto missing); the others still count
}

// median of the runs by server CPU per message (the lower middle one of an even count).
func (u upstreamResult) median() upstreamRun {
	runs := append([]upstreamRun(nil), u.Runs...)
	sort.Slice(runs, func(i, j int) bool { return runs[i].usPerMsg() < runs[j].usPerMsg() })
	return runs[(len(runs)-1)/2]
}

// runUpstream runs every target cfg.Repeats times, interleaved, so a change in the machine's
// background load hits all of them alike.
func (b *bench) runUpstream(ctx context.Context) ([]upstreamResult, error) {
	cfg := b.cfg.Upstream
	res := []upstreamResult{{Target: targetGateway}, {Target: targetPlainMQTT}, {Target: targetMosquitto}}
	if _, err := os.Stat(b.cfg.Mosquitto); err != nil {
		res[2].Err = fmt.Errorf("not run: %v (make bench installs the Debian package)", err)
	}
	for rep := 1; rep <= cfg.Repeats; rep++ {
		for i := range res {
			if res[i].Err != nil {
				continue
			}
			b.logf("upstream %s, run %d of %d: %d msg/s for %s after %s warm-up", res[i].Target, rep, cfg.Repeats, int(cfg.Rate), cfg.Window, cfg.Warmup)
			var run upstreamRun
			var err error
			switch res[i].Target {
			case targetGateway:
				run, err = b.upstreamGateway(ctx)
			case targetPlainMQTT:
				run, err = b.upstreamPlainChargemq(ctx)
			case targetMosquitto:
				run, err = b.upstreamMosquitto(ctx)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, fmt.Errorf("upstream %s: %w", res[i].Target, err)
			}
			b.logf("  delivered %.0f msg/s, server CPU %.1f µs/msg, load generator %.1f µs/msg, lost %d",
				run.Delivered, run.usPerMsg(), run.loadUSPerMsg(), run.Lost)
			res[i].Runs = append(res[i].Runs, run)
		}
	}
	return res, nil
}

// upstreamGateway: sim charge points send Heartbeats at cfg.Rate through chargemq's OCPP
// listener; one subscriber on ocpp/cp/+ counts what arrives.
func (b *bench) upstreamGateway(ctx context.Context) (upstreamRun, error) {
	cfg := b.cfg.Upstream
	s, err := b.startServer(ctx)
	if err != nil {
		return upstreamRun{}, err
	}
	defer s.stop(stopGrace)
	var cnt counter
	subscriber, err := dialMQTT(ctx, s.MQTT, "bench-subscriber", cnt.add)
	if err != nil {
		return upstreamRun{}, err
	}
	defer subscriber.close()
	if err := subscriber.subscribe(ctx, "ocpp/cp/+", cfg.QoS); err != nil {
		return upstreamRun{}, err
	}

	opts := sim.DefaultOptions()
	opts.URL = "ws://" + s.OCPP + "/ocpp"
	opts.MQTTURL = "mqtt://" + s.MQTT
	opts.Count = cfg.CPs
	opts.IDPrefix = "up-"
	opts.ConnectRate = 1000
	opts.CallRate = cfg.Rate
	opts.Action = sim.ActionHeartbeat
	opts.Duration = cfg.Warmup + cfg.Window + 2*time.Second
	run := simRun(ctx, opts)
	defer run.cancel()

	n, err := s.awaitConnected(ctx, int64(cfg.CPs), time.Duration(cfg.CPs)*time.Millisecond+30*time.Second, run.done)
	if err != nil {
		return upstreamRun{}, err
	}
	if n < int64(cfg.CPs) {
		return upstreamRun{}, fmt.Errorf("only %d of %d charge points connected", n, cfg.CPs)
	}
	published := func() int64 {
		st, err := s.stats(ctx)
		if err != nil {
			return 0
		}
		return int64(st.Published)
	}
	w, err := measureWindow(ctx, s.pid(), cfg.Warmup, cfg.Window, run.done, &cnt, published)
	if err != nil {
		return upstreamRun{}, err
	}
	rep, err := run.wait()
	if err != nil {
		return upstreamRun{}, err
	}
	// Every call the charge points wrote is one message on ocpp/cp/<cid> (the gateway's presence
	// messages go to ocpp/presence/+, which the subscriber does not see).
	cnt.awaitDrain(ctx, rep.Upstream.Sent, 2*time.Second, 10*time.Second)
	w.Lost = rep.Upstream.Sent - cnt.msgs.Load()
	w.Skipped = rep.Upstream.Skipped
	if rep.Connections.Dropped > 0 {
		return w, fmt.Errorf("%d charge points dropped: %v", rep.Connections.Dropped, rep.Connections.DropReasons)
	}
	if err := subscriber.failed(); err != nil {
		return w, fmt.Errorf("subscriber: %w", err)
	}
	return w, s.alive()
}

// upstreamPlainChargemq: paho publishers → chargemq's embedded mochi → one subscriber.
func (b *bench) upstreamPlainChargemq(ctx context.Context) (upstreamRun, error) {
	s, err := b.startServer(ctx)
	if err != nil {
		return upstreamRun{}, err
	}
	defer s.stop(stopGrace)
	run, err := b.upstreamPlain(ctx, s.MQTT, s.pid())
	if err != nil {
		return run, err
	}
	return run, s.alive()
}

// upstreamMosquitto: the same load through Mosquitto.
func (b *bench) upstreamMosquitto(ctx context.Context) (upstreamRun, error) {
	m, err := startMosquitto(ctx, b.cfg.Mosquitto, b.dir)
	if err != nil {
		return upstreamRun{}, err
	}
	defer m.stop(stopGrace)
	run, err := b.upstreamPlain(ctx, m.Addr, m.pid())
	if err != nil {
		return run, err
	}
	return run, m.alive()
}

// upstreamPlain is the plain-MQTT load against the broker at addr, process pid: Publishers
// clients publish the gateway's Heartbeat message at Rate on mqtt/cp/up-NNN (as long as the
// gateway's ocpp/cp/up-NNN), one subscriber on mqtt/cp/+ counts.
func (b *bench) upstreamPlain(ctx context.Context, addr string, pid int) (upstreamRun, error) {
	cfg := b.cfg.Upstream
	var cnt counter
	subscriber, err := dialMQTT(ctx, addr, "bench-subscriber", cnt.add)
	if err != nil {
		return upstreamRun{}, err
	}
	defer subscriber.close()
	if err := subscriber.subscribe(ctx, "mqtt/cp/+", cfg.QoS); err != nil {
		return upstreamRun{}, err
	}
	load := &publishLoad{rate: cfg.Rate, qos: cfg.QoS}
	width := len(strconv.Itoa(cfg.CPs))
	for i := 1; i <= cfg.CPs; i++ {
		load.topics = append(load.topics, fmt.Sprintf("mqtt/cp/up-%0*d", width, i))
	}
	defer func() {
		for _, c := range load.clients {
			c.close()
		}
	}()
	for i := 0; i < cfg.Publishers; i++ {
		c, err := dialMQTT(ctx, addr, fmt.Sprintf("bench-publisher-%d", i), nil)
		if err != nil {
			return upstreamRun{}, err
		}
		load.clients = append(load.clients, c)
	}
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	var loadErr error
	go func() {
		defer close(loadDone)
		loadErr = load.run(ctx, stop)
	}()
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-loadDone
	}
	defer stopLoad()

	w, err := measureWindow(ctx, pid, cfg.Warmup, cfg.Window, loadDone, &cnt, load.sent.Load)
	stopLoad()
	if err != nil {
		return upstreamRun{}, errors.Join(err, loadErr)
	}
	if loadErr != nil {
		return upstreamRun{}, loadErr
	}
	cnt.awaitDrain(ctx, load.sent.Load(), 2*time.Second, 10*time.Second)
	w.Lost = load.sent.Load() - cnt.msgs.Load()
	w.Skipped = load.skipped.Load()
	if n := load.failed.Load(); n > 0 {
		return w, fmt.Errorf("%d publishes failed", n)
	}
	return w, subscriber.failed()
}

// measureWindow waits warmup, then measures the server's CPU, this process's CPU, the
// messages offered and those received by sub over window. It fails when abort is closed first
// (the load ended early).
func measureWindow(ctx context.Context, pid int, warmup, window time.Duration, abort <-chan struct{},
	sub *counter, offered func() int64) (upstreamRun, error) {
	if err := sleep(ctx, warmup, abort); err != nil {
		return upstreamRun{}, err
	}
	o0 := offered()
	c0, err := readCPU(pid)
	if err != nil {
		return upstreamRun{}, err
	}
	l0, err := readCPU(0)
	if err != nil {
		return upstreamRun{}, err
	}
	n0, b0, t0 := sub.msgs.Load(), sub.bytes.Load(), time.Now()
	if err := sleep(ctx, window, abort); err != nil {
		return upstreamRun{}, err
	}
	n1, b1, el := sub.msgs.Load(), sub.bytes.Load(), time.Since(t0)
	c1, err := readCPU(pid)
	if err != nil {
		return upstreamRun{}, err
	}
	l1, err := readCPU(0)
	if err != nil {
		return upstreamRun{}, err
	}
	o1 := offered()
	return upstreamRun{
		Window:    el,
		Offered:   float64(o1-o0) / el.Seconds(),
		Delivered: float64(n1-n0) / el.Seconds(),
		Msgs:      n1 - n0,
		ServerCPU: c1.Sub(c0).Total(),
		LoadCPU:   l1.Sub(l0).Total(),
		AvgBytes:  perMsgBytes(b1-b0, n1-n0),
	}, nil
}

// errEndedEarly is returned by sleep when the load it waits beside ended first.
var errEndedEarly = errors.New("benchsuite: the load ended before the measurement did")

// sleep waits d, unless ctx ends or abort is closed first.
func sleep(ctx context.Context, d time.Duration, abort <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-abort:
		return errEndedEarly
	case <-ctx.Done():
		return ctx.Err()
	}
}

// simRunning is a sim.Run on its own goroutine.
type simRunning struct {
	done   chan struct{} // closed when Run has returned
	rep    sim.Report
	err    error
	cancel context.CancelFunc
}

// simRun starts sim.Run(opts). The caller must wait (or defer cancel, which also waits), so
// the run's goroutines have all ended before the caller returns.
func simRun(ctx context.Context, opts sim.Options) *simRunning {
	ctx, cancel := context.WithCancel(ctx)
	r := &simRunning{done: make(chan struct{})}
	r.cancel = func() { cancel(); <-r.done }
	go func() {
		defer close(r.done)
		r.rep, r.err = sim.Run(ctx, opts, nil)
	}()
	return r
}

// wait returns the run's report once it has ended.
func (r *simRunning) wait() (sim.Report, error) {
	<-r.done
	return r.rep, r.err
}
