package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// eaddrnotavail wraps the errno the way net does.
func eaddrnotavail() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: syscall.EADDRNOTAVAIL}
}

func TestSourcePool(t *testing.T) {
	t.Parallel()
	loop := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		name      string
		target    netip.Addr
		exhausted []string // sources out of ports
		addr      string
		wantDials []string
		wantErr   bool
		wantUsed  int
	}{
		{name: "fresh loopback dials like net.Dial", target: loop, addr: "127.0.0.1:80",
			wantDials: []string{"→127.0.0.1:80"}, wantUsed: 1},
		{name: "a name is dialled at its resolved address", target: loop, addr: "localhost:80",
			wantDials: []string{"→127.0.0.1:80"}, wantUsed: 1},
		{name: "first source out of ports moves to 127.0.0.2", target: loop, addr: "127.0.0.1:80",
			exhausted: []string{""}, wantDials: []string{"→127.0.0.1:80", "127.0.0.2→127.0.0.1:80"}, wantUsed: 2},
		{name: "moves through several", target: loop, addr: "127.0.0.1:80",
			exhausted: []string{"", "127.0.0.2", "127.0.0.3"},
			wantDials: []string{"→127.0.0.1:80", "127.0.0.2→127.0.0.1:80", "127.0.0.3→127.0.0.1:80", "127.0.0.4→127.0.0.1:80"},
			wantUsed:  4},
		{name: "not loopback: no spreading, the error passes", target: netip.MustParseAddr("192.0.2.1"), addr: "192.0.2.1:80",
			exhausted: []string{""}, wantDials: []string{"→192.0.2.1:80"}, wantErr: true, wantUsed: 1},
		{name: "unknown target: no spreading", addr: "example.invalid:80",
			wantDials: []string{"→example.invalid:80"}, wantUsed: 1},
		{name: "IPv6 loopback: no spreading", target: netip.MustParseAddr("::1"), addr: "[::1]:80",
			exhausted: []string{""}, wantDials: []string{"→[::1]:80"}, wantErr: true, wantUsed: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var dials []string
			exhausted := map[string]bool{}
			for _, s := range tt.exhausted {
				exhausted[s] = true
			}
			p := newSourcePool(tt.target, func(_ context.Context, _, addr string, local net.Addr) (net.Conn, error) {
				src := ""
				if local != nil {
					src = local.(*net.TCPAddr).IP.String()
				}
				mu.Lock()
				defer mu.Unlock()
				dials = append(dials, src+"→"+addr)
				if exhausted[src] {
					return nil, eaddrnotavail()
				}
				return nil, nil
			})
			_, err := p.DialContext(context.Background(), "tcp", tt.addr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if fmt.Sprint(dials) != fmt.Sprint(tt.wantDials) {
				t.Errorf("dials %q, want %q", dials, tt.wantDials)
			}
			if p.Used() != tt.wantUsed {
				t.Errorf("Used() = %d, want %d", p.Used(), tt.wantUsed)
			}
			// The pool stays on the source that worked.
			if !tt.wantErr {
				dials = nil
				p.DialContext(context.Background(), "tcp", tt.addr)
				if len(dials) != 1 || dials[0] != tt.wantDials[len(tt.wantDials)-1] {
					t.Errorf("next dial %q, want %q", dials, tt.wantDials[len(tt.wantDials)-1])
				}
			}
		})
	}
}

// TestSourcePoolExhausted: with every source out of ports the dial fails, after trying each
// once, instead of looping.
func TestSourcePoolExhausted(t *testing.T) {
	t.Parallel()
	n := 0
	p := newSourcePool(netip.MustParseAddr("127.0.0.1"), func(context.Context, string, string, net.Addr) (net.Conn, error) {
		n++
		return nil, eaddrnotavail()
	})
	if _, err := p.DialContext(context.Background(), "tcp", "127.0.0.1:80"); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("err = %v, want EADDRNOTAVAIL", err)
	}
	if n != maxSources || p.Used() != maxSources {
		t.Fatalf("%d dials, Used() = %d; want %d", n, p.Used(), maxSources)
	}
}

// TestSourcePoolAdvanceOnce: many dials failing on the same source move the pool on once.
func TestSourcePoolAdvanceOnce(t *testing.T) {
	t.Parallel()
	p := newSourcePool(netip.MustParseAddr("127.0.0.1"), nil)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() { defer wg.Done(); p.advance(0) }()
	}
	wg.Wait()
	if p.Used() != 2 {
		t.Fatalf("Used() = %d after 16 failures on source 0, want 2", p.Used())
	}
}

// TestSourcePoolRealSockets dials a real listener from 127.0.0.2 after the first source
// "runs out", and checks the server sees that source (Linux routes all of 127/8 to lo).
func TestSourcePoolRealSockets(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("127.0.0.2 is a loopback address only on Linux")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Addr, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c.RemoteAddr()
		c.Close()
	}()
	defer wg.Wait()

	p := newSourcePool(netip.MustParseAddr("127.0.0.1"), func(ctx context.Context, network, addr string, local net.Addr) (net.Conn, error) {
		if local == nil {
			return nil, eaddrnotavail() // pretend the kernel's source is full
		}
		return netDial(ctx, network, addr, local)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := p.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	remote := <-accepted
	if ap, err := netip.ParseAddrPort(fmt.Sprint(remote)); err != nil || ap.Addr() != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("server saw %v, want a connection from 127.0.0.2", remote)
	}
}

func TestResolveTarget(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got := resolveTarget(ctx, "127.0.0.5"); got != netip.MustParseAddr("127.0.0.5") {
		t.Errorf("resolveTarget(127.0.0.5) = %v", got)
	}
	if got := resolveTarget(ctx, "::1"); got != netip.IPv6Loopback() {
		t.Errorf("resolveTarget(::1) = %v", got)
	}
	if got := resolveTarget(ctx, "no-such-host.invalid"); got.IsValid() {
		t.Errorf("resolveTarget(no-such-host.invalid) = %v, want none", got)
	}
}
