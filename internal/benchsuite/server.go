package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Bounds on waiting for a server: generous, as the machine is shared, but finite.
const (
	startTimeout = 15 * time.Second
	stopGrace    = 20 * time.Second // chargemq's shutdown_timeout is 10 s
)

// chargemq is one bin/chargemq serve process with every listener on 127.0.0.1 and a port the
// kernel chose.
type chargemq struct {
	*child
	MQTT, OCPP, HTTP string // host:port as logged
	// Ready is the time from just before the process was started to the first 200 from
	// /readyz.
	Ready time.Duration
	http  *http.Client
	// admin is the user:password of an admin user the stats requests
	// carry, for a server with a users file (which then asks for one).
	admin [2]string

	mu       sync.Mutex
	problems map[string]int // WARN and ERROR log messages by level and message, read at stop
}

// serveArgs are the arguments of every server the suite starts: the defaults of the binary
// except the listeners (loopback, kernel-chosen ports, no MQTT over WebSocket) and JSON logs,
// from which the bound ports are read.
var serveArgs = []string{"serve", "--mqtt-addr", "127.0.0.1:0", "--mqtt-ws-addr", "", "--ocpp-addr", "127.0.0.1:0",
	"--http-addr", "127.0.0.1:0", "--log-format", "json"}

// startChargemq starts bin, logging to logPath, and returns once /readyz answers 200. The
// environment is the suite's without CHARGEMQ_* variables, so a developer's settings do not
// change the numbers.
func startChargemq(ctx context.Context, bin, logPath string, extra ...string) (*chargemq, error) {
	cmd := exec.Command(bin, append(slices.Clone(serveArgs), extra...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHARGEMQ_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	s := &chargemq{
		http:     &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		problems: map[string]int{},
	}
	t0 := time.Now()
	c, err := startChild("chargemq", cmd, logPath)
	if err != nil {
		return nil, err
	}
	s.child = c
	if err := s.awaitReady(ctx, t0); err != nil {
		s.stop(stopGrace)
		return nil, err
	}
	return s, nil
}

// logLine is the part of chargemq's JSON log lines the suite reads.
type logLine struct{ Level, Msg, Listener, Addr string }

// awaitReady reads the listening lines from the log as they are written, then polls /readyz
// every millisecond until it answers 200.
func (s *chargemq) awaitReady(ctx context.Context, t0 time.Time) error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	f, err := os.Open(s.logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var partial []byte
	for s.MQTT == "" || s.OCPP == "" || s.HTTP == "" {
		for {
			chunk, err := r.ReadBytes('\n')
			partial = append(partial, chunk...)
			if err != nil { // io.EOF: the rest is not written yet
				break
			}
			var l logLine
			if json.Unmarshal(partial, &l) == nil && l.Msg == "listening" {
				switch l.Listener {
				case "mqtt":
					s.MQTT = l.Addr
				case "ocpp":
					s.OCPP = l.Addr
				case "http":
					s.HTTP = l.Addr
				}
			}
			partial = partial[:0]
		}
		if s.MQTT != "" && s.OCPP != "" && s.HTTP != "" {
			break
		}
		select {
		case <-poll.C:
		case <-s.done:
			return s.alive()
		case <-deadline.C:
			return fmt.Errorf("chargemq did not log its listeners within %s; its last lines:\n%s", startTimeout, s.logTail())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		if resp, err := s.http.Get("http://" + s.HTTP + "/readyz"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.Ready = time.Since(t0)
				return nil
			}
		}
		select {
		case <-poll.C:
		case <-s.done:
			return s.alive()
		case <-deadline.C:
			return fmt.Errorf("chargemq /readyz not 200 within %s", startTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stop stops the process, then reads the WARN and ERROR lines of its log.
func (s *chargemq) stop(grace time.Duration) {
	s.child.stop(grace)
	f, err := os.Open(s.logPath)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.problems)
	for sc.Scan() {
		b := sc.Bytes()
		if !bytes.Contains(b, []byte(`"level":"WARN"`)) && !bytes.Contains(b, []byte(`"level":"ERROR"`)) {
			continue
		}
		var l logLine
		if json.Unmarshal(b, &l) == nil {
			s.problems[l.Level+" "+l.Msg]++
		}
	}
}

// serverStats is the part of /api/v1/stats the suite reads.
type serverStats struct {
	Goroutines int `json:"goroutines"`
	OCPP       struct {
		Connected int64             `json:"connected"`
		Refused   map[string]uint64 `json:"refused"`
	} `json:"ocpp"`
	Published     uint64 `json:"published"`
	PublishFailed uint64 `json:"publish_failed"`
}

// stats fetches /api/v1/stats.
func (s *chargemq) stats(ctx context.Context) (serverStats, error) {
	var st serverStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.HTTP+"/api/v1/stats", nil)
	if err != nil {
		return st, err
	}
	if s.admin[0] != "" {
		req.SetBasicAuth(s.admin[0], s.admin[1])
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return st, fmt.Errorf("chargemq stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, &statsRefused{status: resp.Status, code: resp.StatusCode}
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("chargemq stats: %w", err)
	}
	return st, nil
}

// statsRefused is a stats request the server answered with another status than 200.
type statsRefused struct {
	status string
	code   int
}

func (e *statsRefused) Error() string { return "chargemq stats: " + e.status }

// awaitConnected polls the stats until n charge points are connected, or until the timeout
// (then it returns the last count and no error: the caller reports what it got). It stops
// early when stop is closed.
func (s *chargemq) awaitConnected(ctx context.Context, n int64, timeout time.Duration, stop <-chan struct{}) (int64, error) {
	return s.awaitSettled(ctx, n, timeout, 0, stop)
}

// awaitSettled polls the stats until n charge points are connected, or the count has not
// changed for quiet (some dials failed: quiet should exceed a dial's timeout; 0 waits for n),
// or the timeout; it returns the last count. It stops early when stop is closed. A stats
// request that fails while the server lives (an overloaded server answers late) is retried.
func (s *chargemq) awaitSettled(ctx context.Context, n int64, timeout, quiet time.Duration, stop <-chan struct{}) (int64, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last, changed := int64(-1), time.Now()
	for {
		st, err := s.stats(ctx)
		var refused *statsRefused
		if errors.As(err, &refused) && refused.code < 500 {
			return max(last, 0), err // asking again would get the same answer: a scenario's mistake
		}
		if err != nil {
			if aerr := s.alive(); aerr != nil {
				return last, aerr
			}
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
		} else if c := st.OCPP.Connected; c != last {
			last, changed = c, time.Now()
		}
		if last >= n || (quiet > 0 && last > 0 && time.Since(changed) > quiet) || time.Now().After(deadline) {
			return max(last, 0), nil
		}
		select {
		case <-tick.C:
		case <-stop:
			return max(last, 0), nil
		case <-ctx.Done():
			return max(last, 0), ctx.Err()
		}
	}
}

// logProblems returns the WARN and ERROR messages logged, read when the server stopped.
func (s *chargemq) logProblems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k, n := range s.problems {
		out = append(out, fmt.Sprintf("%s (×%d)", k, n))
	}
	sort.Strings(out)
	return out
}

// mosquittoConfig is the configuration the suite gives Mosquitto: one listener on loopback, no
// persistence, and the same bounds as chargemq's embedded broker (1,000 messages in flight and
// queued per client: chargemq's mqtt.max_queued_messages), so the same load meets the same
// limits. Nagle is off, as in every Go server.
func mosquittoConfig(port int) string {
	return fmt.Sprintf(`# generated by internal/benchsuite
listener %d 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
max_inflight_messages 1000
max_queued_messages 1000
log_dest stderr
log_type error
log_type warning
`, port)
}

// mosquitto is a Mosquitto process.
type mosquitto struct {
	*child
	Addr string
}

// startMosquitto starts bin with a generated configuration in dir on a free loopback port and
// returns once it accepts connections.
func startMosquitto(ctx context.Context, bin, dir string) (*mosquitto, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken between probe and bind
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		conf := dir + "/mosquitto.conf"
		if err := os.WriteFile(conf, []byte(mosquittoConfig(port)), 0o644); err != nil {
			return nil, err
		}
		c, err := startChild("mosquitto", exec.Command(bin, "-c", conf), dir+"/mosquitto.log")
		if err != nil {
			return nil, err
		}
		m := &mosquitto{child: c, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
		if lastErr = m.awaitListening(ctx); lastErr == nil {
			return m, nil
		}
		m.stop(stopGrace)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, lastErr
}

func (m *mosquitto) awaitListening(ctx context.Context) error {
	deadline := time.Now().Add(startTimeout)
	for {
		conn, err := net.DialTimeout("tcp", m.Addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if aerr := m.alive(); aerr != nil {
			return aerr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mosquitto not listening on %s within %s: %v", m.Addr, startTimeout, err)
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
