package broker

import (
	"context"
	"crypto/tls"
	"errors"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// wsListener adapts MQTT over WebSocket to a net.Listener so that the
// broker's MQTT accept loop serves it like TCP: an HTTP server upgrades
// requests on /mqtt and hands each connection to Accept as a net.Conn of
// binary frames. Binding the socket ourselves lets the real port be
// logged, which mochi's WebSocket listener cannot tell.
type wsListener struct {
	ln     net.Listener
	http   *http.Server
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	served chan struct{} // closed when the HTTP server's Serve returns
	log    *slog.Logger
	// readLimit bounds one WebSocket message: mqtt.max_packet_size plus
	// room for the fixed header, so a client that sends one packet per
	// message (as MQTT clients do) meets the packet bound, not this one.
	readLimit int64
}

// mqttWSPath is where MQTT over WebSocket is served (MQTTX's default).
const mqttWSPath = "/mqtt"

// newWSListener serves the upgrade on ln. headerTimeout bounds the HTTP
// request (a half-sent upgrade is dropped after it); maxPacket is
// mqtt.max_packet_size.
func newWSListener(ln net.Listener, headerTimeout time.Duration, maxPacket int, log *slog.Logger, errorLog *stdlog.Logger) *wsListener {
	l := &wsListener{ln: ln, conns: make(chan net.Conn), closed: make(chan struct{}), served: make(chan struct{}),
		log: log, readLimit: int64(maxPacket) + 16}
	mux := http.NewServeMux()
	mux.HandleFunc(mqttWSPath, l.upgrade)
	l.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: headerTimeout,
		ErrorLog:          errorLog,
	}
	go func() {
		defer close(l.served)
		if err := l.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("listener stopped", "listener", ListenerMQTTWS, "error", err)
		}
	}()
	return l
}

func (l *wsListener) upgrade(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{"mqtt"},
		// Browser MQTT clients (MQTTX web) connect from other origins; the
		// MQTT layer authenticates, as with mochi's own listener.
		InsecureSkipVerify: true,
	})
	if err != nil {
		l.log.Debug("mqtt-ws upgrade failed", "remote", r.RemoteAddr, "error", err)
		return
	}
	var nc net.Conn = websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	ws.SetReadLimit(l.readLimit) // after NetConn, which lifts the limit
	if r.TLS != nil {
		nc = wssConn{nc, *r.TLS}
	}
	select {
	case l.conns <- nc:
	case <-l.closed:
		nc.Close()
	}
}

// Accept implements net.Listener.
func (l *wsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener: it stops the HTTP server (upgrades in
// progress are dropped) and waits for its Serve to return.
func (l *wsListener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.http.Close()
		<-l.served
	})
	return nil
}

// Addr implements net.Listener.
func (l *wsListener) Addr() net.Addr { return l.ln.Addr() }

// wssConn is an MQTT-over-wss connection with the TLS state of its
// upgrade, for a login by client certificate.
type wssConn struct {
	net.Conn
	state tls.ConnectionState
}

// ConnectionState implements tlsConn.
func (c wssConn) ConnectionState() tls.ConnectionState { return c.state }
