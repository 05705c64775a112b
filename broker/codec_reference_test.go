package broker

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/chargemq/chargemq/ocpp"
	"github.com/chargemq/chargemq/schemas"
)

// referenceCommand is the struct encoding/json decoded a downstream message
// into before decodeCommand scanned it by hand. Pointers tell a missing
// member from an empty one.
type referenceCommand struct {
	MessageTypeID    *json.Number    `json:"MessageTypeId"`
	UniqueID         *string         `json:"UniqueId"`
	Action           string          `json:"Action"`
	Payload          json.RawMessage `json:"Payload"`
	ErrorCode        string          `json:"ErrorCode"`
	ErrorDescription string          `json:"ErrorDescription"`
	ErrorDetails     json.RawMessage `json:"ErrorDetails"`
}

// referenceDecodeCommand is decodeCommand as it was, with encoding/json:
// the oracle of FuzzDecodeCommandMatchesReference. It returns the frame,
// or whether the message was refused, with the UniqueId and Action it
// could read.
func referenceDecodeCommand(payload []byte) (f ocpp.Frame, refused bool, id, action string) {
	if !utf8.Valid(payload) {
		return f, true, "", ""
	}
	var c referenceCommand
	err := json.Unmarshal(payload, &c)
	if c.UniqueID != nil {
		id = *c.UniqueID
	}
	action = c.Action
	if err != nil || c.MessageTypeID == nil || id == "" || len(id) > maxUniqueIDLen {
		return f, true, id, action
	}
	f.UniqueID = id
	switch *c.MessageTypeID {
	case "2":
		if c.Action == "" {
			return f, true, id, action
		}
		f.Type, f.Action, f.Payload = ocpp.TypeCall, c.Action, c.Payload
	case "3":
		f.Type, f.Payload = ocpp.TypeCallResult, c.Payload
	case "4":
		if c.ErrorCode == "" {
			return f, true, id, action
		}
		if len(c.ErrorDetails) != 0 && string(c.ErrorDetails) != "null" && !ocpp.IsObject(c.ErrorDetails) {
			return f, true, id, action
		}
		f.Type, f.ErrorCode, f.ErrorDescription = ocpp.TypeCallError, c.ErrorCode, c.ErrorDescription
		if string(c.ErrorDetails) != "null" {
			f.ErrorDetails = c.ErrorDetails
		}
		return f, false, id, action
	default:
		return f, true, id, action
	}
	if !ocpp.IsObject(f.Payload) {
		return f, true, id, action
	}
	return f, false, id, action
}

