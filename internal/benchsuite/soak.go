package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chargemq/chargemq/internal/sim"
)

// errSoakFailed is returned when a soak check fails; the report says which.
var errSoakFailed = errors.New("soak failed")

// soakConfig is what the soak is told.
type soakConfig struct {
	Bin            string
	Write          string
	Duration       time.Duration // the steady phase, after every charge point connected
	CPs            int
	ConnectRate    float64
	Heartbeat      time.Duration
	CommandRate    float64
	Sample         time.Duration
	Warmup         time.Duration // 0: min(60 s, Duration/5)
	Tolerance      float64       // last third's max ≤ (1+Tolerance) × first third's max
	GoroutineSlack int           // goroutines allowed above the baseline after every disconnect
}

func parseSoakFlags(args []string, stderr io.Writer) (soakConfig, error) {
	c := soakConfig{Bin: "bin/chargemq", Duration: 10 * time.Minute, CPs: 10000, ConnectRate: 1000,
		Heartbeat: 30 * time.Second, CommandRate: 20, Sample: 10 * time.Second, Tolerance: 0.10, GoroutineSlack: 5}
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return c, fmt.Errorf("SOAK_DURATION: %w", err)
		}
		c.Duration = d
	}
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Bin, "bin", c.Bin, "the chargemq binary")
	fs.StringVar(&c.Write, "write", "", "rewrite the section between "+soakBegin+" and "+soakEnd+" of this file (default: print it)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "steady phase (default $SOAK_DURATION, else 10m)")
	fs.IntVar(&c.CPs, "cps", c.CPs, "charge points")
	fs.Float64Var(&c.ConnectRate, "connect-rate", c.ConnectRate, "charge points dialled per second")
	fs.DurationVar(&c.Heartbeat, "heartbeat", c.Heartbeat, "heartbeat interval the responder's BootNotification answer gives")
	fs.Float64Var(&c.CommandRate, "command-rate", c.CommandRate, "Reset commands per second over MQTT")
	fs.DurationVar(&c.Sample, "sample", c.Sample, "sampling interval of RSS, goroutines and descriptors")
	fs.DurationVar(&c.Warmup, "warmup", 0, "samples left out of the flatness check (0: min(60s, duration/5))")
	fs.Float64Var(&c.Tolerance, "tolerance", c.Tolerance, "allowed growth of the last third's max over the first third's")
	fs.IntVar(&c.GoroutineSlack, "goroutine-slack", c.GoroutineSlack, "goroutines allowed above the baseline after all disconnect")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	if c.Duration < 3*c.Sample {
		errs = append(errs, fmt.Errorf("-duration %s: must hold at least 3 samples of -sample %s", c.Duration, c.Sample))
	}
	if c.CPs <= 0 || c.ConnectRate <= 0 || c.Sample <= 0 || c.Tolerance < 0 || c.GoroutineSlack < 0 || c.Heartbeat < time.Second {
		errs = append(errs, errors.New("-cps, -connect-rate, -sample must be above zero, -heartbeat at least 1s, -tolerance and -goroutine-slack not negative"))
	}
	if c.Warmup == 0 {
		c.Warmup = min(time.Minute, c.Duration/5)
	}
	return c, errors.Join(errs...)
}

// command is the command line that reproduces the soak.
func (c soakConfig) command() string {
	return fmt.Sprintf("go run ./internal/benchsuite soak -duration %s -cps %d -connect-rate %g -heartbeat %s -command-rate %g -sample %s -warmup %s -tolerance %g -goroutine-slack %d",
		c.Duration, c.CPs, c.ConnectRate, c.Heartbeat, c.CommandRate, c.Sample, c.Warmup, c.Tolerance, c.GoroutineSlack)
}

// soakSample is one reading of the server.
type soakSample struct {
	At         time.Duration // since every charge point connected
	RSS        uint64
	Goroutines int
	FDs        int
	Connected  int64
}

// flatness is the check of one series: the samples after the warm-up in thirds.
type flatness struct {
	Name              string
	FirstMax, LastMax float64
	Min, Max          float64
	Samples           int
	OK                bool
	Err               error // too few samples
	format            func(float64) string
}

// checkFlat is the flatness rule: the largest value of the last third of the samples is within
// tolerance of the largest of the first third. Maxima, not means, so one early spike (a GC
// cycle) does not hide a slow climb, and it takes at least 3 samples.
func checkFlat(values []float64, tolerance float64) (firstMax, lastMax float64, ok bool, err error) {
	if len(values) < 3 {
		return 0, 0, false, fmt.Errorf("%d samples after the warm-up, need at least 3", len(values))
	}
	third := len(values) / 3
	firstMax, lastMax = values[0], values[len(values)-third]
	for _, v := range values[:third] {
		firstMax = max(firstMax, v)
	}
	for _, v := range values[len(values)-third:] {
		lastMax = max(lastMax, v)
	}
	return firstMax, lastMax, lastMax <= firstMax*(1+tolerance), nil
}

