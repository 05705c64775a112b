package sim

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestBuckets checks that every value falls inside its bucket, that buckets are contiguous and
// no wider than 1/subCount of their lower bound, and that huge values share the last one.
func TestBuckets(t *testing.T) {
	t.Parallel()
	for i := 1; i < numBuckets; i++ {
		lo, w := bucketBounds(i)
		plo, pw := bucketBounds(i - 1)
		if plo+pw != lo {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, plo+pw)
		}
		if i >= subCount && w*subCount > lo {
			t.Fatalf("bucket %d: width %d too wide for lower bound %d", i, w, lo)
		}
	}
	values := []uint64{0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 1000, 1 << 20, 123456789, 1<<maxExp - 1}
	for range 10000 {
		values = append(values, rand.Uint64N(1<<maxExp))
	}
	for _, v := range values {
		i := bucketOf(v)
		lo, w := bucketBounds(i)
		if v < lo || v >= lo+w {
			t.Fatalf("value %d in bucket %d = [%d, %d)", v, i, lo, lo+w)
		}
	}
	for _, v := range []uint64{1 << maxExp, 1 << 50, math.MaxUint64} {
		if i := bucketOf(v); i != numBuckets-1 {
			t.Errorf("bucketOf(%d) = %d, want the last bucket", v, i)
		}
	}
}

// TestQuantiles compares the histogram's quantiles with the exact ones of the samples.
func TestQuantiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		samples func(rng *rand.Rand) []time.Duration
	}{
		{"one value", func(*rand.Rand) []time.Duration { return []time.Duration{3 * time.Millisecond} }},
		{"constant", func(*rand.Rand) []time.Duration { return slices.Repeat([]time.Duration{750 * time.Microsecond}, 1000) }},
		{"uniform 1µs-10ms", func(rng *rand.Rand) []time.Duration {
			s := make([]time.Duration, 100000)
			for i := range s {
				s[i] = time.Microsecond + time.Duration(rng.Int64N(int64(10*time.Millisecond)))
			}
			return s
		}},
		{"long tail", func(rng *rand.Rand) []time.Duration {
			s := make([]time.Duration, 100000)
			for i := range s {
				s[i] = time.Duration(rng.ExpFloat64() * float64(2*time.Millisecond))
			}
			s[0] = 30 * time.Second // one outlier is the max
			return s
		}},
		{"tiny values", func(*rand.Rand) []time.Duration {
			s := make([]time.Duration, 500)
			for i := range s {
				s[i] = time.Duration(i % 40)
			}
			return s
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			samples := tt.samples(rand.New(rand.NewPCG(1, 2))) // each its own: subtests run in parallel
			var h histogram
			for _, d := range samples {
				h.Record(d)
			}
			s := h.Snapshot()
			if s.Count() != uint64(len(samples)) {
				t.Fatalf("count %d, want %d", s.Count(), len(samples))
			}
			slices.Sort(samples)
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
				want := samples[int(math.Ceil(q*float64(len(samples))))-1]
				got := s.Quantile(q)
				// The middle of a bucket is within half its width, 1/64 of the value.
				if diff := math.Abs(float64(got - want)); diff > float64(want)/64+0.5 {
					t.Errorf("q%v = %v, want %v (±1/64)", q, got, want)
				}
			}
			if got, want := s.Quantile(1), samples[len(samples)-1]; got != want {
				t.Errorf("max = %v, want %v", got, want)
			}
		})
	}
}

func TestHistogramEmptyAndNegative(t *testing.T) {
	t.Parallel()
	var h histogram
	s := h.Snapshot()
	if s.Count() != 0 || s.Quantile(0.5) != 0 || s.Quantile(1) != 0 {
		t.Fatalf("empty histogram: count %d p50 %v max %v", s.Count(), s.Quantile(0.5), s.Quantile(1))
	}
	h.Record(-time.Second)
	s = h.Snapshot()
	if s.Count() != 1 || s.Quantile(0.5) != 0 {
		t.Fatalf("negative value: count %d p50 %v", s.Count(), s.Quantile(0.5))
	}
}

// TestSnapshotSub checks the difference of two snapshots: the progress line's last second.
func TestSnapshotSub(t *testing.T) {
	t.Parallel()
	var h histogram
	for range 100 {
		h.Record(time.Millisecond)
	}
	first := h.Snapshot()
	for range 10 {
		h.Record(100 * time.Millisecond)
	}
	second := h.Snapshot()
	d := second.Sub(&first)
	if d.Count() != 10 {
		t.Fatalf("count %d, want 10", d.Count())
	}
	if got := d.Quantile(0.5); math.Abs(float64(got-100*time.Millisecond)) > float64(100*time.Millisecond)/64 {
		t.Fatalf("p50 of the second batch %v, want ~100ms", got)
	}
}

// TestHistogramConcurrent records from many goroutines; -race checks the atomics.
func TestHistogramConcurrent(t *testing.T) {
	t.Parallel()
	var h histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				h.Record(time.Duration(g*1000+i) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	s := h.Snapshot()
	if s.Count() != 8000 || s.Quantile(1) != 7999*time.Microsecond {
		t.Fatalf("count %d max %v", s.Count(), s.Quantile(1))
	}
}
