// Command benchsuite measures bin/chargemq as a separate process, against baselines run in the
// same invocation, and writes the tables of docs/BENCHMARKS.md (`make bench`); its soak
// subcommand holds 10,000 charge points for ten minutes and checks that nothing grows
// (`make soak`).
//
// Every server it measures (chargemq, Mosquitto) is a child process, so its CPU and memory
// are read from /proc alone; the load (internal/sim and paho.golang clients) runs in this
// process, on the same machine. Everything listens and connects on 127.0.0.1 only. Children
// are stopped on every path, a signal included, and are killed by the kernel should this
// process die first.
//
// Usage:
//
//	go run ./internal/benchsuite bench [-write docs/BENCHMARKS.md] [-only upstream,latency,…] [flags]
//	go run ./internal/benchsuite soak [-duration 10m] [-write docs/BENCHMARKS.md] [flags]
//
// It exits 1 when a scenario could not run, or when the soak's checks fail; numbers alone
// never fail it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return // the flags were printed
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchsuite:", err)
		os.Exit(1)
	}
}

// run is the program without the process: args without the program name.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: benchsuite bench|soak [flags]  (-h for the flags)")
		return errors.New("no subcommand")
	}
	switch args[0] {
	case "bench":
		cfg, err := parseBenchFlags(args[1:], stderr)
		if err != nil {
			return err
		}
		b := &bench{cfg: cfg, log: stderr}
		return b.run(ctx, stdout)
	case "soak":
		cfg, err := parseSoakFlags(args[1:], stderr)
		if err != nil {
			return err
		}
		return runSoak(ctx, cfg, stdout, stderr)
	}
	return fmt.Errorf("unknown subcommand %q: bench or soak", args[0])
}

// Scenarios of bench, in run order (cheap ones first, so a broken setup shows at once). The
// storm runs before the memory scenario: right after 19,000 connections closed, the suite's
// own aftermath slowed the storm's handshakes until more than ocpp.max_handshakes overlapped
// and 928 of its 2,000 dials were refused 503, which no quiet server sees.
var scenarios = []string{"startup", "upstream", "latency", "storm", "memory", "gobench"}

// benchConfig is everything bench is told.
type benchConfig struct {
	Bin, Mosquitto, Go, ModDir string
	Write                      string   // the document to rewrite; "" prints the section on stdout
	Only                       []string // scenarios to run; all when empty
	StartupRuns                int
	Upstream                   upstreamConfig
	Latency                    latencyConfig
	Memory                     memoryConfig
	GoBench                    goBenchConfig
}

func defaultBenchConfig() benchConfig {
	return benchConfig{
		Bin: "bin/chargemq", Mosquitto: "/usr/sbin/mosquitto", Go: "go", ModDir: ".",
		StartupRuns: 5,
		Upstream: upstreamConfig{CPs: 500, Rate: 2000, Warmup: 5 * time.Second, Window: 20 * time.Second,
			Publishers: 4, Repeats: 3, QoS: 2},
		Latency: latencyConfig{CPs: 1000, Rates: []float64{1000, 5000}, Duration: 20 * time.Second},
		Memory:  memoryConfig{Counts: []int{1000, 5000, 19000}, Hold: 10 * time.Second, ConnectRate: 3000},
		GoBench: goBenchConfig{Bench: ".", Packages: "./..."},
	}
}

