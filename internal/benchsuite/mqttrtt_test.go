package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

func TestRequesterIndex(t *testing.T) {
	t.Parallel()
	tests := []struct {
		topic string
		want  int
		ok    bool
	}{
		{"rtt/req/0", 0, true},
		{"rtt/req/41", 41, true},
		{"rtt/req/99", 99, true},
		{"rtt/req/100", 0, false}, // out of range
		{"rtt/req/", 0, false},
		{"rtt/req/-1", 0, false},
		{"rtt/req/+1", 0, false},
		{"rtt/req/007", 0, false}, // not how the requesters spell it
		{"rtt/req/1/x", 0, false},
		{"rtt/resp/1", 0, false},
		{"ocpp/cp/1", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			t.Parallel()
			got, ok := requesterIndex(tt.topic, 100)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("requesterIndex(%q) = %d, %v; want %d, %v", tt.topic, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestRTTQuantiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                string
		samples             []time.Duration
		p50, p90, p99, maxV float64
	}{
		{"none", nil, 0, 0, 0, 0},
		{"one", []time.Duration{1500 * time.Microsecond}, 1.5, 1.5, 1.5, 1.5},
		{"hundred, reversed", func() []time.Duration {
			s := make([]time.Duration, 100)
			for i := range s {
				s[i] = time.Duration(100-i) * time.Millisecond // 100 ms … 1 ms
			}
			return s
		}(), 50, 90, 99, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p50, p90, p99, maxV := rttQuantiles(tt.samples)
			if p50 != tt.p50 || p90 != tt.p90 || p99 != tt.p99 || maxV != tt.maxV {
				t.Fatalf("rttQuantiles = %v %v %v %v; want %v %v %v %v", p50, p90, p99, maxV, tt.p50, tt.p90, tt.p99, tt.maxV)
			}
		})
	}
}

// allowAll admits every client to every topic (mochi's auth hooks package would add a module
// dependency for this much).
type allowAll struct{ mqtt.HookBase }

func (allowAll) ID() string { return "allow-all" }

func (allowAll) Provides(b byte) bool { return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck }

func (allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// startMochi runs a mochi broker admitting everyone on 127.0.0.1:0 and returns its address.
func startMochi(t *testing.T) string {
	t.Helper()
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.AddHook(new(allowAll), nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := s.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return l.Address()
}

// TestRunRTT runs a small baseline through an in-process mochi: every request of the window
// is answered, nothing times out, and the samples are plausible round trips.
func TestRunRTT(t *testing.T) {
	t.Parallel()
	addr := startMochi(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const (
		clients = 8
		rate    = 80.0 // 10 per requester per second
		window  = 500 * time.Millisecond
	)
	res, err := runRTT(ctx, addr, clients, rate, window)
	if err != nil {
		t.Fatal(err)
	}
	if res.TimedOut != 0 || res.PublishFailed != 0 || res.Ignored != 0 {
		t.Errorf("timed out %d, publish failed %d, ignored %d; want none", res.TimedOut, res.PublishFailed, res.Ignored)
	}
	// 80/s over 0.5 s is 40 round trips; allow for a loaded test machine skipping a few.
	if res.Answered < 20 || res.Answered > 48 {
		t.Errorf("answered %d in the window, want about 40", res.Answered)
	}
	if res.Sent < res.Answered || res.Sent > res.Answered+res.Skipped+2*clients {
		t.Errorf("sent %d, answered %d, skipped %d: inconsistent", res.Sent, res.Answered, res.Skipped)
	}
	if !(0 < res.P50 && res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.Max && res.Max < 1000) {
		t.Errorf("p50 %v p90 %v p99 %v max %v ms: not ordered or implausible", res.P50, res.P90, res.P99, res.Max)
	}
	if res.Wall < window {
		t.Errorf("wall %v shorter than the window %v", res.Wall, window)
	}
}