// FuzzDecodeCommandMatchesReference holds decodeCommand to the
// encoding/json decoder it replaced: the same messages accepted, the same
// frame from each, the same UniqueId and Action echoed in a refusal when
// encoding/json read the whole message. With the 1.6 validator, a payload
// checked in the decoding pass gets the verdict Check gives it (code,
// description and violations), and it is checked in that pass whenever
// MessageTypeId 2 and a central system's Action come before it.
func FuzzDecodeCommandMatchesReference(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`{"MessageTypeId":2,"UniqueId":"c1","Action":"Reset","Payload":{"type":"Hard"}}`,
		`{"MessageTypeId":2,"UniqueId":"c1","Action":"Reset","Payload":{"type":"Warm"}}`,
		`{"MessageTypeId":2,"UniqueId":"c1","Action":"Reset","Payload":{}}`,
		`{"MessageTypeId":2,"UniqueId":"c1","Action":"Reset","Payload":{"type":"Soft","x":1}}`,
		`{"MessageTypeId":2,"UniqueId":"c1","Payload":{"type":"Warm"},"Action":"Reset"}`,
		`{"MessageTypeId":2,"UniqueId":"c1","Action":"Reset","Payload":{"type":"Warm"},"Action":"ClearCache"}`,
		`{"MessageTypeId":2,"UniqueId":"c1","Action":"Reset","Payload":{"type":"Warm"},"MessageTypeId":3}`,
		`{"MessageTypeId":2,"UniqueId":"c1","Action":"Reset","Payload":{"type":"Warm"},"Payload":{"type":"Soft"}}`,
		`{"MessageTypeId":2,"UniqueId":"c1","Action":"Heartbeat","Payload":{}}`,
		`{"MessageTypeId":2,"UniqueId":"c1","Action":"Nonsense","Payload":{}}`,
		`{"MessageTypeId":2,"UniqueId":"c1","Action":"Reset","Payload":{"type":"Soft"},"Other":[1,{"a":null}]}`,
		`{"MESSAGETYPEID":2,"uniqueid":"c1","ACTION":"Reset","PAYLOAD":{"type":"Soft"}}`,
		`{"Me\u017f\u017fageTypeId":2,"UniqueId":"c1","Action":"Reset","Payload":{"type":"Soft"}}`,
		`{"Message\u0054ypeId":2,"UniqueId":"c1","Action":"Reset","Payload":{"type":"Soft"}}`,
		`{"MessageTypeId":"\u0032","UniqueId":"c1","Action":"Reset","Payload":{"type":"Soft"}}`,
		`{"MessageTypeId":2,"UniqueId":"c1","Action":null,"Payload":{}}`,
		`{"MessageTypeId":2,"UniqueId":"c1","Action":"Reset","Action":null,"Payload":{"type":"Soft"}}`,
		`{"MessageTypeId":2,"UniqueId":"c1","Action":true,"Payload":{}}`,
		`{"MessageTypeId":[2],"UniqueId":"c1","Action":"Reset","Payload":{}}`,
		`{"MessageTypeId":2,"UniqueId":"c1","Action":"Reset","Payload":{"type":"Soft"}} x`,
		` {"MessageTypeId":2 , "UniqueId" : "c1" ,"Action":"Reset","Payload": {"type":"Soft"} } `,
		`{"MessageTypeId":3,"UniqueId":"c1","Action":"Reset","Payload":{"status":"Accepted"}}`,
		`{"MessageTypeId":2,"UniqueId":"c1","Action":"SetChargingProfile","Payload":{"connectorId":1,"csChargingProfiles":{"chargingProfileId":7,"stackLevel":1,"chargingProfilePurpose":"TxDefaultProfile","chargingProfileKind":"Absolute","chargingSchedule":{"chargingRateUnit":"A","chargingSchedulePeriod":[{"startPeriod":0,"limit":6.05}]}}}}`,
	} {
		f.Add([]byte(s))
	}
	v := testValidator(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		want, refused, id, action := referenceDecodeCommand(data)
		for _, sv := range []ocpp.ScanValidator{nil, v} {
			cmd, bad := decodeCommand(data, sv, ocpp.OCPP16)
			if (bad != nil) != refused {
				t.Fatalf("decodeCommand(%q) refused %v (%v); encoding/json refused %v", data, bad != nil, bad, refused)
			}
			if refused {
				// encoding/json stopped at a syntax error or an invalid
				// number without reading the rest; elsewhere it read all.
				var c referenceCommand
				if json.Unmarshal(data, &c) == nil || isTypeError(data) {
					if bad.uniqueID != id || bad.action != action {
						t.Fatalf("decodeCommand(%q) echoes %q %q; encoding/json read %q %q", data, bad.uniqueID, bad.action, id, action)
					}
				}
				continue
			}
			got := cmd.Frame
			if got.Type != want.Type || got.UniqueID != want.UniqueID || got.Action != want.Action ||
				got.ErrorCode != want.ErrorCode || got.ErrorDescription != want.ErrorDescription ||
				!bytes.Equal(got.Payload, want.Payload) || !bytes.Equal(got.ErrorDetails, want.ErrorDetails) {
				t.Fatalf("decodeCommand(%q) = %+v; encoding/json read %+v", data, got, want)
			}
			if sv == nil {
				if cmd.CheckedAs != "" {
					t.Fatalf("decodeCommand(%q) without a validator says it checked the payload", data)
				}
				continue
			}
			_, fromCS, known := v.Sender(got.Action)
			inOrder := payloadAfterTypeAndAction(t, data)
			if got.Type == ocpp.TypeCall && known && fromCS && inOrder != (cmd.CheckedAs == ocpp.OCPP16) {
				t.Fatalf("decodeCommand(%q): checked in the pass %v, members in order %v", data, cmd.CheckedAs != "", inOrder)
			}
			if cmd.CheckedAs == "" {
				continue
			}
			if got.Type != ocpp.TypeCall || !known || !fromCS {
				t.Fatalf("decodeCommand(%q) checked the payload of a %v %q", data, got.Type, got.Action)
			}
			ref := v.Check(got.Action, false, got.Payload)
			if (ref == nil) != (cmd.PayloadRefusal == nil) ||
				ref != nil && (ref.Code != cmd.PayloadRefusal.Code || ref.Description != cmd.PayloadRefusal.Description ||
					!bytes.Equal(ref.Details, cmd.PayloadRefusal.Details)) {
				t.Fatalf("decodeCommand(%q): verdict in the pass %+v; Check says %+v", data, cmd.PayloadRefusal, ref)
			}
		}
	})
}

