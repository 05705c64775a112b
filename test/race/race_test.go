// Package race builds chargemq with the race detector and runs the binary
// under concurrent charge point, MQTT and shutdown churn.
package race

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	churnFor      = 3 * time.Second  // the churn before the shutdown
	stormSize     = 300              // handshakes in flight at SIGTERM
	shutdownLimit = 30 * time.Second // SIGTERM to exit
)

// TestRaceBuildUnderChurn proves that chargemq, built with -race and run as
// a process with every listener on 127.0.0.1:0, has no data race, no panic
// and no hang while charge points connect, boot, answer or ignore commands
// (which then time out), drop abruptly and reconnect, take over each other's
// ids and flood malformed, binary and oversized frames, while MQTT clients
// over TCP and WebSocket publish commands at QoS 0 and 1 for connected and
// disconnected charge points (held by the offline TTL), malformed ones and
// duplicate UniqueIds; and that a SIGTERM sent while hundreds of WebSocket
// handshakes are in flight, with MQTT connections that never send CONNECT
// and a half-sent HTTP upgrade open, ends the process with status 0 within
// 30 seconds. It fails on "DATA RACE", "panic:" or "fatal error:" in the
// process's stderr, on a non-zero exit status, and on a shutdown that does
// not end; errors the driver sees during the churn are expected and only
// counted.
func TestRaceBuildUnderChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary with -race and runs it for several seconds")
	}
	bin := buildRace(t)

	started := time.Now()
	cmd := exec.Command(bin, "serve",
		"--mqtt-addr", "127.0.0.1:0", "--mqtt-ws-addr", "127.0.0.1:0",
		"--ocpp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--log-format", "json")
	cmd.Env = append(cleanEnv(),
		"CHARGEMQ_OCPP_DNSTREAM_OFFLINE_TTL=5s",
		"CHARGEMQ_OCPP_DNSTREAM_CALL_TIMEOUT=1s",
		"GORACE=halt_on_error=0")
	stderr := newLogBuf()
	var stdout logBuf
	cmd.Stderr = stderr // exec copies it in its own goroutine: the child never blocks on a full pipe
	cmd.Stdout = &stdout
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var exitErr error
	processDone := false
	// However the test ends, the process is gone before it returns.
	defer func() {
		if !processDone {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	addrs, err := waitListening(stderr, exited, 20*time.Second)
	if err != nil {
		processDone = errors.Is(err, errExited)
		t.Fatalf("%v\nlast log lines:\n%s", err, lastLines(stderr.String(), 50))
	}

	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	d := newDriver(runCtx, addrs)
	var raw []net.Conn
	closeRaw := func() {
		for _, c := range raw {
			if c != nil {
				c.Close()
			}
		}
		raw = nil
	}
	defer closeRaw()
	// Waits for every goroutine of the driver; bounded by runCtx.
	defer func() {
		cancelRun()
		closeRaw()
		d.closeMQTT()
		waited := make(chan struct{})
		go func() { d.wg.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(15 * time.Second):
			t.Errorf("driver goroutines did not end 15s after the process exited")
			<-waited
		}
	}()

	// A connection to the MQTT listener that never sends CONNECT, for the
	// whole run.
	raw = append(raw, d.idleTCP(addrs["mqtt"]))

	// The churn.
	if err := d.subscriber(); err != nil {
		t.Logf("subscriber: %v (continuing)", err)
	}
	live := []string{"CP-0", "CP-1", "CP-2", "CP-3", "MUTE-0", "MUTE-1", "DROP-0", "DROP-1", "TAKE-0", "TAKE-1"}
	offline := []string{"OFF-0", "OFF-1", "OFF-2", "FLOOD"}
	all := append(append([]string{}, live...), offline...)
	for i := 0; i < 4; i++ {
		cid := fmt.Sprintf("CP-%d", i)
		d.spawn(func() { d.chargePoint(cid, true, i%2 == 1, 8, 40) })
	}
	for i := 0; i < 2; i++ {
		mute, drop, take := fmt.Sprintf("MUTE-%d", i), fmt.Sprintf("DROP-%d", i), fmt.Sprintf("TAKE-%d", i)
		d.spawn(func() { d.chargePoint(mute, false, false, 1000, 1) })
		d.spawn(func() { d.chargePoint(drop, true, true, 1, 100) })
		d.spawn(func() { d.takeover(take, 100) })
	}
	d.spawn(func() { d.flood("FLOOD", 60) })
	d.spawn(func() { d.commander("race-q0", false, 0, all, 3000) })
	d.spawn(func() { d.commander("race-q1", false, 1, all, 3000) })
	d.spawn(func() { d.commander("race-ws", true, 1, all[3:], 3000) })
	d.spawn(func() { d.mqttChurn("race-raw", all, 5000) })

	churnEnd := time.NewTimer(churnFor)
	select {
	case <-churnEnd.C:
	case exitErr = <-exited:
		processDone = true
	}
	churnEnd.Stop()
	connectsBeforeStop := d.connects.Load()

	// The end: idle MQTT connections, a half-sent upgrade, and SIGTERM while
	// hundreds of handshakes are in flight.
	var stormOK, stormFailed atomic.Int64
	if !processDone {
		raw = append(raw, d.idleTCP(addrs["mqtt"]), d.halfUpgrade())
		gate := make(chan struct{})
		progress := make(chan struct{}, stormSize)
		d.storm(stormSize, gate, progress, &stormOK, &stormFailed)
		close(gate)
		// Signal once a few handshakes have completed, the rest in flight.
		deadline := time.NewTimer(5 * time.Second)
	wait:
		for n := 0; n < 20; n++ {
			select {
			case <-progress:
			case <-deadline.C:
				break wait
			}
		}
		deadline.Stop()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Logf("SIGTERM: %v", err)
		}
	}
	signalled := time.Now()
	close(d.stop)

	hung := false
	if !processDone {
		limit := time.NewTimer(shutdownLimit)
		select {
		case exitErr = <-exited:
		case <-limit.C:
			hung = true
			// Ask the Go runtime for every goroutine's stack, then kill.
			logBefore := stderr.String()
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case exitErr = <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				exitErr = <-exited
			}
			dump := strings.TrimPrefix(stderr.String(), logBefore)
			t.Errorf("shutdown did not end %v after SIGTERM; last 50 log lines:\n%s\ngoroutines of the stuck process (grouped):\n%s",
				shutdownLimit, lastLines(logBefore, 50), groupGoroutines(dump))
		}
		limit.Stop()
		processDone = true
	}
	shutdownTook := time.Since(signalled)
	log := stderr.String()
	if p := os.Getenv("RACE_TEST_LOG"); p != "" {
		// The whole stderr of the process, for a closer look.
		if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
			t.Logf("RACE_TEST_LOG: %v", err)
		}
	}

	if reports := raceReports(log); len(reports) > 0 {
		t.Errorf("%d DATA RACE report(s), %d distinct:\n%s", strings.Count(log, "WARNING: DATA RACE"), len(reports), strings.Join(reports, "\n"))
	}
	for _, bad := range []string{"panic:", "fatal error:"} {
		if i := strings.Index(log, bad); i >= 0 {
			t.Errorf("stderr contains %q:\n%s", bad, excerpt(log, i, 60))
		}
	}
	if !hung && exitErr != nil {
		t.Errorf("process exited with %v (want status 0); its WARN and ERROR lines (last 20):\n%s\nlast 50 log lines:\n%s",
			exitErr, lastLines(levelLines(log, "WARN", "ERROR"), 20), lastLines(log, 50))
	}
	if connectsBeforeStop == 0 {
		t.Errorf("the driver made no charge point connection before SIGTERM; last 50 log lines:\n%s", lastLines(log, 50))
	}

	t.Logf("summary: ran %v (churn %v, shutdown %v); charge point dials %d, connections %d (%d before SIGTERM), dial errors %d; "+
		"frames sent %d (%d malformed/binary/oversized), CALLs received %d, answered %d, CALLRESULTs received %d; takeover connections %d; "+
		"storm: %d connected, %d refused; MQTT publishes %d (%d failed), messages received %d, replies %d (%d gateway errors)",
		time.Since(started).Round(time.Millisecond), churnFor, shutdownTook.Round(time.Millisecond),
		d.dials.Load(), d.connects.Load(), connectsBeforeStop, d.dialErrs.Load(),
		d.framesSent.Load(), d.floods.Load(), d.callsIn.Load(), d.callsAnswered.Load(), d.callResults.Load(), d.takeovers.Load(),
		stormOK.Load(), stormFailed.Load(), d.published.Load(), d.publishErrs.Load(), d.mqttIn.Load(), d.mqttReplies.Load(), d.mqttGW.Load())
}

