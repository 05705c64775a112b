package sim

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chargemq/chargemq/schemas"
)

// loadSchemas compiles the project's embedded OCPP 1.6 schemas: what the gateway checks.
func loadSchemas(t *testing.T) *schemas.Set {
	t.Helper()
	s, err := schemas.Load(schemas.Options{Protocol: "ocpp1.6"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// allActions lists the OCPP 1.6 actions the schemas package defines, from its generated
// files, so an action added there is covered here without editing this test.
func allActions(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "schemas", "ocpp16", "*Request.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schema files: %v", err)
	}
	var actions []string
	for _, f := range files {
		actions = append(actions, strings.TrimSuffix(filepath.Base(f), "Request.json"))
	}
	return actions
}

func checkPayload(t *testing.T, s *schemas.Set, action string, response bool, payload []byte) {
	t.Helper()
	if f := s.Check(action, response, payload); f != nil {
		t.Errorf("%s (response %v) %s: %s: %v", action, response, payload, f.Code, f.Error())
	}
}

// TestCallPayloads checks every call a simulated charge point sends against the schemas.
func TestCallPayloads(t *testing.T) {
	t.Parallel()
	s := loadSchemas(t)
	now := time.Date(2026, 11, 25, 18, 0, 0, 123e6, time.FixedZone("CET", 3600))
	cids := []string{"sim-0001", "CP", strings.Repeat("x", 25), strings.Repeat("long-id-", 6), `we"ird\id`}
	for _, action := range []string{ActionHeartbeat, ActionStatusNotification, ActionMeterValues, ActionBootNotification, ActionDataTransfer} {
		t.Run(action, func(t *testing.T) {
			t.Parallel()
			for _, cid := range cids {
				for seq := range uint64(9) {
					checkPayload(t, s, action, false, callPayload(action, cid, seq*1_000_003, now))
				}
			}
		})
	}
}

func TestDataTransferPadding(t *testing.T) {
	t.Parallel()
	s := loadSchemas(t)
	smallest := minDataTransferSize()
	for _, size := range []int{0, 1, smallest - 1, smallest, smallest + 1, 100, 1000, 64 << 10} {
		p := dataTransferPayload(size)
		want := max(size, smallest)
		if len(p) != want {
			t.Errorf("dataTransferPayload(%d) is %d bytes, want %d", size, len(p), want)
		}
		checkPayload(t, s, ActionDataTransfer, false, p)
	}
}

// TestAnswers checks the responder's answer to every action a charge point may send, and the
// simulated charge point's answer to every action a central system may send.
func TestAnswers(t *testing.T) {
	t.Parallel()
	s := loadSchemas(t)
	now := time.Now()
	for _, action := range allActions(t) {
		sender, ok := s.Sender(action)
		if !ok {
			t.Fatalf("schemas do not know %s", action)
		}
		if sender&schemas.SenderChargePoint != 0 {
			p, ok := upstreamAnswer(action, now, 60, 42)
			if !ok {
				t.Errorf("responder has no answer to %s", action)
			} else {
				checkPayload(t, s, action, true, p)
			}
		}
		if sender&schemas.SenderCentralSystem != 0 {
			p, ok := commandAnswers(action)
			if !ok {
				t.Errorf("charge point has no answer to %s", action)
			} else {
				checkPayload(t, s, action, true, []byte(p))
			}
		}
	}
	if _, ok := upstreamAnswer("Reset", now, 60, 1); ok {
		t.Error("responder answers Reset, a central system's call")
	}
}

func TestFrames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		frame []byte
		want  []any
	}{
		{"call", callFrame("17", "Heartbeat", []byte(`{}`)), []any{2.0, "17", "Heartbeat", map[string]any{}}},
		{"result", commandAnswer("c1", "Reset"), []any{3.0, "c1", map[string]any{"status": "Accepted"}}},
		{"not implemented", commandAnswer("c2", "Foo"),
			[]any{4.0, "c2", "NotImplemented", "the simulated charge point does not implement Foo", map[string]any{}}},
		{"odd unique id", callResultFrame("a\"b\\\u2028\x01", []byte(`{}`)), []any{3.0, "a\"b\\\u2028\x01", map[string]any{}}},
	}
	for _, tt := range tests {
		var got []any
		if err := json.Unmarshal(tt.frame, &got); err != nil {
			t.Errorf("%s: %s is not JSON: %v", tt.name, tt.frame, err)
			continue
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(tt.want)
		if string(g) != string(w) {
			t.Errorf("%s: got %s, want %s", tt.name, g, w)
		}
	}
}

func TestBootResult(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		payload  string
		accepted bool
		interval time.Duration
	}{
		{`{"status":"Accepted","currentTime":"2026-01-01T00:00:00Z","interval":300}`, true, 300 * time.Second},
		{`{"status":"Accepted","currentTime":"2026-01-01T00:00:00Z","interval":0}`, true, 0},
		{`{"status":"Pending","currentTime":"2026-01-01T00:00:00Z","interval":5}`, false, 5 * time.Second},
		{`{"status":"Rejected","interval":-3}`, false, 0},
		{`nope`, false, 0},
	} {
		a, iv := bootResult([]byte(tt.payload))
		if a != tt.accepted || iv != tt.interval {
			t.Errorf("bootResult(%s) = %v, %v; want %v, %v", tt.payload, a, iv, tt.accepted, tt.interval)
		}
	}
}

func TestHeartbeatIntervalSetting(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		payload string
		want    time.Duration
		ok      bool
	}{
		{`{"key":"HeartbeatInterval","value":"30"}`, 30 * time.Second, true},
		{`{"key":"HeartbeatInterval","value":"0"}`, 0, false},
		{`{"key":"HeartbeatInterval","value":"soon"}`, 0, false},
		{`{"key":"MeterValueSampleInterval","value":"30"}`, 0, false},
		{`[]`, 0, false},
	} {
		got, ok := heartbeatIntervalSetting([]byte(tt.payload))
		if got != tt.want || ok != tt.ok {
			t.Errorf("heartbeatIntervalSetting(%s) = %v, %v; want %v, %v", tt.payload, got, ok, tt.want, tt.ok)
		}
	}
}