// isTypeError reports whether encoding/json's error for data is a member
// of the wrong type, after which it goes on reading the other members.
func isTypeError(data []byte) bool {
	var c referenceCommand
	_, ok := json.Unmarshal(data, &c).(*json.UnmarshalTypeError)
	return ok
}

// payloadAfterTypeAndAction reports whether the last Payload member of the
// command object data comes after its last MessageTypeId and Action
// members, which hold 2 and a non-empty string there: when decodeCommand
// can check the payload in its one pass.
func payloadAfterTypeAndAction(t *testing.T, data []byte) bool {
	t.Helper()
	var sawType2, sawAction, payloadLast bool
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return false
		}
		switch commandField([]byte(key)) {
		case fieldType:
			var n json.Number
			sawType2 = json.Unmarshal(raw, &n) == nil && n == "2"
			payloadLast = false
		case fieldAction:
			var s string
			if string(raw) != "null" { // null leaves the Action as it was
				sawAction = json.Unmarshal(raw, &s) == nil && s != ""
			}
			payloadLast = false
		case fieldPayload:
			payloadLast = sawType2 && sawAction
		}
	}
	return payloadLast
}

// testValidator is the validator the gateway uses for OCPP 1.6.
func testValidator(tb testing.TB) schemaValidator {
	tb.Helper()
	set, err := schemas.Load(schemas.Options{Protocol: string(ocpp.OCPP16)})
	if err != nil {
		tb.Fatal(err)
	}
	return schemaValidator{set}
}

// countingValidator is the 1.6 validator counting how payloads reach it:
// checked on their own (Check) or in the decoder's pass (ScanCall).
type countingValidator struct {
	schemaValidator
	checks, scans atomic.Int64
}

func (v *countingValidator) Check(action string, response bool, payload []byte) *ocpp.CallError {
	v.checks.Add(1)
	return v.schemaValidator.Check(action, response, payload)
}

func (v *countingValidator) ScanCall(action string, data []byte) (int, *ocpp.CallError) {
	v.scans.Add(1)
	return v.schemaValidator.ScanCall(action, data)
}

// TestDeliverChecksWhileDecoding: a command published on a downstream
// topic has its payload checked once, in the pass that decodes it
// (ScanCall, never Check), and an invalid one is refused with the
// schema's verdict, as docs/topics.md says.
func TestDeliverChecksWhileDecoding(t *testing.T) {
	v := &countingValidator{schemaValidator: testValidator(t)}
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	tp, err := parseTopics(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	b := newBridge(srv, tp, 1, slog.New(slog.DiscardHandler))
	b.ocpp = ocpp.NewServer(ocpp.Options{Handler: b, Logger: slog.New(slog.DiscardHandler),
		Validators: map[ocpp.Protocol]ocpp.Validator{ocpp.OCPP16: v}})
	publisher := srv.NewClient(nil, "test", "csms", false)
	for _, c := range []struct {
		name, payload string
		want          packets.Code
	}{
		{"valid", `{"type":"Soft"}`, packets.CodeSuccess},
		{"invalid", `{"type":"Warm"}`, packets.ErrPayloadFormatInvalid},
	} {
		v.checks.Store(0)
		v.scans.Store(0)
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "ocpp/cs/CP1",
			Payload: []byte(`{"MessageTypeId":2,"UniqueId":"` + c.name + `","Action":"Reset","Payload":` + c.payload + `}`)}
		if got := b.Deliver(publisher, "CP1", pk); got != c.want {
			t.Errorf("%s: Deliver = %v, want %v", c.name, got, c.want)
		}
		if s, ch := v.scans.Load(), v.checks.Load(); s != 1 || ch != 0 {
			t.Errorf("%s: payload scanned %d and checked %d times, want once in the decoding pass", c.name, s, ch)
		}
	}
}
