package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/chargemq/chargemq/internal/sim"
)

// memoryConfig is scenario 3: what an idle connected charge point costs, and how fast they
// connect.
type memoryConfig struct {
	Counts      []int
	Hold        time.Duration // from when the count settles; the reading is taken at 70 % of it
	ConnectRate float64
}

// memoryResult is one count's run.
type memoryResult struct {
	N                                int
	RSSBefore, RSSHeld               uint64
	GoroutinesBefore, GoroutinesHeld int
	FDsBefore, FDsHeld               int
	Connected                        int64 // charge points connected at the reading
	Refused                          map[string]uint64
	ServerCPU, LoadCPU               time.Duration // from before the ramp to the reading
	Report                           sim.Report    // the simulator at ConnectRate
	TopUp                            int           // charge points the second simulator dialled
	TopUpReport                      *sim.Report   // its report, when it ran
}

// perCP is a difference spread over the charge points connected at the reading.
func (m memoryResult) perCP(before, held float64) float64 {
	if m.Connected == 0 {
		return 0
	}
	return (held - before) / float64(m.Connected)
}

// connectRate is the sustained rate: charge points connected over the ramp.
func (m memoryResult) connectRate() float64 {
	if m.Report.RampSeconds == 0 {
		return 0
	}
	return float64(m.Report.Connections.Connected) / m.Report.RampSeconds
}

// settle is how long a fresh server is left alone after /readyz before the "before" reading.
const settle = time.Second

func (b *bench) runMemory(ctx context.Context) ([]memoryResult, error) {
	var out []memoryResult
	for _, n := range b.cfg.Memory.Counts {
		b.logf("memory: %d idle charge points at %g/s, held %s", n, b.cfg.Memory.ConnectRate, b.cfg.Memory.Hold)
		r, err := b.memoryRun(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("memory at %d: %w", n, err)
		}
		b.logf("  RSS %.1f → %.1f MiB (%.1f KiB/cp), goroutines %d → %d, connected %d, %.0f connects/s, failed %d, CPU per cp: server %.0f µs, suite %.0f µs",
			mib(r.RSSBefore), mib(r.RSSHeld), r.perCP(float64(r.RSSBefore), float64(r.RSSHeld))/1024,
			r.GoroutinesBefore, r.GoroutinesHeld, r.Connected, r.connectRate(), r.Report.Connections.Failed,
			r.perCP(0, float64(r.ServerCPU.Microseconds())), r.perCP(0, float64(r.LoadCPU.Microseconds())))
		out = append(out, r)
	}
	return out, nil
}

