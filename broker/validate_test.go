package broker

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// corpusFile is one file of testdata/frames (see its README).
type corpusFile struct {
	Action string `json:"action"`
	Valid  struct {
		Request  []json.RawMessage `json:"request"`
		Response []json.RawMessage `json:"response"`
	} `json:"valid"`
	Invalid []struct {
		Name     string          `json:"name"`
		Response bool            `json:"response"`
		Payload  json.RawMessage `json:"payload"`
		Code     string          `json:"code"`
	} `json:"invalid"`
}

// TestCorpusThroughTheGateway sends every golden request through the
// running gateway in the direction its action travels: invalid ones from
// a charge point must be answered with the expected CALLERROR and not
// published; invalid commands must get a gateway error invalid_payload
// with the expected code and PUBACK 0x99; valid ones must pass.
func TestCorpusThroughTheGateway(t *testing.T) {
	b := startBroker(t, nil)
	sub := dialMQTT(t, b.Addr(ListenerMQTT), "csms")
	sub.subscribe(t, "ocpp/cp/#")
	cmd := dialMQTT(t, b.Addr(ListenerMQTT), "commander")
	cp := dialCP(t, b, "GOLD")
	waitFor(t, "connected", func() bool { return b.Stats().OCPP.Connected == 1 })

	files, err := filepath.Glob("../testdata/frames/*.json")
	if err != nil || len(files) != 39 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	n := 0
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var c corpusFile
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		fromCP, fromCS, _ := b.ocppSender(c.Action)
		id := func() string { n++; return "g" + strconv.Itoa(n) }
		for _, tc := range c.Invalid {
			if tc.Response {
				continue
			}
			uid := id()
			if fromCP {
				cp.send(t, `[2,"`+uid+`","`+c.Action+`",`+string(tc.Payload)+`]`)
				got := cp.recv(t)
				if got[0] != float64(4) || got[1] != uid || got[2] != tc.Code {
					t.Fatalf("%s %q upstream: answered %v, want %s", c.Action, tc.Name, got, tc.Code)
				}
				continue
			}
			if !fromCS {
				t.Fatalf("%s: no sender", c.Action)
			}
			payload := `{"MessageTypeId":2,"UniqueId":"` + uid + `","Action":"` + c.Action + `","Payload":` + string(tc.Payload) + `}`
			wantAck := byte(0x99)
			if rc := cmd.publish(t, "ocpp/cs/GOLD", payload, 1, false); rc != wantAck {
				t.Fatalf("%s %q downstream: PUBACK 0x%x", c.Action, tc.Name, rc)
			}
			m := sub.next(t, "ocpp/cp/GOLD/Reply")
			d, _ := m["ErrorDetails"].(map[string]any)
			wantReason := "invalid_payload"
			if !json.Valid(tc.Payload) || tc.Payload[0] != '{' {
				wantReason = "malformed" // not an object: refused before the schema
			}
			if m["UniqueId"] != uid || m["ErrorCode"] != tc.Code || d["reason"] != wantReason {
				t.Fatalf("%s %q downstream: gateway error %v, want %s %s", c.Action, tc.Name, m, wantReason, tc.Code)
			}
		}
		// The first valid request passes in its direction.
		uid := id()
		if fromCP {
			cp.send(t, `[2,"`+uid+`","`+c.Action+`",`+string(c.Valid.Request[0])+`]`)
			if m := sub.next(t, "ocpp/cp/GOLD"); m["UniqueId"] != uid {
				t.Fatalf("%s valid upstream: %v", c.Action, m)
			}
			continue
		}
		cmd.publish(t, "ocpp/cs/GOLD", `{"MessageTypeId":2,"UniqueId":"`+uid+`","Action":"`+c.Action+`","Payload":`+string(c.Valid.Request[0])+`}`, 1, false)
		if got := cp.recv(t); got[1] != uid {
			t.Fatalf("%s valid downstream: charge point got %v", c.Action, got)
		}
		cp.send(t, `[3,"`+uid+`",`+string(c.Valid.Response[0])+`]`)
		if m := sub.next(t, "ocpp/cp/GOLD/Reply"); m["UniqueId"] != uid || m["Violations"] != nil {
			t.Fatalf("%s valid answer: %v", c.Action, m)
		}
	}
	if len(b.Stats().OCPP.SchemaFailures) == 0 {
		t.Fatal("no schema failures counted")
	}
}

// ocppSender reports who sends an action, from the loaded schema set.
func (b *Broker) ocppSender(action string) (fromCP, fromCS, ok bool) {
	return b.validators["ocpp1.6"].Sender(action)
}