func parseBenchFlags(args []string, stderr io.Writer) (benchConfig, error) {
	c := defaultBenchConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Bin, "bin", c.Bin, "the chargemq binary to measure")
	fs.StringVar(&c.Mosquitto, "mosquitto", c.Mosquitto, "the Mosquitto binary of the reference run")
	fs.StringVar(&c.Go, "go", c.Go, "the go command, for the microbenchmarks")
	fs.StringVar(&c.ModDir, "C", c.ModDir, "the module root (go test runs there)")
	fs.StringVar(&c.Write, "write", "", "rewrite the section between "+benchBegin+" and "+benchEnd+" of this file (default: print it)")
	only := fs.String("only", "", "comma-separated scenarios to run: "+strings.Join(scenarios, ","))
	fs.IntVar(&c.StartupRuns, "startup-runs", c.StartupRuns, "fresh starts timed to /readyz 200")
	fs.IntVar(&c.Upstream.CPs, "upstream-cps", c.Upstream.CPs, "charge points (and plain-MQTT topics) of the upstream scenario")
	fs.Float64Var(&c.Upstream.Rate, "upstream-rate", c.Upstream.Rate, "messages per second in total")
	fs.DurationVar(&c.Upstream.Warmup, "upstream-warmup", c.Upstream.Warmup, "warm-up before the measured window")
	fs.DurationVar(&c.Upstream.Window, "upstream-window", c.Upstream.Window, "the measured window")
	fs.IntVar(&c.Upstream.Publishers, "upstream-publishers", c.Upstream.Publishers, "plain-MQTT publishing clients")
	fs.IntVar(&c.Upstream.Repeats, "upstream-repeats", c.Upstream.Repeats, "runs of each target (the median by CPU is reported)")
	qos := fs.Int("qos", int(c.Upstream.QoS), "QoS of the baseline publishes and of every subscription (the gateway's upstream QoS is its default, 2)")
	fs.IntVar(&c.Latency.CPs, "latency-cps", c.Latency.CPs, "charge points of the latency scenario")
	rates := fs.String("latency-rates", joinFloats(c.Latency.Rates), "comma-separated total call rates, one run each")
	fs.DurationVar(&c.Latency.Duration, "latency-duration", c.Latency.Duration, "steady phase of each latency run")
	counts := fs.String("memory-counts", joinInts(c.Memory.Counts), "comma-separated idle charge point counts, a fresh server each")
	fs.DurationVar(&c.Memory.Hold, "memory-hold", c.Memory.Hold, "how long the idle charge points are held (read at 70 % of it)")
	fs.Float64Var(&c.Memory.ConnectRate, "connect-rate", c.Memory.ConnectRate, "charge points dialled per second in the memory scenario")
	fs.StringVar(&c.GoBench.Bench, "gobench", c.GoBench.Bench, "the -bench regexp of the microbenchmarks")
	fs.StringVar(&c.GoBench.Benchtime, "gobench-benchtime", c.GoBench.Benchtime, "their -benchtime (default: go test's)")
	fs.StringVar(&c.GoBench.Packages, "gobench-packages", c.GoBench.Packages, "their package pattern")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	if *only != "" {
		for _, s := range strings.Split(*only, ",") {
			if !slices.Contains(scenarios, s) {
				errs = append(errs, fmt.Errorf("-only: unknown scenario %q (%s)", s, strings.Join(scenarios, ", ")))
			}
			c.Only = append(c.Only, s)
		}
		if c.Write != "" {
			errs = append(errs, errors.New("-only with -write would leave the document with some tables only: print (no -write) instead"))
		}
	}
	if *qos < 0 || *qos > 2 {
		errs = append(errs, fmt.Errorf("-qos %d: must be 0, 1 or 2", *qos))
	}
	c.Upstream.QoS = byte(*qos)
	var err error
	if c.Latency.Rates, err = parseFloats(*rates); err != nil {
		errs = append(errs, fmt.Errorf("-latency-rates: %w", err))
	}
	if c.Memory.Counts, err = parseInts(*counts); err != nil {
		errs = append(errs, fmt.Errorf("-memory-counts: %w", err))
	}
	positive := func(name string, ok bool) {
		if !ok {
			errs = append(errs, fmt.Errorf("%s: must be above zero", name))
		}
	}
	positive("-upstream-cps", c.Upstream.CPs > 0)
	positive("-upstream-rate", c.Upstream.Rate > 0)
	positive("-upstream-window", c.Upstream.Window > 0)
	positive("-upstream-publishers", c.Upstream.Publishers > 0)
	positive("-upstream-repeats", c.Upstream.Repeats > 0)
	positive("-latency-cps", c.Latency.CPs > 0)
	positive("-memory-hold", c.Memory.Hold > 0)
	positive("-connect-rate", c.Memory.ConnectRate > 0)
	positive("-startup-runs", c.StartupRuns > 0)
	return c, errors.Join(errs...)
}

// runs reports whether scenario is to run.
func (c benchConfig) runs(scenario string) bool {
	return len(c.Only) == 0 || slices.Contains(c.Only, scenario)
}

// command is the command line that reproduces one scenario's numbers.
func (c benchConfig) command(scenario string) string {
	d := defaultBenchConfig()
	a := []string{"go run ./internal/benchsuite bench -only " + scenario}
	add := func(name, v, def string) {
		if v != def {
			a = append(a, "-"+name+" "+shellQuote(v))
		}
	}
	add("bin", c.Bin, d.Bin)
	switch scenario {
	case "startup":
		a = append(a, "-startup-runs "+strconv.Itoa(c.StartupRuns))
	case "upstream":
		u := c.Upstream
		a = append(a, fmt.Sprintf("-upstream-cps %d -upstream-rate %g -upstream-warmup %s -upstream-window %s -upstream-publishers %d -upstream-repeats %d -qos %d",
			u.CPs, u.Rate, u.Warmup, u.Window, u.Publishers, u.Repeats, u.QoS))
		add("mosquitto", c.Mosquitto, d.Mosquitto)
	case "latency":
		a = append(a, fmt.Sprintf("-latency-cps %d -latency-rates %s -latency-duration %s",
			c.Latency.CPs, joinFloats(c.Latency.Rates), c.Latency.Duration))
	case "memory":
		a = append(a, fmt.Sprintf("-memory-counts %s -memory-hold %s -connect-rate %g",
			joinInts(c.Memory.Counts), c.Memory.Hold, c.Memory.ConnectRate))
	case "storm":
		// stormCount charge points, fixed
	case "gobench":
		return "go " + strings.Join(quoteAll(c.GoBench.args()), " ")
	}
	return strings.Join(a, " ")
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = shellQuote(a)
	}
	return out
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:,=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func joinFloats(v []float64) string {
	s := make([]string, len(v))
	for i, f := range v {
		s[i] = strconv.FormatFloat(f, 'g', -1, 64)
	}
	return strings.Join(s, ",")
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q: want positive numbers separated by commas", s)
		}
		out = append(out, v)
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q: want positive integers separated by commas", s)
		}
		out = append(out, v)
	}
	return out, nil
}

