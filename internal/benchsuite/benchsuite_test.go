package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	// Field 14 (utime) 1234, field 15 (stime) 567, in ticks of 10 ms.
	tail := " S 1 2 3 4 5 6 7 8 9 10 1234 567 11 12 20 0 8 0 100 2000000 500 18446744073709551615\n"
	tests := []struct {
		name    string
		stat    string
		want    cpuTimes
		wantErr bool
	}{
		{"plain", "4242 (chargemq)" + tail, cpuTimes{User: 12340 * time.Millisecond, System: 5670 * time.Millisecond}, false},
		{"spaces and parentheses in the name", "77 (my (odd) prog) x)" + tail, cpuTimes{User: 12340 * time.Millisecond, System: 5670 * time.Millisecond}, false},
		{"zero", "1 (init) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 1 2 3 4\n", cpuTimes{}, false},
		{"no name", "4242 chargemq S 1 2 3", cpuTimes{}, true},
		{"too short", "4242 (chargemq) S 1 2 3 4 5 6 7 8 9 10 1234\n", cpuTimes{}, true},
		{"not a number", "4242 (chargemq) S 1 2 3 4 5 6 7 8 9 10 x 567 11\n", cpuTimes{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseStat([]byte(tt.stat))
			if tt.wantErr {
				if !errors.Is(err, errProcFormat) {
					t.Fatalf("parseStat = %v, %v; want an errProcFormat", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseStat = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	t.Run("sub and total", func(t *testing.T) {
		t.Parallel()
		a := cpuTimes{User: 3 * time.Second, System: time.Second}
		b := cpuTimes{User: time.Second, System: 500 * time.Millisecond}
		if got := a.Sub(b).Total(); got != 2500*time.Millisecond {
			t.Fatalf("Sub.Total = %v", got)
		}
	})
}

func TestParseStatusBytes(t *testing.T) {
	t.Parallel()
	status := "Name:\tchargemq\nVmPeak:\t 1283040 kB\nVmRSS:\t   15360 kB\nThreads:\t7\n"
	if got, err := parseStatusBytes([]byte(status), "VmRSS"); err != nil || got != 15360*1024 {
		t.Fatalf("VmRSS = %d, %v", got, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tlots kB\n"} {
		if _, err := parseStatusBytes([]byte(bad), "VmRSS"); !errors.Is(err, errProcFormat) {
			t.Errorf("%q: err %v, want errProcFormat", bad, err)
		}
	}
	model, cores := parseCPUInfo([]byte("processor\t: 0\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\n"))
	if model != "AMD EPYC" || cores != 2 {
		t.Fatalf("parseCPUInfo = %q, %d", model, cores)
	}
}

const goBenchOutput = `goos: linux
goarch: amd64
pkg: github.com/chargemq/chargemq/broker
cpu: AMD EPYC
BenchmarkUpstream/Heartbeat/gateway-2         	   63362	     20571 ns/op	   2.77 MB/s	    2032 B/op	      28 allocs/op
BenchmarkUpstream/Heartbeat/translate-2       	 1475416	       768.4 ns/op	  74.18 MB/s	     360 B/op	       4 allocs/op
BenchmarkIdleChargePoints/gateway-2           	    2344	    466924 ns/op	         1.000 goroutines/cp	     12319 heap-B/cp	      8080 stack-B/cp	   32865 B/op	     235 allocs/op
BenchmarkSlow/logs-2
    bench_test.go:12: a log line in the middle
     100	   1000000 ns/op
--- FAIL: BenchmarkBroken
    bench_test.go:40: it broke
PASS
ok  	github.com/chargemq/chargemq/broker	43.895s
goos: linux
pkg: github.com/chargemq/chargemq/schemas
BenchmarkCheck/Heartbeat	  539376	      1901 ns/op
BenchmarkCheck/no-numbers-here-2 something else
FAIL	github.com/chargemq/chargemq/schemas	3.343s
`

func TestParseGoBench(t *testing.T) {
	t.Parallel()
	lines, failures, err := parseGoBench(strings.NewReader(goBenchOutput))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		pkg, name     string
		procs         int
		n             int64
		ns, b, allocs float64
		metrics       string
	}
	var got []row
	for _, l := range lines {
		var m []string
		for _, x := range l.Metrics {
			m = append(m, num(x.Value)+" "+x.Unit)
		}
		got = append(got, row{shortPkg(l.Pkg), l.Name, l.Procs, l.Iterations, l.NsPerOp, l.BytesPerOp, l.AllocsPerOp, strings.Join(m, ", ")})
	}
	want := []row{
		{"broker", "Upstream/Heartbeat/gateway", 2, 63362, 20571, 2032, 28, "2.77 MB/s"},
		{"broker", "Upstream/Heartbeat/translate", 2, 1475416, 768.4, 360, 4, "74.2 MB/s"},
		{"broker", "IdleChargePoints/gateway", 2, 2344, 466924, 32865, 235, "1 goroutines/cp, 12,319 heap-B/cp, 8,080 stack-B/cp"},
		{"broker", "Slow/logs", 2, 100, 1e6, -1, -1, ""},
		{"schemas", "Check/Heartbeat", 0, 539376, 1901, -1, -1, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines:\n%+v\nwant %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if len(failures) != 2 || !strings.HasPrefix(failures[0], "--- FAIL: BenchmarkBroken") || !strings.HasPrefix(failures[1], "FAIL\t") {
		t.Errorf("failures = %q", failures)
	}
}

func TestReplaceSection(t *testing.T) {
	t.Parallel()
	doc := "# Title\n\nprose before\n\n" + benchBegin + "\nold table\n" + benchEnd + "\n\nprose after\n"
	got, err := replaceSection(doc, benchBegin, benchEnd, "new table\n| a |\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Title\n\nprose before\n\n" + benchBegin + "\nnew table\n| a |\n" + benchEnd + "\n\nprose after\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// Replacing again is stable, and an empty body leaves the markers adjacent.
	if again, _ := replaceSection(got, benchBegin, benchEnd, "new table\n| a |"); again != want {
		t.Fatalf("second replacement changed the document:\n%s", again)
	}
	if empty, _ := replaceSection(doc, benchBegin, benchEnd, ""); !strings.Contains(empty, benchBegin+"\n"+benchEnd) {
		t.Fatalf("empty body: %q", empty)
	}
	// The other section's markers are left alone.
	two := doc + "\n" + soakBegin + "\nsoak\n" + soakEnd + "\n"
	if got, err := replaceSection(two, soakBegin, soakEnd, "soaked"); err != nil || !strings.Contains(got, "old table") ||
		!strings.Contains(got, soakBegin+"\nsoaked\n"+soakEnd) {
		t.Fatalf("soak section: %v\n%s", err, got)
	}
	for name, bad := range map[string]string{
		"no markers":    "prose only\n",
		"no end":        benchBegin + "\nx\n",
		"reversed":      benchEnd + "\nx\n" + benchBegin + "\n",
		"begin twice":   benchBegin + benchBegin + "\n" + benchEnd,
		"end twice":     benchBegin + "\n" + benchEnd + benchEnd,
		"only the soak": soakBegin + "\n" + soakEnd,
	} {
		if _, err := replaceSection(bad, benchBegin, benchEnd, "x"); !errors.Is(err, errMarkers) {
			t.Errorf("%s: err %v, want errMarkers", name, err)
		}
	}
}

func TestCheckFlat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []float64
		ok     bool
	}{
		{"flat", []float64{100, 105, 101, 103, 102, 104}, true},
		{"a 10 % rise is allowed", []float64{100, 100, 100, 110, 110, 110}, true},
		{"climbing", []float64{100, 104, 108, 112, 116, 120}, false},
		{"an early spike does not hide a climb", []float64{100, 150, 100, 120, 140, 170}, false},
		{"shrinking", []float64{200, 150, 100}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, ok, err := checkFlat(tt.values, 0.10)
			if err != nil || ok != tt.ok {
				t.Fatalf("checkFlat = %v, %v; want %v", ok, err, tt.ok)
			}
		})
	}
	if _, _, _, err := checkFlat([]float64{1, 2}, 0.1); err == nil {
		t.Fatal("two samples: want an error")
	}
}

func TestFormatting(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		got, want string
	}{
		{thousands(0), "0"}, {thousands(999), "999"}, {thousands(19000), "19,000"}, {thousands(-1234567), "-1,234,567"},
		{num(0.4123), "0.412"}, {num(28), "28"}, {num(0), "0"}, {num(12.34), "12.3"}, {num(845.2), "845"}, {num(2000.4), "2,000"}, {num(3.14159), "3.14"},
		{ratio(3, 2), "1.50×"}, {ratio(30, 2), "15×"}, {ratio(1, 0), "–"},
		{shellQuote("a-b/c:1,2"), "a-b/c:1,2"}, {shellQuote("^$"), "'^$'"}, {shellQuote("it's"), `'it'\''s'`},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestHeartbeatMessage(t *testing.T) {
	t.Parallel()
	// What broker/codec.go appendUpstream publishes for the simulator's Heartbeat number 12.
	if got := string(heartbeatMessage(12)); got != `{"MessageTypeId":2,"UniqueId":"12","Action":"Heartbeat","Payload":{}}` {
		t.Fatalf("heartbeatMessage = %s", got)
	}
}

func TestParseBenchFlags(t *testing.T) {
	t.Parallel()
	var sink strings.Builder
	c, err := parseBenchFlags([]string{"-latency-rates", "100,200.5", "-memory-counts", "10,20", "-qos", "1"}, &sink)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Latency.Rates) != 2 || c.Latency.Rates[1] != 200.5 || len(c.Memory.Counts) != 2 || c.Upstream.QoS != 1 {
		t.Fatalf("config %+v", c)
	}
	if got := c.command("latency"); got != "go run ./internal/benchsuite bench -only latency -latency-cps 1000 -latency-rates 100,200.5 -latency-duration 20s" {
		t.Fatalf("command = %s", got)
	}
	for _, bad := range [][]string{
		{"-only", "nope"}, {"-only", "upstream", "-write", "x.md"}, {"-qos", "3"}, {"-memory-counts", "1,x"},
		{"-latency-rates", "0"}, {"-upstream-window", "0s"}, {"stray"},
	} {
		if _, err := parseBenchFlags(bad, &sink); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}
