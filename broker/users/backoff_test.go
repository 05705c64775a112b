package users

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	want := []time.Duration{0, 0, 1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 32 * time.Second, 60 * time.Second, 60 * time.Second}
	for n, w := range want {
		if got := backoffDelay(n); got != w {
			t.Errorf("backoffDelay(%d) = %v, want %v", n, got, w)
		}
	}
	if got := backoffDelay(1 << 30); got != BackoffMax {
		t.Errorf("backoffDelay(huge) = %v, want the cap", got)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		op    string // "allowed", "failed", "succeeded"
		key   string
		at    time.Duration
		ok    bool          // for allowed
		retry time.Duration // for allowed
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"unknown key allowed", []step{{"allowed", "k", 0, true, 0}}},
		{"first failure free", []step{
			{"failed", "k", 0, false, 0},
			{"allowed", "k", 0, true, 0},
		}},
		{"then 1s, 2s, 4s", []step{
			{"failed", "k", 0, false, 0},
			{"failed", "k", 0, false, 0},
			{"allowed", "k", 0, false, time.Second},
			{"allowed", "k", 400 * time.Millisecond, false, 600 * time.Millisecond},
			{"allowed", "k", time.Second, true, 0},
			{"failed", "k", time.Second, false, 0},
			{"allowed", "k", time.Second, false, 2 * time.Second},
			{"allowed", "k", 3 * time.Second, true, 0},
			{"failed", "k", 3 * time.Second, false, 0},
			{"allowed", "k", 3 * time.Second, false, 4 * time.Second},
		}},
		{"capped", func() []step {
			var s []step
			for range 20 {
				s = append(s, step{"failed", "k", 0, false, 0})
			}
			return append(s, step{"allowed", "k", 0, false, BackoffMax})
		}()},
		{"keys independent", []step{
			{"failed", "1.2.3.4 CP1", 0, false, 0},
			{"failed", "1.2.3.4 CP1", 0, false, 0},
			{"allowed", "1.2.3.4 CP1", 0, false, time.Second},
			{"allowed", "1.2.3.4 CP2", 0, true, 0},
			{"allowed", "5.6.7.8 CP1", 0, true, 0},
		}},
		{"success resets", []step{
			{"failed", "k", 0, false, 0},
			{"failed", "k", 0, false, 0},
			{"succeeded", "k", 0, false, 0},
			{"allowed", "k", 0, true, 0},
			{"failed", "k", 0, false, 0},
			{"allowed", "k", 0, true, 0}, // free again
		}},
		{"forgotten after a quiet period", []step{
			{"failed", "k", 0, false, 0},
			{"failed", "k", 0, false, 0},
			{"failed", "k", 0, false, 0},
			{"allowed", "k", BackoffForget - time.Second, true, 0},
			{"failed", "k", BackoffForget - time.Second, false, 0},
			{"allowed", "k", BackoffForget - time.Second, false, 4 * time.Second}, // remembered: 4th failure
			{"failed", "k", 2 * BackoffForget, false, 0},
			{"allowed", "k", 2 * BackoffForget, true, 0}, // forgotten: 1st failure again
			{"failed", "k", 2 * BackoffForget, false, 0},
			{"allowed", "k", 2 * BackoffForget, false, time.Second},
		}},
		{"refused attempts do not lengthen the wait", []step{
			{"failed", "k", 0, false, 0},
			{"failed", "k", 0, false, 0},
			{"allowed", "k", 0, false, time.Second},
			{"allowed", "k", 0, false, time.Second},
			{"allowed", "k", 999 * time.Millisecond, false, time.Millisecond},
		}},
		{"succeeded on unknown key", []step{{"succeeded", "k", 0, false, 0}, {"allowed", "k", 0, true, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b Backoff // the zero value is ready
			for i, s := range tt.steps {
				switch s.op {
				case "failed":
					b.Failed(s.key, at(s.at))
				case "succeeded":
					b.Succeeded(s.key)
				case "allowed":
					ok, retry := b.Allowed(s.key, at(s.at))
					if ok != s.ok || retry != s.retry {
						t.Errorf("step %d: Allowed(%q, +%v) = %v, %v; want %v, %v", i, s.key, s.at, ok, retry, s.ok, s.retry)
					}
				}
			}
		})
	}
}

func TestBackoffBounded(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b := NewBackoff(3)
	for i := range 3 {
		b.Failed(fmt.Sprint("k", i), t0)
		b.Failed(fmt.Sprint("k", i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	b.Failed("k0", t0.Add(10*time.Millisecond)) // k0 is now the most recent
	b.Failed("k3", t0.Add(11*time.Millisecond)) // evicts k1, the oldest
	if b.Len() != 3 {
		t.Errorf("Len = %d, want 3", b.Len())
	}
	now := t0.Add(12 * time.Millisecond)
	for key, wantOK := range map[string]bool{"k0": false, "k1": true, "k2": false, "k3": true} {
		if ok, _ := b.Allowed(key, now); ok != wantOK {
			t.Errorf("Allowed(%s) = %v, want %v", key, ok, wantOK)
		}
	}
}

func TestBackoffExpiresLazily(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var b Backoff
	for i := range 100 {
		b.Failed(fmt.Sprint("k", i), t0.Add(time.Duration(i)*time.Second))
	}
	b.Allowed("other", t0.Add(BackoffForget+50*time.Second))
	if b.Len() != 49 {
		t.Errorf("Len = %d after expiry, want the 49 keys of the last 49 s", b.Len())
	}
	if NewBackoff(0).limitOrDefault() != DefaultBackoffEntries {
		t.Error("NewBackoff(0) is not bounded by DefaultBackoffEntries")
	}
}

// TestBackoffConcurrent is for -race.
func TestBackoffConcurrent(t *testing.T) {
	t.Parallel()
	b := NewBackoff(50)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				key := fmt.Sprint("k", (g*7+i)%80)
				now := t0.Add(time.Duration(i) * time.Second)
				b.Allowed(key, now)
				b.Failed(key, now)
				if i%10 == 0 {
					b.Succeeded(key)
				}
			}
		}()
	}
	wg.Wait()
	if b.Len() > 50 {
		t.Errorf("Len = %d, over the bound", b.Len())
	}
}
