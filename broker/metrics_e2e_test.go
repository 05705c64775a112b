package broker

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestMetricsAfterScenario: the metric families hold the right values
// after a scripted scenario through a real broker (a call, a command and
// its answer, a malformed frame, a kick, a refused handshake), and
// /metrics is served on the admin listener without credentials.
func TestMetricsAfterScenario(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	csms := dialMQTT(t, b.Addr(ListenerMQTT), "csms")
	csms.subscribe(t, "ocpp/cp/#")
	cp := dialCP(t, b, "CP1")
	waitFor(t, "CP1 connected", func() bool { return b.Stats().OCPP.Connected == 1 })

	cp.send(t, `[2,"h1","Heartbeat",{}]`)
	csms.next(t, "ocpp/cp/CP1")
	csms.publish(t, "ocpp/cs/CP1", `{"MessageTypeId":2,"UniqueId":"r1","Action":"Reset","Payload":{"type":"Soft"}}`, 1, false)
	if got := cp.recv(t); got[1] != "r1" {
		t.Fatalf("charge point got %v, want the Reset", got)
	}
	cp.send(t, `[3,"r1",{"status":"Accepted"}]`)
	cp.send(t, `not a frame`)
	cp.recv(t) // its CALLERROR
	waitFor(t, "the answer counted", func() bool { return b.Stats().OCPP.FramesIn["malformed"] == 1 })
	if _, ok := b.Kick("CP1", 0); !ok {
		t.Fatal("kick")
	}
	cp.ws.CloseRead(context.Background()) // answers the close handshake
	waitFor(t, "CP1 gone", func() bool { return b.Stats().OCPP.Connected == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := websocket.Dial(ctx, "ws://"+b.Addr(ListenerOCPP).String()+"/ocpp/CP2",
		&websocket.DialOptions{Subprotocols: []string{"mqtt"}}); err == nil {
		t.Fatal("a bad subprotocol was admitted")
	}

	s := scrapeMetrics(t, b.metrics)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"chargemq_ocpp_frames_total", []string{"direction", "in", "type", "call", "action", "Heartbeat"}, 1},
		{"chargemq_ocpp_frames_total", []string{"direction", "out", "type", "callresult", "action", "Heartbeat"}, 0},
		{"chargemq_ocpp_frames_total", []string{"direction", "out", "type", "call", "action", "Reset"}, 1},
		{"chargemq_ocpp_frames_total", []string{"direction", "in", "type", "callresult", "action", "Reset"}, 1},
		{"chargemq_ocpp_frames_total", []string{"direction", "in", "type", "malformed", "action", "none"}, 1},
		{"chargemq_ocpp_frames_total", []string{"direction", "out", "type", "callerror", "action", "none"}, 1},
		{"chargemq_ocpp_frames_refused_total", []string{"kind", "malformed"}, 1},
		{"chargemq_ocpp_disconnects_total", []string{"reason", "kicked"}, 1},
		{"chargemq_ocpp_connections_accepted_total", nil, 1},
		{"chargemq_ocpp_connections_refused_total", []string{"reason", "bad_subprotocol"}, 1},
		{"chargemq_charge_points_connected", nil, 0},
		{"chargemq_mqtt_clients_connected", nil, 1},
		{"chargemq_commands_outstanding", nil, 0},
	} {
		if got := s.value(t, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := s.sample("chargemq_command_round_trip_seconds", "action", "Reset").GetHistogram().GetSampleCount(); n != 1 {
		t.Errorf("round trips of Reset observed: %d, want 1", n)
	}
	if v := s.value(t, "chargemq_ocpp_bytes_total", "direction", "in"); v == 0 {
		t.Error("no bytes in counted")
	}

	resp, err := http.Get("http://" + b.Addr(ListenerHTTP).String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /metrics: %d", resp.StatusCode)
	}
}
