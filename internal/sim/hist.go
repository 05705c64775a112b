package sim

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram's buckets are log-linear, as in HdrHistogram: every power of two of nanoseconds
// is split into subCount equal buckets, so a bucket is at most 1/subCount (about 3%) of its
// value wide, at any scale. Values below subCount ns get a bucket each.
const (
	subBits  = 5
	subCount = 1 << subBits
	// maxExp bounds the range: values of 2^maxExp ns (about 18 minutes) and more share the last
	// bucket, and the histogram has a fixed size (numBuckets counters, 9 KiB).
	maxExp     = 40
	numBuckets = (maxExp - subBits + 1) * subCount
)

// histogram records latencies from many goroutines at once with a few atomic adds and no
// allocation, in a fixed number of buckets, so a long run at a high rate costs no more memory
// than a short one. Quantiles come out within one bucket's width of the true value.
type histogram struct {
	buckets [numBuckets]atomic.Uint64
	max     atomic.Int64
}

// bucketOf returns the bucket of a value in nanoseconds.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - 1 // position of the top bit, ≥ subBits
	if e >= maxExp {
		return numBuckets - 1
	}
	shift := e - subBits
	return (shift+1)*subCount + int(v>>shift) - subCount
}

// bucketBounds returns the smallest value of bucket i and its width, both in nanoseconds.
func bucketBounds(i int) (lower, width uint64) {
	if i < subCount {
		return uint64(i), 1
	}
	shift := i/subCount - 1
	return uint64(i%subCount+subCount) << shift, 1 << shift
}

// Record adds one latency; a negative one counts as zero.
func (h *histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.buckets[bucketOf(uint64(d))].Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// Snapshot copies the counters, so quantiles can be computed while recording goes on and the
// progress line can show the last second alone (the difference of two snapshots).
func (h *histogram) Snapshot() histSnapshot {
	var s histSnapshot
	for i := range h.buckets {
		n := h.buckets[i].Load()
		s.counts[i] = n
		s.total += n
	}
	s.max = time.Duration(h.max.Load())
	return s
}

// histSnapshot is a copy of a histogram's counters at one moment.
type histSnapshot struct {
	counts [numBuckets]uint64
	total  uint64
	// max is the largest value recorded up to the snapshot (over the whole run, also in the
	// difference of two snapshots, where it only bounds the quantiles).
	max time.Duration
}

// Sub returns the values recorded after prev was taken.
func (s *histSnapshot) Sub(prev *histSnapshot) histSnapshot {
	d := histSnapshot{max: s.max}
	for i := range s.counts {
		d.counts[i] = s.counts[i] - prev.counts[i]
		d.total += d.counts[i]
	}
	return d
}

// Count is the number of values.
func (s *histSnapshot) Count() uint64 { return s.total }

// Quantile returns the value below which a fraction q of the values lie: the middle of the
// bucket holding the value of rank ⌈q·count⌉, never more than the largest value recorded. It
// is 0 for an empty histogram, and Quantile(1) is the largest value.
func (s *histSnapshot) Quantile(q float64) time.Duration {
	if s.total == 0 {
		return 0
	}
	if q >= 1 {
		return s.max
	}
	rank := uint64(math.Ceil(q * float64(s.total)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, n := range s.counts {
		seen += n
		if seen < rank {
			continue
		}
		lower, width := bucketBounds(i)
		v := time.Duration(lower + width/2)
		if i == numBuckets-1 || v > s.max {
			v = s.max
		}
		return v
	}
	return s.max
}
