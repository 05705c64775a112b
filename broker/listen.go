package broker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/coder/websocket"
)

// wsListener adapts MQTT over WebSocket to a net.Listener so that mochi's
// own listeners.Net can serve it: an HTTP server upgrades requests on
// /mqtt and hands each connection to Accept as a net.Conn of binary
// frames. Binding the socket ourselves lets the real port be logged, which
// mochi's WebSocket listener cannot tell.
type wsListener struct {
	ln     net.Listener
	http   *http.Server
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	log    *slog.Logger
}

// mqttWSPath is where MQTT over WebSocket is served (MQTTX's default).
const mqttWSPath = "/mqtt"

func newWSListener(ln net.Listener, log *slog.Logger) *wsListener {
	l := &wsListener{ln: ln, conns: make(chan net.Conn), closed: make(chan struct{}), log: log}
	mux := http.NewServeMux()
	mux.HandleFunc(mqttWSPath, l.upgrade)
	l.http = &http.Server{Handler: mux, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() {
		if err := l.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("mqtt-ws listener stopped", "error", err)
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
	ws.SetReadLimit(-1) // MQTT enforces its own packet size limits
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
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

// Close implements net.Listener.
func (l *wsListener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.http.Close()
	})
	return nil
}

// Addr implements net.Listener.
func (l *wsListener) Addr() net.Addr { return l.ln.Addr() }
