package broker

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// fdBudget is how many connections the OCPP and MQTT listeners may hold
// open together: the process's descriptor limit less a reserve, so that
// when a flood takes every slot the admin API and /healthz (which are not
// on the budget) still accept, and the process can still open files.
type fdBudget struct {
	limit int64
	inUse atomic.Int64
}

// take claims a slot; false means the budget is spent.
func (b *fdBudget) take() bool {
	if b.inUse.Add(1) > b.limit {
		b.inUse.Add(-1)
		return false
	}
	return true
}

func (b *fdBudget) give() { b.inUse.Add(-1) }

// limitListener is a net.Listener whose connections are on an fdBudget,
// and whose Accept outlasts a descriptor shortage: on EMFILE and other
// temporary errors it backs off (5 ms, doubling, at most 1 s) and tries
// again, as net/http does, instead of returning an error that would end
// an accept loop for good. A connection beyond the budget is closed at
// once and reported to refused.
type limitListener struct {
	net.Listener
	budget  *fdBudget
	refused func()
	// tempErr is told about each temporary error and the delay before the
	// next try (for a sampled log line).
	tempErr func(err error, delay time.Duration)

	closeOnce sync.Once
	closed    chan struct{}
}

func newLimitListener(ln net.Listener, budget *fdBudget, refused func(), tempErr func(error, time.Duration)) *limitListener {
	return &limitListener{Listener: ln, budget: budget, refused: refused, tempErr: tempErr, closed: make(chan struct{})}
}

// Accept implements net.Listener.
func (l *limitListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Temporary() { //nolint:staticcheck // EMFILE is only "temporary", as net/http relies on
				return nil, err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.tempErr(err, delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
				continue
			case <-l.closed:
				t.Stop()
				return nil, net.ErrClosed
			}
		}
		delay = 0
		if !l.budget.take() {
			c.Close()
			l.refused()
			continue
		}
		return &budgetConn{Conn: c, budget: l.budget}, nil
	}
}

// Close implements net.Listener; it also ends a back-off under way.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// budgetConn gives its slot back when closed, once.
type budgetConn struct {
	net.Conn
	budget *fdBudget
	closed atomic.Bool
}

// Close implements net.Conn.
func (c *budgetConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.budget.give()
	}
	return c.Conn.Close()
}
