package ocpp

import (
	"net"
	"sync"
)

// perIPCounter counts the connections of each remote address, for
// Options.MaxConnectionsPerIP. It costs nothing while the bound is off,
// and an address leaves the map with its last connection, so the map is
// never larger than the connections themselves.
type perIPCounter struct {
	mu sync.Mutex
	n  map[string]int
}

// add counts a connection from ip and reports true, or reports false when
// ip already has max (max ≤ 0: no bound, nothing counted).
func (p *perIPCounter) add(ip string, max int) bool {
	if max <= 0 {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[ip] >= max {
		return false
	}
	if p.n == nil {
		p.n = make(map[string]int)
	}
	p.n[ip]++
	return true
}

// remove gives back a connection add counted.
func (p *perIPCounter) remove(ip string, max int) {
	if max <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[ip] <= 1 {
		delete(p.n, ip)
		return
	}
	p.n[ip]--
}

// remoteHost is the address part of an http.Request's RemoteAddr.
func remoteHost(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}