// buildRace builds ./cmd/chargemq with -race into a temporary directory.
func buildRace(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	root := filepath.Dir(strings.TrimSpace(string(out)))
	if err != nil || !filepath.IsAbs(root) || strings.TrimSpace(string(out)) == os.DevNull {
		root, _ = filepath.Abs(filepath.Join("..", ".."))
	}
	bin := filepath.Join(t.TempDir(), "chargemq")
	start := time.Now()
	build := exec.Command("go", "build", "-race", "-o", bin, "./cmd/chargemq")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -race in %s: %v\n%s", root, err, out)
	}
	t.Logf("built %s with -race in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// cleanEnv is the test's environment without CHARGEMQ_ and GORACE settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHARGEMQ_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	return env
}

var errExited = errors.New("process exited before logging its listeners")

// waitListening reads the "listening" lines of the JSON log until the four
// listeners are known.
func waitListening(log *logBuf, exited <-chan error, limit time.Duration) (map[string]string, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		addrs := map[string]string{}
		for _, line := range strings.Split(log.String(), "\n") {
			var l struct{ Msg, Listener, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" {
				addrs[l.Listener] = l.Addr
			}
		}
		ok := true
		for _, name := range []string{"mqtt", "mqtt-ws", "ocpp", "http"} {
			host, port, err := net.SplitHostPort(addrs[name])
			ok = ok && err == nil && host == "127.0.0.1" && port != "0"
		}
		if ok {
			return addrs, nil
		}
		select {
		case <-log.changed:
		case err := <-exited:
			return nil, fmt.Errorf("%w: %v", errExited, err)
		case <-deadline.C:
			return nil, fmt.Errorf("listeners not logged within %v (have %v)", limit, addrs)
		}
	}
}