// soakResult is what the soak found.
type soakResult struct {
	Machine                          machineInfo
	Start                            time.Time
	Took                             time.Duration
	Ramp                             time.Duration // start of the sim until every charge point connected
	ConnectedAtSteady                int64
	Baseline                         soakSample
	Samples                          []soakSample
	Flat                             []flatness
	Report                           sim.Report
	GoroutinesAfter, FDsAfter        int
	RSSAfter                         uint64
	ConnectedAfter                   int64
	BackIn                           time.Duration
	GoroutinesBack, NoDrops, Success bool
	LogProblems                      []string
}

func runSoak(ctx context.Context, cfg soakConfig, stdout, stderr io.Writer) error {
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "benchsuite soak: "+format+"\n", args...) }
	if _, err := os.Stat(cfg.Bin); err != nil {
		return fmt.Errorf("%v (run make build first)", err)
	}
	res := soakResult{Start: time.Now(), Machine: readMachine(ctx, cfg.Bin, "/usr/sbin/mosquitto")}
	dir, err := os.MkdirTemp("", "chargemq-soak-")
	if err != nil {
		return err
	}
	keep := true // the log is kept unless the soak passed
	defer func() {
		if keep {
			logf("server log kept in %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	s, err := startChargemq(ctx, cfg.Bin, filepath.Join(dir, "chargemq.log"))
	if err != nil {
		return err
	}
	defer s.stop(stopGrace)
	if err := sleep(ctx, settle, nil); err != nil {
		return err
	}
	base, err := readSample(ctx, s)
	if err != nil {
		return err
	}
	res.Baseline = base
	logf("%d charge points at %g/s, heartbeat %s, %g commands/s, %s steady; baseline RSS %s MB, %d goroutines, %d fds",
		cfg.CPs, cfg.ConnectRate, cfg.Heartbeat, cfg.CommandRate, cfg.Duration, mb(base.RSS), base.Goroutines, base.FDs)

	opts := sim.DefaultOptions()
	opts.URL = "ws://" + s.OCPP + "/ocpp"
	opts.MQTTURL = "mqtt://" + s.MQTT
	opts.Count = cfg.CPs
	opts.IDPrefix = "soak-"
	opts.ConnectRate = cfg.ConnectRate
	opts.CallRate = 0
	opts.HeartbeatInterval = cfg.Heartbeat
	opts.Respond = true
	opts.CommandRate = cfg.CommandRate
	opts.Duration = cfg.Duration
	t0 := time.Now()
	run := simRun(ctx, opts)
	defer run.cancel()

	rampLimit := time.Duration(float64(cfg.CPs)/cfg.ConnectRate*float64(time.Second)) + time.Minute
	if res.ConnectedAtSteady, err = s.awaitConnected(ctx, int64(cfg.CPs), rampLimit, run.done); err != nil {
		return err
	}
	steady := time.Now()
	res.Ramp = steady.Sub(t0)
	logf("%d connected after %s", res.ConnectedAtSteady, res.Ramp.Round(time.Millisecond))

	// Samples are taken during the steady phase only: the simulator's starts when its last dial
	// has ended, which is when the server counts the last charge point, and one taken as the
	// charge points close would measure the drain.
	lastSample := cfg.Duration - 2*time.Second
	tick := time.NewTicker(cfg.Sample)
	defer tick.Stop()
sampling:
	for {
		select {
		case <-tick.C:
		case <-run.done:
			break sampling
		case <-ctx.Done():
			return ctx.Err()
		}
		if time.Since(steady) > lastSample {
			continue // the run ends by itself within a sample or two
		}
		sm, err := readSample(ctx, s)
		if err != nil {
			return err
		}
		sm.At = time.Since(steady)
		res.Samples = append(res.Samples, sm)
		logf("%6s  RSS %s MB  goroutines %s  fds %s  connected %s", sm.At.Round(time.Second), mb(sm.RSS),
			thousands(int64(sm.Goroutines)), thousands(int64(sm.FDs)), thousands(sm.Connected))
	}
	if res.Report, err = run.wait(); err != nil {
		return err
	}
	if res.Report.Interrupted {
		return errors.New("interrupted: nothing written")
	}

	// Every charge point has closed: the goroutines go back to the baseline.
	back := time.Now()
	deadline := back.Add(time.Minute)
	for {
		sm, err := readSample(ctx, s)
		if err != nil {
			return err
		}
		res.GoroutinesAfter, res.FDsAfter, res.RSSAfter, res.ConnectedAfter = sm.Goroutines, sm.FDs, sm.RSS, sm.Connected
		res.GoroutinesBack = sm.Connected == 0 && sm.Goroutines <= base.Goroutines+cfg.GoroutineSlack
		if res.GoroutinesBack || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, 500*time.Millisecond, nil); err != nil {
			return err
		}
	}
	res.BackIn = time.Since(back)
	if err := s.alive(); err != nil {
		return err
	}
	s.stop(stopGrace)
	res.LogProblems = s.logProblems()
	res.Took = time.Since(res.Start)
	res.Machine.LoadEnd = loadAverage()

	res.Flat = flatChecks(cfg, res.Samples)
	res.NoDrops = res.Report.Connections.Dropped == 0
	res.Success = res.NoDrops && res.GoroutinesBack
	for _, f := range res.Flat {
		res.Success = res.Success && f.OK
	}
	section := renderSoak(cfg, &res)
	if cfg.Write == "" {
		fmt.Fprint(stdout, section)
	} else if err := writeSection(cfg.Write, soakBegin, soakEnd, section); err != nil {
		return err
	} else {
		logf("wrote %s", cfg.Write)
	}
	if !res.Success {
		var why []string
		for _, f := range res.Flat {
			if !f.OK {
				if f.Err != nil {
					why = append(why, fmt.Sprintf("%s not checked: %v", f.Name, f.Err))
				} else {
					why = append(why, fmt.Sprintf("%s not flat (%s → %s)", f.Name, f.format(f.FirstMax), f.format(f.LastMax)))
				}
			}
		}
		if !res.NoDrops {
			why = append(why, fmt.Sprintf("%d charge points dropped (%s)", res.Report.Connections.Dropped, joinReasons(res.Report.Connections.DropReasons)))
		}
		if !res.GoroutinesBack {
			why = append(why, fmt.Sprintf("goroutines %d after disconnecting, baseline %d (+%d allowed), %d still connected",
				res.GoroutinesAfter, base.Goroutines, cfg.GoroutineSlack, res.ConnectedAfter))
		}
		return fmt.Errorf("%w: %s", errSoakFailed, strings.Join(why, "; "))
	}
	logf("PASS")
	keep = false
	return nil
}

// readSample reads the server's RSS, goroutines, descriptors and connected charge points.
func readSample(ctx context.Context, s *chargemq) (soakSample, error) {
	st, err := s.stats(ctx)
	if err != nil {
		return soakSample{}, err
	}
	rss, err := readRSS(s.pid())
	if err != nil {
		return soakSample{}, err
	}
	fds, err := countFDs(s.pid())
	if err != nil {
		return soakSample{}, err
	}
	return soakSample{RSS: rss, Goroutines: st.Goroutines, FDs: fds, Connected: st.OCPP.Connected}, nil
}

// flatChecks checks RSS, goroutines and descriptors over the samples after the warm-up.
func flatChecks(cfg soakConfig, samples []soakSample) []flatness {
	var kept []soakSample
	for _, s := range samples {
		if s.At >= cfg.Warmup {
			kept = append(kept, s)
		}
	}
	series := []struct {
		name   string
		get    func(soakSample) float64
		format func(float64) string
	}{
		{"RSS (MB)", func(s soakSample) float64 { return float64(s.RSS) }, func(v float64) string { return mb(uint64(v)) }},
		{"goroutines", func(s soakSample) float64 { return float64(s.Goroutines) }, func(v float64) string { return thousands(int64(v)) }},
		{"open descriptors", func(s soakSample) float64 { return float64(s.FDs) }, func(v float64) string { return thousands(int64(v)) }},
	}
	var out []flatness
	for _, se := range series {
		vals := make([]float64, len(kept))
		for i, s := range kept {
			vals[i] = se.get(s)
		}
		f := flatness{Name: se.name, Samples: len(vals), format: se.format}
		f.FirstMax, f.LastMax, f.OK, f.Err = checkFlat(vals, cfg.Tolerance)
		for i, v := range vals {
			if i == 0 || v < f.Min {
				f.Min = v
			}
			f.Max = max(f.Max, v)
		}
		out = append(out, f)
	}
	return out
}

// renderSoak writes the generated soak section.
func renderSoak(cfg soakConfig, res *soakResult) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	verdict := "**PASS**"
	if !res.Success {
		verdict = "**FAIL**"
	}
	p("_Generated by `make soak` on %s (SOAK_DURATION=%s) in %s: %s. Everything between the `soak` markers is "+
		"rewritten by each run._\n\n", res.Start.UTC().Format("2006-01-02 15:04 MST"), cfg.Duration, res.Took.Round(time.Second), verdict)
	p("%s\n\n", code(cfg.command()))
	p("**Machine**: %s. Load average %s before, %s after.\n\n", res.Machine.summary(), res.Machine.LoadStart, res.Machine.LoadEnd)
	p("%s charge points connect at %s/s (all connected after %s), send a BootNotification, then heartbeat every %s "+
		"(the simulator's MQTT responder answers every call, and its BootNotification answer gives the interval), while "+
		"%g Reset commands/s go to them over MQTT, for %s. The server's RSS, goroutines and open descriptors "+
		"(`/proc/<pid>/fd`) are sampled every %s. **Flat** means: leaving out the first %s, the largest sample of "+
		"the last third is within %g %% of the largest of the first third (maxima, so an early spike cannot hide a "+
		"slow climb). The soak fails on a series that is not flat, on any unexpected disconnect (the simulator's "+
		"`dropped`), and when the goroutines are not back within %d of the baseline after every charge point has "+
		"disconnected.\n\n",
		thousands(int64(cfg.CPs)), thousands(int64(cfg.ConnectRate)), res.Ramp.Round(100*time.Millisecond), cfg.Heartbeat,
		cfg.CommandRate, cfg.Duration, cfg.Sample, cfg.Warmup, cfg.Tolerance*100, cfg.GoroutineSlack)
	t := newTable("check", "baseline (idle)", "first third max → last third max", "range after warm-up", "samples", "result")
	for _, f := range res.Flat {
		var baseline string
		switch f.Name {
		case "RSS (MB)":
			baseline = mb(res.Baseline.RSS)
		case "goroutines":
			baseline = thousands(int64(res.Baseline.Goroutines))
		default:
			baseline = thousands(int64(res.Baseline.FDs))
		}
		result := "flat"
		if f.Err != nil {
			result = "**not checked: " + f.Err.Error() + "**"
		} else if !f.OK {
			result = "**not flat**"
		}
		change := ""
		if f.FirstMax > 0 {
			change = fmt.Sprintf(" (%+.1f %%)", (f.LastMax/f.FirstMax-1)*100)
		}
		t.row(f.Name, baseline, f.format(f.FirstMax)+" → "+f.format(f.LastMax)+change,
			f.format(f.Min)+" – "+f.format(f.Max), fmt.Sprint(f.Samples), result)
	}
	c := res.Report.Connections
	drops := thousands(c.Dropped)
	if len(c.DropReasons) > 0 {
		drops += " (" + joinReasons(c.DropReasons) + ")"
	}
	t.row("unexpected disconnects", "", drops, "", "", passFail(res.NoDrops))
	t.row("goroutines after every charge point disconnected", thousands(int64(res.Baseline.Goroutines)),
		fmt.Sprintf("%s after %s (%s still connected)", thousands(int64(res.GoroutinesAfter)), res.BackIn.Round(100*time.Millisecond), thousands(res.ConnectedAfter)),
		fmt.Sprintf("allowed ≤ %s", thousands(int64(res.Baseline.Goroutines+cfg.GoroutineSlack))), "", passFail(res.GoroutinesBack))
	t.row("descriptors, RSS after", fmt.Sprintf("%s fds, %s MB", thousands(int64(res.Baseline.FDs)), mb(res.Baseline.RSS)),
		fmt.Sprintf("%s fds, %s MB", thousands(int64(res.FDsAfter)), mb(res.RSSAfter)), "", "", "reported")
	b.WriteString(t.String())
	u, d := res.Report.Upstream, res.Report.Downstream
	p("\nTraffic: %s of %s charge points connected (%s failed dials). Upstream %s calls sent (%s), %s answered, %s "+
		"timed out, %s errors%s, latency p50 %s / p99 %s / max %s ms. Downstream %s commands sent, %s answered, %s timed "+
		"out, %s errors%s, latency p50 %s / p99 %s / max %s ms.\n",
		thousands(c.Connected), thousands(int64(cfg.CPs)), thousands(c.Failed), thousands(u.Sent), joinReasons(u.SentByAction),
		thousands(u.Answered), thousands(u.TimedOut), thousands(u.Errors), parenthesised(u.ErrorCodes),
		num(u.Latency.P50), num(u.Latency.P99), num(u.Latency.Max),
		thousands(d.Sent), thousands(d.Answered), thousands(d.TimedOut), thousands(d.Errors), parenthesised(d.ErrorCodes),
		num(d.Latency.P50), num(d.Latency.P99), num(d.Latency.Max))
	if len(res.LogProblems) > 0 {
		p("\nThe server logged: %s.\n", strings.Join(res.LogProblems, "; "))
	}
	return b.String()
}

// parenthesised prints counts as " (a 3, b 1)", "" when there are none.
func parenthesised(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	return " (" + joinReasons(m) + ")"
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "**fail**"
}
