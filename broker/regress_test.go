package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chargemq/chargemq/broker/certs"
	"github.com/chargemq/chargemq/internal/testpki"
)

// TestTLSHandshakeFailuresCounted: a failed TLS handshake, which never
// reaches OCPP or MQTT, is counted as tls_handshake and logged at INFO
// with the listener, on the wss listener (net/http reports it) and on
// mqtts (the broker's own accept loop).
func TestTLSHandshakeFailuresCounted(t *testing.T) {
	t.Parallel()
	ca, other := testpki.NewCA(t, "depot CA"), testpki.NewCA(t, "other CA")
	dir := t.TempDir()
	cert, key := ca.Server(t, testpki.ECDSA).WriteFiles(t, dir, "server")
	logs := &syncBuffer{}
	b := startBroker(t, func(o *Options) {
		o.OCPPTLSAddr, o.MQTTTLSAddr = "127.0.0.1:0", "127.0.0.1:0"
		o.TLS = certs.Options{Certificates: []certs.Pair{{Cert: cert, Key: key}}, ClientCA: ca.WriteFile(t, dir, "ca")}
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	foreign := other.Client(t, "CP1", "", testpki.ECDSA).TLS
	for _, l := range []string{ListenerOCPPTLS, ListenerMQTTTLS} {
		// GetClientCertificate: Go's client would send no certificate at
		// all when the server asks for another CA's.
		c, err := tls.Dial("tcp", b.Addr(l).String(), &tls.Config{RootCAs: ca.Pool, MaxVersion: tls.VersionTLS12,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil }})
		if err == nil {
			c.Close()
			t.Fatalf("%s: handshake with a foreign client certificate succeeded", l)
		}
	}
	waitFor(t, "two failed handshakes counted", func() bool { return b.Stats().Refused["tls_handshake"] == 2 })
	waitFor(t, "both logged", func() bool {
		out := logs.String()
		return strings.Count(out, "TLS handshake failed") == 2 &&
			strings.Contains(out, "listener="+ListenerOCPPTLS) && strings.Contains(out, "listener="+ListenerMQTTTLS)
	})
}

// TestMQTTWSMessageLimit: on MQTT over WebSocket one message may not be
// larger than mqtt.max_packet_size (plus a fixed header): a client that
// packs many packets into one huge message is closed 1009 before the
// broker reads it, not served packet by packet.
func TestMQTTWSMessageLimit(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.MQTT.MaxPacketSize = 1 << 10 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+b.Addr(ListenerMQTTWS).String()+"/mqtt", &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	connect := []byte{0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x01, 'x'}
	msg := append(connect, bytes.Repeat([]byte{0xc0, 0x00}, 4096)...) // and 4,096 PINGREQs
	if err := ws.Write(ctx, websocket.MessageBinary, msg); err != nil {
		t.Fatal(err)
	}
	for {
		_, _, err := ws.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusMessageTooBig {
				t.Fatalf("read: %v (close %v), want close 1009", err, code)
			}
			return
		}
	}
}

// TestShutdownTwice: a second Shutdown (an explicit one, then a deferred
// one) returns the first's result instead of closing mochi again.
func TestShutdownTwice(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}
