package sim

import (
	"slices"
	"testing"
	"time"
)

func TestPacerTake(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name       string
		slack      time.Duration
		takes      []int // times of take, ms after t0
		wantMissed []int64
		wantDue    int // due after the last take, ms
	}{
		{"on time", 0, []int{0, 100, 200}, []int64{0, 0, 0}, 300},
		{"slightly late", 0, []int{5, 130, 299}, []int64{0, 0, 0}, 300},
		{"late by two slots drops two", 0, []int{0, 350}, []int64{0, 2}, 400},
		{"very late", 0, []int{1000}, []int64{10}, 1100},
		{"early takes the next one", 0, []int{0, 50}, []int64{0, 0}, 200},
		// With slack, a late caller gets the missed events one take at a time.
		{"late within slack catches up", 250 * time.Millisecond, []int{0, 350, 350, 350}, []int64{0, 0, 0, 0}, 400},
		{"beyond slack drops the oldest", 250 * time.Millisecond, []int{0, 650, 650, 650}, []int64{0, 3, 0, 0}, 700},
		{"slack shorter than the interval", 50 * time.Millisecond, []int{0, 350}, []int64{0, 2}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPacer(t0, 100*time.Millisecond)
			for i, ms := range tt.takes {
				if got := p.take(at(ms), tt.slack); got != tt.wantMissed[i] {
					t.Errorf("take %d at %dms missed %d, want %d", i, ms, got, tt.wantMissed[i])
				}
			}
			if got := p.due(); !got.Equal(at(tt.wantDue)) {
				t.Errorf("due %v after t0, want %dms", got.Sub(t0), tt.wantDue)
			}
		})
	}
}

func TestPacerDropBefore(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newPacer(t0, 100*time.Millisecond)
	for _, tt := range []struct {
		before  time.Duration
		want    int64
		wantDue time.Duration
	}{
		{-time.Millisecond, 0, 0},
		{0, 1, 100 * time.Millisecond},
		{50 * time.Millisecond, 0, 100 * time.Millisecond},
		{399 * time.Millisecond, 3, 400 * time.Millisecond},
		{399 * time.Millisecond, 0, 400 * time.Millisecond},
	} {
		if got := p.dropBefore(t0.Add(tt.before)); got != tt.want || p.due().Sub(t0) != tt.wantDue {
			t.Errorf("dropBefore(%v) = %d, due %v; want %d, due %v", tt.before, got, p.due().Sub(t0), tt.want, tt.wantDue)
		}
	}
}

func TestPacerSkipTo(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		now, wantDue time.Duration
	}{
		{-time.Second, 0},
		{0, 0},
		{time.Millisecond, 100 * time.Millisecond},
		{100 * time.Millisecond, 100 * time.Millisecond},
		{250 * time.Millisecond, 300 * time.Millisecond},
	} {
		p := newPacer(t0, 100*time.Millisecond)
		p.skipTo(t0.Add(tt.now))
		if got := p.due().Sub(t0); got != tt.wantDue {
			t.Errorf("skipTo(%v): due %v, want %v", tt.now, got, tt.wantDue)
		}
		if missed := p.take(p.due(), 0); missed != 0 {
			t.Errorf("skipTo(%v): take at due missed %d", tt.now, missed)
		}
	}
}

// TestChargePointPacers checks that the charge points' schedules together call evenly at the
// total rate: the union of their slots is spaced 1/rate apart.
func TestChargePointPacers(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		count int
		rate  float64
	}{
		{1, 10}, {4, 8}, {10, 1000}, {1000, 10}, {3, 1.5},
	}
	for _, tt := range tests {
		step := rateInterval(tt.rate)
		window := time.Duration(3*tt.count) * step // three rounds
		var slots []time.Duration
		for i := range tt.count {
			p := chargePointPacer(t0, i, tt.count, tt.rate)
			for p.due().Before(t0.Add(window)) {
				slots = append(slots, p.due().Sub(t0))
				p.take(p.due(), 0)
			}
		}
		slices.Sort(slots)
		if len(slots) != 3*tt.count {
			t.Errorf("count %d rate %v: %d slots in three rounds, want %d", tt.count, tt.rate, len(slots), 3*tt.count)
			continue
		}
		for k, s := range slots {
			if s != time.Duration(k)*step {
				t.Errorf("count %d rate %v: slot %d at %v, want %v", tt.count, tt.rate, k, s, time.Duration(k)*step)
				break
			}
		}
	}
}

func TestRateInterval(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		rate float64
		want time.Duration
	}{
		{1, time.Second}, {1000, time.Millisecond}, {0.5, 2 * time.Second}, {3, 333333333}, {1e12, 1},
	} {
		if got := rateInterval(tt.rate); got != tt.want {
			t.Errorf("rateInterval(%v) = %v, want %v", tt.rate, got, tt.want)
		}
	}
}
