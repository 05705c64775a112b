package sim

import "time"

// pacer spaces events evenly: event k is due at start + k·interval. A caller that comes late
// by up to a slack still gets every event it missed, one per take, so scheduling hiccups do not
// lower the offered rate; events older than that are dropped, and take says how many, so a
// charge point held up by a slow answer does not flood the gateway afterwards, and the summary
// can say how much of the target rate was not offered.
type pacer struct {
	start    time.Time
	interval time.Duration
	k        int64 // index of the next event
}

// catchUp is the slack of the simulator's pacers: a sender late by less than this (a busy
// machine, a garbage collection) makes up what it missed; later than that, it skips.
const catchUp = 100 * time.Millisecond

// newPacer returns a pacer whose first event is due at start.
func newPacer(start time.Time, interval time.Duration) *pacer {
	if interval <= 0 {
		interval = 1
	}
	return &pacer{start: start, interval: interval}
}

// rateInterval is the time between events at rate per second (rate > 0).
func rateInterval(rate float64) time.Duration {
	d := time.Duration(float64(time.Second) / rate)
	if d <= 0 {
		d = 1
	}
	return d
}

// due returns when the next event is due.
func (p *pacer) due() time.Time { return p.start.Add(time.Duration(p.k) * p.interval) }

// index returns the index of the latest event due at now (-1 before the first).
func (p *pacer) index(now time.Time) int64 {
	if now.Before(p.start) {
		return -1
	}
	return int64(now.Sub(p.start) / p.interval)
}

// ceilIndex returns the index of the first event due at or after t.
func (p *pacer) ceilIndex(t time.Time) int64 {
	if !t.After(p.start) {
		return 0
	}
	d := t.Sub(p.start)
	n := int64(d / p.interval)
	if d%p.interval != 0 {
		n++
	}
	return n
}

// take consumes the next event at now (which must not be before due()) and returns how many
// events before it were dropped: those due more than slack before now, except that the latest
// event due is always taken.
func (p *pacer) take(now time.Time, slack time.Duration) (missed int64) {
	n := p.index(now)                 // the latest event due
	a := p.ceilIndex(now.Add(-slack)) // the first event due within slack of now
	if a > n {
		a = n
	}
	if a < p.k { // nothing dropped (or called early: consume the next one anyway)
		a = p.k
	}
	missed = a - p.k
	p.k = a + 1
	return missed
}

// dropBefore drops the events due at or before t and returns how many: the slots a charge
// point waiting for an answer could not use in time.
func (p *pacer) dropBefore(t time.Time) int64 {
	n := p.index(t)
	if n < p.k {
		return 0
	}
	missed := n - p.k + 1
	p.k = n + 1
	return missed
}

// skipTo drops, without counting them, the events due before now: for a charge point that
// joins the schedule late (it connected, or was accepted, after its first slots).
func (p *pacer) skipTo(now time.Time) {
	if n := p.ceilIndex(now); n > p.k {
		p.k = n
	}
}

// chargePointPacer returns the call schedule of charge point i of count, for calls at total
// rate per second over all of them: each calls every count/rate, and charge point i is offset
// by i/rate from t0, so together they call evenly spaced, 1/rate apart.
func chargePointPacer(t0 time.Time, i, count int, rate float64) *pacer {
	step := rateInterval(rate)
	return newPacer(t0.Add(time.Duration(i)*step), time.Duration(count)*step)
}