func TestValidationAnswersAndDirections(t *testing.T) {
	b := startBroker(t, func(o *Options) {
		o.CheckingOverrides = []CheckingOverride{{CID: "LAX*", Mode: CheckDisable}}
	})
	sub := dialMQTT(t, b.Addr(ListenerMQTT), "csms")
	sub.subscribe(t, "ocpp/cp/#")
	cp := dialCP(t, b, "CP1")
	waitFor(t, "connected", func() bool { return b.Stats().OCPP.Connected == 1 })

	// Upstream: the gateway answers, names the field, publishes nothing.
	cp.send(t, `[2,"u1","BootNotification",{"chargePointVendor":"V"}]`)
	got := cp.recv(t)
	jsonEq(t, got, `[4,"u1","OccurenceConstraintViolation","chargePointModel: required",{"violations":[{"field":"chargePointModel","rule":"required","message":"`+got[4].(map[string]any)["violations"].([]any)[0].(map[string]any)["message"].(string)+`"}]}]`)
	cp.send(t, `[2,"u2","Reset",{"type":"Hard"}]`)
	if got := cp.recv(t); got[2] != "NotSupported" {
		t.Fatalf("CP sending Reset: %v", got)
	}
	cp.send(t, `[2,"u3","MakeCoffee",{}]`)
	if got := cp.recv(t); got[2] != "NotImplemented" {
		t.Fatalf("unknown action: %v", got)
	}
	// Downstream: an invalid answer is refused and the call stays open for a
	// corrected one.
	cp.send(t, `[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]`)
	sub.next(t, "ocpp/cp/CP1")
	cmd := dialMQTT(t, b.Addr(ListenerMQTT), "commander")
	if rc := cmd.publish(t, "ocpp/cs/CP1", `{"MessageTypeId":3,"UniqueId":"b1","Payload":{"status":"Maybe"}}`, 1, false); rc != 0x99 {
		t.Fatalf("invalid answer: PUBACK 0x%x", rc)
	}
	m := sub.next(t, "ocpp/cp/CP1/Reply")
	if d := m["ErrorDetails"].(map[string]any); d["reason"] != "invalid_payload" || d["violations"] == nil || m["Action"] != "BootNotification" {
		t.Fatalf("gateway error %v", m)
	}
	if rc := cmd.publish(t, "ocpp/cs/CP1", `{"MessageTypeId":3,"UniqueId":"b1","Payload":{"status":"Accepted","currentTime":"2026-11-25T18:00:00Z","interval":300}}`, 1, false); rc != 0 {
		t.Fatalf("corrected answer: PUBACK 0x%x", rc)
	}
	if got := cp.recv(t); got[0] != float64(3) || got[1] != "b1" {
		t.Fatalf("charge point got %v", got)
	}
	// A command BootNotification is not the central system's to send.
	if rc := cmd.publish(t, "ocpp/cs/CP1", `{"MessageTypeId":2,"UniqueId":"d1","Action":"BootNotification","Payload":{}}`, 1, false); rc != 0x99 {
		t.Fatalf("PUBACK 0x%x", rc)
	}
	if m := sub.next(t, "ocpp/cp/CP1/Reply"); m["ErrorCode"] != "NotSupported" {
		t.Fatalf("gateway error %v", m)
	}
	// An invalid CALLRESULT from the charge point is published with its
	// violations.
	cmd.publish(t, "ocpp/cs/CP1", `{"MessageTypeId":2,"UniqueId":"r1","Action":"Reset","Payload":{"type":"Soft"}}`, 1, false)
	cp.recv(t)
	cp.send(t, `[3,"r1",{"status":"Perhaps"}]`)
	m = sub.next(t, "ocpp/cp/CP1/Reply")
	if v, _ := m["Violations"].([]any); len(v) != 1 || m["Action"] != "Reset" {
		t.Fatalf("invalid answer published as %v", m)
	}

	// An override: this charger is known to be non-compliant.
	lax := dialCP(t, b, "LAX-7")
	waitFor(t, "connected", func() bool { return b.Stats().OCPP.Connected == 2 })
	lax.send(t, `[2,"l1","BootNotification",{"chargePointVendor":"V"}]`)
	if m := sub.next(t, "ocpp/cp/LAX-7"); m["UniqueId"] != "l1" {
		t.Fatalf("override: %v", m)
	}

	// A command is checked before it is found undeliverable: an invalid
	// one for a charge point that is not connected is invalid, not offline.
	if rc := cmd.publish(t, "ocpp/cs/NOBODY", `{"MessageTypeId":2,"UniqueId":"n1","Action":"Reset","Payload":{}}`, 1, false); rc != 0x99 {
		t.Fatalf("invalid command for an offline charge point: PUBACK 0x%x", rc)
	}
	if m := sub.next(t, "ocpp/cp/NOBODY/Reply"); m["ErrorDetails"].(map[string]any)["reason"] != "invalid_payload" {
		t.Fatalf("gateway error %v", m)
	}

	fails := map[string]uint64{}
	for _, f := range b.Stats().OCPP.SchemaFailures {
		fails[f.Direction+" "+f.Action+" "+f.Code] = f.Count
	}
	for _, k := range []string{"upstream BootNotification OccurenceConstraintViolation", "upstream Reset NotSupported",
		"upstream unknown NotImplemented", "downstream BootNotification OccurenceConstraintViolation",
		"downstream BootNotification NotSupported", "upstream Reset PropertyConstraintViolation",
		"downstream Reset OccurenceConstraintViolation"} {
		if fails[k] != 1 {
			t.Fatalf("schema failures %v: want 1 of %q", fails, k)
		}
	}
}

