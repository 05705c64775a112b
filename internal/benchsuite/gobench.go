package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// goBenchConfig is scenario 4: the module's Go microbenchmarks.
type goBenchConfig struct {
	Bench     string // -bench regexp
	Benchtime string // -benchtime, "" for go test's default
	Packages  string // package pattern
}

// args is the go test command line.
func (c goBenchConfig) args() []string {
	a := []string{"test", "-run", "^$", "-bench", c.Bench, "-benchmem"}
	if c.Benchtime != "" {
		a = append(a, "-benchtime", c.Benchtime)
	}
	return append(a, c.Packages)
}

// metric is one "value unit" pair of a benchmark line beyond ns/op, B/op and allocs/op
// (MB/s from SetBytes, ReportMetric's custom units).
type metric struct {
	Value float64
	Unit  string
}

// benchLine is one result line of go test -bench.
type benchLine struct {
	Pkg         string
	Name        string // without the Benchmark prefix's -GOMAXPROCS suffix
	Procs       int    // the -N suffix, 0 when there is none
	Iterations  int64
	NsPerOp     float64
	BytesPerOp  float64 // -1 when not reported
	AllocsPerOp float64 // -1 when not reported
	Metrics     []metric
}

// goBenchResult is a go test -bench run.
type goBenchResult struct {
	Lines    []benchLine
	Failures []string // FAIL lines
	Err      error    // go test's exit status, when not 0
	Took     time.Duration
}

// parseGoBench reads go test -bench output. A benchmark that logs while it runs has its name
// on one line and its numbers on a later one; the name is carried over to them.
func parseGoBench(r io.Reader) ([]benchLine, []string, error) {
	var (
		lines    []benchLine
		failures []string
		pkg      string
		pending  string
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		text := sc.Text()
		if p, ok := strings.CutPrefix(text, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if strings.HasPrefix(text, "--- FAIL") || strings.HasPrefix(text, "FAIL\t") || text == "FAIL" {
			failures = append(failures, text)
			continue
		}
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		name := ""
		switch {
		case strings.HasPrefix(f[0], "Benchmark"):
			if len(f) == 1 {
				pending = f[0]
				continue
			}
			name, f = f[0], f[1:]
		case pending != "" && isInt(f[0]):
			name = pending
		default:
			continue
		}
		pending = ""
		l, ok := parseBenchFields(f)
		if !ok {
			continue // a Benchmark… line that is not a result (a log line that starts so)
		}
		l.Pkg = pkg
		l.Name, l.Procs = splitProcs(strings.TrimPrefix(name, "Benchmark"))
		lines = append(lines, l)
	}
	return lines, failures, sc.Err()
}

// parseBenchFields parses "N value unit value unit …".
func parseBenchFields(f []string) (benchLine, bool) {
	if len(f) < 3 || len(f)%2 != 1 {
		return benchLine{}, false
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return benchLine{}, false
	}
	l := benchLine{Iterations: n, NsPerOp: -1, BytesPerOp: -1, AllocsPerOp: -1}
	for i := 1; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return benchLine{}, false
		}
		switch unit := f[i+1]; unit {
		case "ns/op":
			l.NsPerOp = v
		case "B/op":
			l.BytesPerOp = v
		case "allocs/op":
			l.AllocsPerOp = v
		default:
			l.Metrics = append(l.Metrics, metric{Value: v, Unit: unit})
		}
	}
	return l, l.NsPerOp >= 0
}

// splitProcs splits "Upstream/Heartbeat/gateway-2" into the name and GOMAXPROCS.
func splitProcs(name string) (string, int) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name, 0
	}
	p, err := strconv.Atoi(name[i+1:])
	if err != nil || p <= 0 {
		return name, 0
	}
	return name[:i], p
}

func isInt(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// runGoBench runs go test in the module root, its output going to the log as it comes. The go
// command and the test binaries it starts are in their own process group, killed together when
// ctx ends.
func (b *bench) runGoBench(ctx context.Context) (goBenchResult, error) {
	cfg := b.cfg.GoBench
	b.logf("go microbenchmarks: go %s", strings.Join(cfg.args(), " "))
	cmd := exec.CommandContext(ctx, b.cfg.Go, cfg.args()...)
	cmd.Dir = b.cfg.ModDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, os.Stderr)
	cmd.Stderr = cmd.Stdout
	t0 := time.Now()
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return goBenchResult{}, ctx.Err()
	}
	res := goBenchResult{Took: time.Since(t0), Err: runErr}
	var err error
	res.Lines, res.Failures, err = parseGoBench(&out)
	if err != nil {
		return res, err
	}
	if len(res.Lines) == 0 {
		return res, fmt.Errorf("go test printed no benchmark results (%v)", runErr)
	}
	b.logf("  %d results in %s", len(res.Lines), res.Took.Round(time.Second))
	return res, nil
}
