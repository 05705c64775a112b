package sim

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// maxSources bounds how many loopback source addresses the simulator moves through: 127.0.0.1
// to 127.0.0.250, about 28,000 connections each with Linux's default ephemeral port range, far
// more charge points than one process will hold.
const maxSources = 250

// dialFunc dials addr from local (nil: the kernel chooses the source address).
type dialFunc func(ctx context.Context, network, addr string, local net.Addr) (net.Conn, error)

// sourcePool spreads TCP dials to a loopback target over several source addresses. A
// connection is identified by its four-tuple, so to one server address and port a source
// address has room for one connection per ephemeral port (about 28,000 on Linux); when dials
// start failing with EADDRNOTAVAIL the pool moves on to the next address of 127.0.0.0/8, every
// one of which reaches the loopback interface on Linux. It moves lazily, not round-robin, so a
// run small enough for one address uses exactly what a plain dial would, and the gateway sees
// one client address.
type sourcePool struct {
	dial dialFunc
	// spread is false when the target is not an IPv4 loopback address: other hosts cannot be
	// reached from 127.x, and the pool then dials like net.Dialer.
	spread bool
	// target is the loopback address dialled when spreading (a name such as localhost is
	// resolved once, so every dial goes to the same address).
	target netip.Addr

	mu  sync.Mutex
	cur int // index of the source in use: 0 is the kernel's choice, i is 127.0.0.(i+1)
}

// newSourcePool returns a pool for dials to target, the address the target host name resolved
// to (the zero Addr when unknown), using dial (netDial when nil).
func newSourcePool(target netip.Addr, dial dialFunc) *sourcePool {
	if dial == nil {
		dial = netDial
	}
	target = target.Unmap()
	return &sourcePool{dial: dial, spread: target.Is4() && target.IsLoopback(), target: target}
}

// resolveTarget returns the IPv4 address host names, for newSourcePool: the address itself, or
// the first IPv4 address of a name. It returns the zero Addr when there is none, and the pool
// then does not spread.
func resolveTarget(ctx context.Context, host string) netip.Addr {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil || len(ips) == 0 {
		return netip.Addr{}
	}
	return ips[0]
}

// netDial is a plain TCP dial from local.
func netDial(ctx context.Context, network, addr string, local net.Addr) (net.Conn, error) {
	d := net.Dialer{KeepAlive: 30 * time.Second}
	if local != nil {
		d.LocalAddr = local
	}
	return d.DialContext(ctx, network, addr)
}

// source returns the local address of source index i (nil for the kernel's choice).
func source(i int) net.Addr {
	if i == 0 {
		return nil
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i+1))}
}

// DialContext dials addr, moving to the next source address each time the current one has no
// free port left. It has the signature of http.Transport.DialContext.
func (p *sourcePool) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	for {
		p.mu.Lock()
		i := p.cur
		p.mu.Unlock()
		var local net.Addr
		to := addr
		if p.spread {
			local = source(i)
			if _, port, err := net.SplitHostPort(addr); err == nil {
				to = net.JoinHostPort(p.target.String(), port)
			}
		}
		c, err := p.dial(ctx, network, to, local)
		if err == nil || !p.spread || !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return c, err
		}
		if !p.advance(i) {
			return nil, err
		}
	}
}

// advance moves past source i after it ran out of ports, unless another dial already did (many
// dials fail at once when an address fills up: only the first moves the pool on). It reports
// false when there is no address left.
func (p *sourcePool) advance(i int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == i {
		if i+1 >= maxSources {
			return false
		}
		p.cur = i + 1
	}
	return true
}

// Used returns how many source addresses have been used so far.
func (p *sourcePool) Used() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur + 1
}