// TestSchemaDirReplacesEmbeddedSchemas: a vendor's corrected schema in
// json_schema_dir, with the configured id prefix, replaces the embedded
// one of the same id in the running gateway.
func TestSchemaDirReplacesEmbeddedSchemas(t *testing.T) {
	dir := t.TempDir()
	// This vendor's chargers omit chargePointModel; the corrected schema
	// requires only the vendor.
	schema := `{"$schema":"http://json-schema.org/draft-04/schema#","id":"urn:acme:BootNotificationRequest",
		"type":"object","properties":{"chargePointVendor":{"type":"string","maxLength":20}},"required":["chargePointVendor"]}`
	if err := os.WriteFile(filepath.Join(dir, "boot.json"), []byte(schema), 0o644); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, func(o *Options) {
		o.SchemaDir = dir
		o.SchemaIDPrefix = "urn:acme:"
	})
	sub := dialMQTT(t, b.Addr(ListenerMQTT), "csms")
	sub.subscribe(t, "ocpp/cp/#")
	cp := dialCP(t, b, "CP1")
	waitFor(t, "connected", func() bool { return b.Stats().OCPP.Connected == 1 })
	cp.send(t, `[2,"v1","BootNotification",{"chargePointVendor":"Acme"}]`)
	if m := sub.next(t, "ocpp/cp/CP1"); m["UniqueId"] != "v1" {
		t.Fatalf("got %v", m)
	}
	// The other embedded schemas still apply.
	cp.send(t, `[2,"v2","Heartbeat",{"x":1}]`)
	if got := cp.recv(t); got[2] != "FormationViolation" {
		t.Fatalf("Heartbeat with an extra property: %v", got)
	}
}

// TestSchemaFallbackIsLoggedAndChecked: a vendor schema with a keyword the
// compiled validator does not implement (pattern) is said once at start,
// naming the schema and the keyword, and is still enforced (by
// gojsonschema) on the charge point's calls.
func TestSchemaFallbackIsLoggedAndChecked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	schema := `{"$schema":"http://json-schema.org/draft-04/schema#","id":"urn:acme:BootNotificationRequest",
		"type":"object","properties":{"chargePointVendor":{"type":"string","pattern":"^ACME"},
		"chargePointModel":{"type":"string"}},"required":["chargePointVendor","chargePointModel"]}`
	if err := os.WriteFile(filepath.Join(dir, "boot.json"), []byte(schema), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	b := startBroker(t, func(o *Options) {
		o.SchemaDir = dir
		o.SchemaIDPrefix = "urn:acme:"
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	if out := logs.String(); strings.Count(out, "compiled validator does not implement") != 1 ||
		!strings.Contains(out, "schema=urn:acme:BootNotificationRequest") || !strings.Contains(out, "keyword=pattern") {
		t.Errorf("startup log does not name the fallback once:\n%s", out)
	}
	cp := dialCP(t, b, "CP1")
	cp.send(t, `[2,"b1","BootNotification",{"chargePointVendor":"Other","chargePointModel":"M"}]`)
	if got := cp.recv(t); got[0] != float64(4) || got[2] != "PropertyConstraintViolation" {
		t.Fatalf("a vendor outside the pattern: %v, want a PropertyConstraintViolation", got)
	}
}