func (b *bench) memoryRun(ctx context.Context, n int) (memoryResult, error) {
	cfg := b.cfg.Memory
	s, err := b.startServer(ctx)
	if err != nil {
		return memoryResult{}, err
	}
	defer s.stop(stopGrace)
	if err := sleep(ctx, settle, nil); err != nil {
		return memoryResult{}, err
	}
	r := memoryResult{N: n}
	if r.RSSBefore, r.GoroutinesBefore, r.FDsBefore, err = b.readServer(ctx, s); err != nil {
		return r, err
	}
	cpu0, err := readCPU(s.pid())
	if err != nil {
		return r, err
	}
	load0, err := readCPU(0)
	if err != nil {
		return r, err
	}

	// The simulators run until cancelled, after the reading and the rest of the hold: a ramp's
	// end cannot be seen from outside, and the server's count settles later than the dials.
	opts := sim.DefaultOptions()
	opts.URL = "ws://" + s.OCPP + "/ocpp"
	opts.MQTTURL = "mqtt://" + s.MQTT
	opts.Count = n
	opts.IDPrefix = "idle-"
	opts.ConnectRate = cfg.ConnectRate
	opts.CallRate = 0
	opts.Duration = time.Hour // cancelled below
	run := simRun(ctx, opts)
	defer run.cancel()

	rampLimit := time.Duration(float64(n)/cfg.ConnectRate*float64(time.Second)) + 30*time.Second
	got, err := s.awaitSettled(ctx, int64(n), rampLimit, opts.Timeout+time.Second, run.done)
	if err != nil {
		return r, err
	}
	// Dials the server refused (HTTP 503 beyond ocpp.max_handshakes) or that timed out are not
	// retried by the simulator: a second one connects the rest, slowly, so the memory is read
	// at N. The connect rate is the first one's.
	var topUp *simRunning
	if missing := int64(n) - got; missing > 0 {
		r.TopUp = int(missing)
		b.logf("  %d of %d connected at %g/s; topping up %d at %g/s", got, n, cfg.ConnectRate, missing, topUpRate)
		topts := opts
		topts.Count = int(missing)
		topts.IDPrefix = "idle-topup-"
		topts.ConnectRate = topUpRate
		topUp = simRun(ctx, topts)
		defer topUp.cancel()
		limit := time.Duration(float64(missing)/topUpRate*float64(time.Second)) + 30*time.Second
		if _, err := s.awaitSettled(ctx, int64(n), limit, topts.Timeout+time.Second, topUp.done); err != nil {
			return r, err
		}
	}
	if err := sleep(ctx, cfg.Hold*7/10, run.done); err != nil {
		return r, fmt.Errorf("waiting to read the held charge points: %w", err)
	}
	st, err := s.stats(ctx)
	if err != nil {
		return r, err
	}
	r.Connected = st.OCPP.Connected
	r.Refused = st.OCPP.Refused
	if r.RSSHeld, r.GoroutinesHeld, r.FDsHeld, err = b.readServer(ctx, s); err != nil {
		return r, err
	}
	cpu1, err := readCPU(s.pid())
	if err != nil {
		return r, err
	}
	load1, err := readCPU(0)
	if err != nil {
		return r, err
	}
	r.ServerCPU, r.LoadCPU = cpu1.Sub(cpu0).Total(), load1.Sub(load0).Total()
	if err := sleep(ctx, cfg.Hold-cfg.Hold*7/10, run.done); err != nil {
		return r, fmt.Errorf("holding the charge points: %w", err)
	}
	run.cancel()
	if r.Report, err = run.wait(); err != nil {
		return r, err
	}
	if topUp != nil {
		topUp.cancel()
		rep, err := topUp.wait()
		if err != nil {
			return r, err
		}
		r.TopUpReport = &rep
	}
	return r, s.alive()
}

// topUpRate is the connect rate of the second simulator that connects what the first could
// not.
const topUpRate float64 = 500

// readServer reads the server's RSS, goroutines and open descriptors.
func (b *bench) readServer(ctx context.Context, s *chargemq) (rss uint64, goroutines, fds int, err error) {
	st, err := s.stats(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	if rss, err = readRSS(s.pid()); err != nil {
		return 0, 0, 0, err
	}
	if fds, err = countFDs(s.pid()); err != nil {
		return 0, 0, 0, err
	}
	return rss, st.Goroutines, fds, nil
}

// startupResult is scenario 3's other half: fresh starts of an idle server.
type startupResult struct {
	Ready []time.Duration // process start → first /readyz 200
	RSS   []uint64        // VmRSS right after ready
}

func (b *bench) runStartup(ctx context.Context) (startupResult, error) {
	var out startupResult
	b.logf("startup: %d fresh starts, time to /readyz 200 and RSS right after", b.cfg.StartupRuns)
	for i := 0; i < b.cfg.StartupRuns; i++ {
		s, err := b.startServer(ctx)
		if err != nil {
			return out, err
		}
		rss, err := readRSS(s.pid())
		s.stop(stopGrace)
		if err != nil {
			return out, err
		}
		out.Ready = append(out.Ready, s.Ready)
		out.RSS = append(out.RSS, rss)
	}
	b.logf("  ready median %s, RSS median %.1f MiB", medianDuration(out.Ready), mib(medianUint(out.RSS)))
	return out, nil
}

func medianDuration(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)/2]
}

func maxDuration(d []time.Duration) time.Duration {
	var m time.Duration
	for _, v := range d {
		m = max(m, v)
	}
	return m
}

func medianUint(v []uint64) uint64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]uint64(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)/2]
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
