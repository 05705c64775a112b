// Package mqtttest is the test scaffolding the hook packages share: a real mochi server on a
// loopback port, MQTT 5 clients from paho.golang and a minimal MQTT 3.1.1 client written with
// mochi's own packet encoder, so that each hook is tested against the broker it runs in and over
// both protocol versions.
//
// It lives under hooks/internal because hooks may import no other project package, test files
// included; it imports only mochi, paho.golang and the standard library for the same reason.
// Every helper takes the test's testing.TB, fails the test itself on a broken precondition
// (t.Fatal, so call them from the test goroutine) and releases what it opened with t.Cleanup.
package mqtttest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Timeout bounds every wait of the helpers (connect, acknowledgements, reads, expected
// messages), so that a missing packet fails the test instead of hanging it.
const Timeout = 5 * time.Second

// StartServer runs a mochi server with hooks on 127.0.0.1:<free port> and returns it and its
// address, so that tests see hooks as real clients do. The server has an inline client (for
// tests that inject packets) and a discarded log; t.Cleanup closes it.
func StartServer(t testing.TB, hooks ...mqtt.Hook) (*mqtt.Server, string) {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{
		InlineClient: true,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	for _, h := range hooks {
		if err := srv.AddHook(h, nil); err != nil {
			t.Fatalf("AddHook: %v", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		t.Fatalf("AddListener: %v", err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(func() {
		// mochi v2.7.9's Close disconnects a listener's clients through
		// Clients.GetByListener, which takes the clients' read lock twice and
		// deadlocks when a client disconnects in between, as a test's own
		// clients do in their cleanups. Close the listener first with a
		// closer that works on one copied list, as the broker does.
		srv.Listeners.Close("tcp", func(id string) {
			for _, cl := range srv.Clients.GetAll() {
				if cl.Net.Listener == id && !cl.Closed() {
					_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
				}
			}
		})
		srv.Listeners.Delete("tcp")
		_ = srv.Close()
	})
	return srv, ln.Addr().String()
}

// timeoutContext returns a context that expires after Timeout and is cancelled by t.Cleanup.
func timeoutContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}