// bench is one run of the suite.
type bench struct {
	cfg benchConfig
	log io.Writer
	dir string // the servers' logs and Mosquitto's configuration

	mu      sync.Mutex
	servers []*chargemq // every chargemq started, for the WARN/ERROR lines they logged
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "benchsuite: "+format+"\n", args...)
}

// startServer starts a fresh chargemq (with extra serve arguments, if
// any) and remembers it for its log problems.
func (b *bench) startServer(ctx context.Context, extra ...string) (*chargemq, error) {
	b.mu.Lock()
	logPath := filepath.Join(b.dir, fmt.Sprintf("chargemq-%d.log", len(b.servers)+1))
	b.mu.Unlock()
	s, err := startChargemq(ctx, b.cfg.Bin, logPath, extra...)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.servers = append(b.servers, s)
	b.mu.Unlock()
	return s, nil
}

// logProblems is the WARN and ERROR messages every server logged, summed.
func (b *bench) logProblems() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	for _, s := range b.servers {
		s.mu.Lock()
		for k, n := range s.problems {
			out[k] += n
		}
		s.mu.Unlock()
	}
	return out
}

// benchResults is what a bench run measured; a scenario that failed has its error instead.
type benchResults struct {
	Machine           machineInfo
	Start             time.Time
	Took              time.Duration
	Startup           *startupResult
	Upstream          []upstreamResult
	Latency           []latencyResult
	Memory            []memoryResult
	Storm             []stormResult
	GoBench           *goBenchResult
	Errs              map[string]error
	ServerLogProblems map[string]int
	ScenariosRun      []string
	ScenarioDurations map[string]time.Duration
}

// run runs the scenarios and writes (or prints) the generated section. A scenario that fails
// is reported in its place and makes run return an error, after the others ran and the
// section was written; a cancelled context writes nothing.
func (b *bench) run(ctx context.Context, stdout io.Writer) error {
	if _, err := os.Stat(b.cfg.Bin); err != nil {
		return fmt.Errorf("%v (run make build first)", err)
	}
	dir, err := os.MkdirTemp("", "chargemq-bench-")
	if err != nil {
		return err
	}
	b.dir = dir
	keep := false // the logs are kept when a scenario failed
	defer func() {
		if keep {
			b.logf("server logs kept in %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	res := &benchResults{Start: time.Now(), Errs: map[string]error{}, ScenarioDurations: map[string]time.Duration{}}
	res.Machine = readMachine(ctx, b.cfg.Bin, b.cfg.Mosquitto)
	b.logf("machine: %s; load average %s", res.Machine.summary(), res.Machine.LoadStart)
	for _, sc := range scenarios {
		if !b.cfg.runs(sc) {
			continue
		}
		res.ScenariosRun = append(res.ScenariosRun, sc)
		t0 := time.Now()
		var err error
		switch sc {
		case "startup":
			var r startupResult
			if r, err = b.runStartup(ctx); err == nil {
				res.Startup = &r
			}
		case "upstream":
			res.Upstream, err = b.runUpstream(ctx)
		case "latency":
			res.Latency, err = b.runLatency(ctx)
		case "memory":
			res.Memory, err = b.runMemory(ctx)
		case "storm":
			res.Storm, err = b.runStorm(ctx)
		case "gobench":
			var r goBenchResult
			if r, err = b.runGoBench(ctx); err == nil || len(r.Lines) > 0 {
				res.GoBench = &r
			}
		}
		res.ScenarioDurations[sc] = time.Since(t0)
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted during %s: nothing written", sc)
		}
		if err != nil {
			b.logf("%s failed: %v", sc, err)
			res.Errs[sc] = err
			keep = true
		}
	}
	res.Took = time.Since(res.Start)
	res.Machine.LoadEnd = loadAverage()
	res.ServerLogProblems = b.logProblems()
	section := renderBench(b.cfg, res)
	if b.cfg.Write == "" {
		fmt.Fprint(stdout, section)
	} else {
		if err := writeSection(b.cfg.Write, benchBegin, benchEnd, section); err != nil {
			return err
		}
		b.logf("wrote %s (took %s)", b.cfg.Write, res.Took.Round(time.Second))
	}
	if len(res.Errs) > 0 {
		var errs []error
		for _, sc := range res.ScenariosRun {
			if err := res.Errs[sc]; err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", sc, err))
			}
		}
		return errors.Join(errs...)
	}
	return nil
}
