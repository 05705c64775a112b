package broker

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The MQTT side is served by the broker's own accept loops, not by mochi's
// listeners: mochi's loop ends for good on the first Accept error
// (EMFILE), shares one error variable between connection goroutines, and
// starts each connection on a goroutine nothing waits for, which races
// with Server.Close (ClientsWg.Add after Wait) and keeps Close waiting
// for a client that never sends CONNECT. Here every connection is
// tracked from Accept to the end of mochi's EstablishConnection, so
// Shutdown can close them all, wait for them, and only then let mochi
// close.

// mqttConns tracks the MQTT connections being served.
type mqttConns struct {
	mu     sync.Mutex
	closed bool
	open   map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// add starts tracking c; false once close was called (c must be closed).
func (t *mqttConns) add(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	if t.open == nil {
		t.open = make(map[net.Conn]struct{})
	}
	t.open[c] = struct{}{}
	t.wg.Add(1)
	return true
}

func (t *mqttConns) done(c net.Conn) {
	t.mu.Lock()
	delete(t.open, c)
	t.mu.Unlock()
	t.wg.Done()
}

// close stops tracking new connections and closes every open one
// (clients mochi did not disconnect, and those that never sent CONNECT).
// It returns how many it closed.
func (t *mqttConns) close() int {
	t.mu.Lock()
	t.closed = true
	conns := make([]net.Conn, 0, len(t.open))
	for c := range t.open {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return len(conns)
}

// wait waits for every tracked connection to end, or until done closes.
func (t *mqttConns) wait(done <-chan struct{}) bool {
	finished := make(chan struct{})
	go func() { t.wg.Wait(); close(finished) }()
	select {
	case <-finished:
		return true
	case <-done:
		return false
	}
}

// serveMQTT runs the accept loop of one MQTT listener until ln is closed.
func (b *Broker) serveMQTT(id string, ln net.Listener) {
	b.loops.Add(1)
	go func() {
		defer b.loops.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					b.log.Error("listener stopped", "listener", id, "error", err)
				}
				return
			}
			// [MQTT-3.1.4] mochi reads CONNECT with no deadline; it
			// replaces this one with the keep-alive's once CONNECT is in.
			nc.SetDeadline(time.Now().Add(b.opts.MQTT.ConnectTimeout))
			c := &packetGuard{Conn: nc, max: b.opts.MQTT.MaxPacketSize, tooLarge: &b.counts.packetTooLarge}
			if !b.mqttConns.add(c) {
				c.Close()
				return
			}
			go func() {
				defer b.mqttConns.done(c)
				if tc, ok := nc.(*tls.Conn); ok && !b.handshakeMQTT(id, tc) {
					c.Close()
					return
				}
				b.establish(id, c)
			}()
		}
	}()
}

// establish hands a connection to mochi and counts how it ended when it
// was refused before becoming a client. It runs on the goroutine that
// reads c, so c's reader state is safe to look at afterwards.
func (b *Broker) establish(listener string, c *packetGuard) {
	err := b.mqtt.EstablishConnection(listener, c)
	var ne net.Error
	switch {
	case err == nil:
	case errors.Is(err, packets.ErrServerBusy):
		b.counts.refused(refusedMaxClients)
		b.log.Info("mqtt client refused: max_clients reached", "listener", listener, "remote", c.RemoteAddr().String())
	case c.packets == 0 && errors.As(err, &ne) && ne.Timeout():
		b.counts.refused(refusedConnectTimeout)
		b.log.Debug("mqtt connection closed: no CONNECT within connect_timeout", "listener", listener, "remote", c.RemoteAddr().String())
	default:
		b.log.Debug("mqtt connection ended", "listener", listener, "remote", c.RemoteAddr().String(), "error", err)
	}
}

// packetGuard is an MQTT connection that refuses a packet larger than max
// before mochi reads it. It follows the stream's packet boundaries (fixed
// headers only; bodies are skipped), so a too-large packet is seen at its
// header: an MQTT 5 client then gets DISCONNECT 0x95 Packet too large, as
// mochi, which only drops the connection, does not send.
type packetGuard struct {
	net.Conn
	max      int
	tooLarge *atomic.Uint64

	wmu sync.Mutex // mochi writes whole packets per Write; so does reject

	// Reader state (mochi reads on one goroutine).
	err      error
	state    uint8 // 0 type byte, 1 length bytes, 2 body
	length   int
	shift    uint
	skip     int
	packets  int     // packets seen, to spot the first (CONNECT)
	connect  [8]byte // start of the CONNECT body, for the protocol version
	connectN int
}

// errPacketTooLarge ends the read side of a guarded connection.
var errPacketTooLarge = errors.New("broker: mqtt packet larger than mqtt.max_packet_size")

// Read implements net.Conn.
func (g *packetGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.Conn.Read(p)
	if at := g.scan(p[:n]); at >= 0 {
		g.err = errPacketTooLarge
		g.tooLarge.Add(1)
		g.reject()
		if at == 0 {
			return 0, g.err
		}
		return at, nil // the packets before it still count
	}
	return n, err
}

// Write implements net.Conn.
func (g *packetGuard) Write(p []byte) (int, error) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	return g.Conn.Write(p)
}

// scan follows the packet boundaries through b. It returns the offset of
// the fixed header of a too-large packet, or -1.
func (g *packetGuard) scan(b []byte) int {
	start := 0 // offset of the current packet's first byte within b
	for i := 0; i < len(b); {
		switch g.state {
		case 0: // packet type
			start = i
			g.state, g.length, g.shift = 1, 0, 0
			i++
		case 1: // remaining length, 1 to 4 bytes [MQTT-2.1.4]
			c := b[i]
			i++
			g.length |= int(c&0x7f) << g.shift
			g.shift += 7
			if c&0x80 != 0 {
				if g.shift >= 28 {
					g.state = 3 // malformed: mochi will say so
				}
				continue
			}
			if g.length+1 > g.max { // mochi's own measure
				return start
			}
			g.packets++
			g.skip, g.state = g.length, 2
			if g.skip == 0 {
				g.state = 0
			}
		case 2: // body
			n := min(g.skip, len(b)-i)
			if g.packets == 1 && g.connectN < len(g.connect) {
				g.connectN += copy(g.connect[g.connectN:], b[i:i+n])
			}
			g.skip -= n
			i += n
			if g.skip == 0 {
				g.state = 0
			}
		default:
			return -1
		}
	}
	return -1
}

// version is the protocol level of the client's CONNECT (0 unknown).
func (g *packetGuard) version() byte {
	if g.connectN < 2 {
		return 0
	}
	nameLen := int(g.connect[0])<<8 | int(g.connect[1])
	if 2+nameLen >= g.connectN {
		return 0
	}
	return g.connect[2+nameLen]
}

// reject tells an MQTT 5 client why it is being disconnected.
func (g *packetGuard) reject() {
	if g.version() != 5 {
		return // 3.1.1 has no DISCONNECT from the server: just close
	}
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	g.Conn.Write([]byte{packets.Disconnect << 4, 1, packets.ErrPacketTooLarge.Code})
}

// ConnectionState is the TLS state of the connection under the guard
// (zero for plain TCP), so the access hook can find a client certificate.
func (g *packetGuard) ConnectionState() tls.ConnectionState {
	if tc, ok := g.Conn.(tlsConn); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}
