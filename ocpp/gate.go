package ocpp

import (
	"context"
	"sync"
)

// gate admits work until it is closed and lets the closer wait for what it
// admitted: connections (for their whole life) and timer callbacks. It
// exists so that every goroutine the server runs has an owner that waits
// for it, and so that nothing starts once Shutdown has begun — a
// WaitGroup alone allows neither, since Add must never race with Wait.
type gate struct {
	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

// enter admits one piece of work; leave must follow. It reports false once
// the gate is closed, and the work must then not run.
func (g *gate) enter() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

// leave ends work that enter admitted.
func (g *gate) leave() { g.wg.Done() }

// close stops admitting work. It is idempotent.
func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// isClosed reports whether close was called.
func (g *gate) isClosed() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.closed
}

// wait waits until all admitted work has left, or ctx ends. Call it only
// after close.
func (g *gate) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