// logBuf collects a child's output; changed gets a value after each write.
type logBuf struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newLogBuf() *logBuf { return &logBuf{changed: make(chan struct{}, 1)} }

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	n, err := l.b.Write(p)
	l.mu.Unlock()
	if l.changed != nil {
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
	return n, err
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// levelLines are the JSON log lines of s at one of the levels.
func levelLines(s string, levels ...string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		var l struct{ Level string }
		if json.Unmarshal([]byte(line), &l) == nil {
			for _, want := range levels {
				if l.Level == want {
					out = append(out, line)
				}
			}
		}
	}
	return strings.Join(out, "\n")
}

// excerpt is up to n lines of s from the line holding offset i.
func excerpt(s string, i, n int) string {
	lines := strings.Split(s[strings.LastIndex(s[:i], "\n")+1:], "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

var (
	raceSep   = "=================="
	pcSuffix  = regexp.MustCompile(` \+0x[0-9a-f]+$`)
	gHeader   = regexp.MustCompile(`^goroutine \d+ [^\[]*\[([^,\]]+)`)
	createdIn = regexp.MustCompile(` in goroutine \d+$`)
	frameSfx  = regexp.MustCompile(` \+0x[0-9a-f]+( fp=.*)?$`)
)

// raceReports returns the distinct race reports in log, each once, with a
// count when it occurred more than once. Two reports are the same when the
// top two frames of both accesses are.
func raceReports(log string) []string {
	var order []string
	seen := map[string]int{}
	full := map[string]string{}
	rest := log
	for {
		i := strings.Index(rest, "WARNING: DATA RACE")
		if i < 0 {
			break
		}
		rest = rest[i:]
		end := strings.Index(rest, raceSep)
		if end < 0 {
			end = len(rest)
		}
		report := strings.TrimRight(rest[:end], "\n")
		rest = rest[end:]
		key := raceKey(report)
		if seen[key] == 0 {
			order = append(order, key)
			full[key] = report
		}
		seen[key]++
	}
	var out []string
	for _, k := range order {
		out = append(out, fmt.Sprintf("%s\n%s (seen %d time(s))\n%s", raceSep, full[k], seen[k], raceSep))
	}
	return out
}

// raceKey is the top two frames (function and file:line) of each access.
func raceKey(report string) string {
	var key []string
	frames := 0
	for _, line := range strings.Split(report, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.Contains(line, " at 0x") && strings.Contains(line, "by "):
			frames = 2
			key = append(key, strings.Fields(trimmed)[0])
		case frames > 0 && strings.HasPrefix(line, "      "):
			key = append(key, pcSuffix.ReplaceAllString(trimmed, ""))
			frames--
		case frames > 0 && strings.HasPrefix(line, "  "):
			key = append(key, trimmed)
		case strings.HasPrefix(trimmed, "Goroutine "):
			return strings.Join(key, "|")
		}
	}
	return strings.Join(key, "|")
}

// groupGoroutines groups a SIGQUIT dump by stack and shows each stack once,
// with how many goroutines had it, the project's and mochi's first; runtime
// frames and goroutines of the runtime alone are left out.
func groupGoroutines(dump string) string {
	type group struct {
		n     int
		state string
		stack []string
	}
	var order []string
	groups := map[string]*group{}
	for _, block := range strings.Split(dump, "\n\n") {
		block = strings.TrimSpace(block)
		m := gHeader.FindStringSubmatch(block)
		if m == nil {
			continue
		}
		var stack, funcs []string
		skip := false
		for _, line := range strings.Split(block, "\n")[1:] {
			if strings.HasPrefix(line, "\t") {
				if !skip && len(stack) > 0 {
					stack[len(stack)-1] += "  " + frameSfx.ReplaceAllString(strings.TrimSpace(line), "")
				}
				continue
			}
			f := createdIn.ReplaceAllString(line, "")
			if i := strings.LastIndex(f, "("); i > 0 && strings.HasSuffix(f, ")") {
				f = f[:i] + "(...)"
			}
			funcs = append(funcs, f)
			skip = strings.HasPrefix(f, "runtime.") || strings.HasPrefix(f, "created by runtime.")
			if !skip {
				stack = append(stack, f)
			}
		}
		if len(stack) == 0 {
			continue
		}
		key := m[1] + "|" + strings.Join(funcs, "|")
		if groups[key] == nil {
			groups[key] = &group{state: m[1], stack: stack}
			order = append(order, key)
		}
		groups[key].n++
	}
	var mine, others []string
	for _, k := range order {
		g := groups[k]
		stack := g.stack
		if len(stack) > 14 {
			stack = append(stack[:14:14], "...")
		}
		s := fmt.Sprintf("%d goroutine(s) [%s]:\n    %s", g.n, g.state, strings.Join(stack, "\n    "))
		if strings.Contains(k, "chargemq") || strings.Contains(k, "mochi-mqtt") {
			mine = append(mine, s)
		} else {
			others = append(others, s)
		}
	}
	return strings.Join(append(mine, others...), "\n")
}
