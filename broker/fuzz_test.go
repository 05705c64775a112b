package broker

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/chargemq/chargemq/ocpp"
	"github.com/chargemq/chargemq/schemas"
)

// fuzzMessage is the EMQX-compatible JSON shape appendUpstream and
// appendGatewayError write, read back strictly for the fuzz targets.
type fuzzMessage struct {
	MessageTypeID    *json.Number    `json:"MessageTypeId"`
	UniqueID         *string         `json:"UniqueId"`
	Action           *string         `json:"Action"`
	Payload          json.RawMessage `json:"Payload"`
	ErrorCode        *string         `json:"ErrorCode"`
	ErrorDescription *string         `json:"ErrorDescription"`
	ErrorDetails     json.RawMessage `json:"ErrorDetails"`
	Violations       json.RawMessage `json:"Violations"`
	Late             bool            `json:"Late"`
	Unsolicited      bool            `json:"Unsolicited"`
}

// readFuzzMessage decodes b, failing the test when it is not valid JSON
// (as json.Valid sees it) or not one object of the expected shape.
func readFuzzMessage(t *testing.T, b []byte) fuzzMessage {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("%q is not valid JSON", b)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var m fuzzMessage
	if err := d.Decode(&m); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	return m
}

// jsonString is s as a JSON decoder reads it back after encoding/json wrote
// it: invalid UTF-8 becomes U+FFFD, everything else is unchanged.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}

// equalJSON reports whether a and b are the same JSON value; an empty one
// counts as {}, as the encoders write it. Numbers compare by their text.
func equalJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	decode := func(raw []byte) any {
		if len(raw) == 0 {
			raw = []byte(`{}`)
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("%q is not valid JSON: %v", raw, err)
		}
		return v
	}
	return reflect.DeepEqual(decode(a), decode(b))
}

// commandSeeds are the seed corpus of the decodeCommand fuzz tests: the
// shapes of the EMQX message and the ways to get them wrong.
var commandSeeds = []string{
	`{"MessageTypeId":2,"UniqueId":"c1","Action":"Reset","Payload":{"type":"Soft"}}`,
	`{"MessageTypeId":2,"UniqueId":"c1","Action":"RemoteStartTransaction","Payload":{"connectorId":1,"idTag":"04E91C5A"}}`,
	`{"MessageTypeId":3,"UniqueId":"c1","Payload":{"currentTime":"2024-05-01T10:00:00Z"}}`,
	`{"MessageTypeId":3,"UniqueId":"c1","Action":"Heartbeat","Payload":{}}`,
	`{"MessageTypeId":4,"UniqueId":"c1","ErrorCode":"GenericError","ErrorDescription":"x","ErrorDetails":{}}`,
	`{"MessageTypeId":4,"UniqueId":"c1","ErrorCode":"GenericError","ErrorDetails":null}`,
	`{"MessageTypeId":4,"UniqueId":"c1","ErrorCode":"GenericError"}`,
	`{"MessageTypeId":"2","UniqueId":"c1","Action":"Reset","Payload":{}}`,
	`{"messagetypeid":2,"uniqueid":"c1","action":"Reset","payload":{}}`,
	`{"MessageTypeId":2,"UniqueId":"\u00e9\ud83d\ude00","Action":"\u0000","Payload":{"k":"\ud800"}}`,
	`{"MessageTypeId":2,"UniqueId":"123456789012345678901234567890123456","Action":"Reset","Payload":{}}`,
	`{"MessageTypeId":2,"UniqueId":"1234567890123456789012345678901234567","Action":"Reset","Payload":{}}`,
	`{"MessageTypeId":2,"UniqueId":"\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9","Action":"Reset","Payload":{}}`,
	`{"MessageTypeId":2,"UniqueId":"c1","UniqueId":null,"Action":"Reset","Payload":{}}`,
	`{"MessageTypeId":2.0,"UniqueId":"c1","Action":"Reset","Payload":{}}`,
	`{"MessageTypeId":2,"UniqueId":"c1","Action":"Reset","Payload":[]}`,
	`{"MessageTypeId":2,"UniqueId":"c1","Action":"","Payload":{}}`,
	`{"MessageTypeId":2,"UniqueId":1,"Action":"Reset","Payload":{}}`,
	`{"MessageTypeId":"two","UniqueId":"c1"}`,
	`{"MessageTypeId":4,"UniqueId":"c1","ErrorCode":"","ErrorDetails":{}}`,
	`{"MessageTypeId":4,"UniqueId":"c1","ErrorCode":"GenericError","ErrorDetails":[1]}`,
	`{"UniqueId":"c1"}`,
	`{}`,
	`[]`,
	`null`,
	``,
	`{"MessageTypeId":2,`,
	"{\"MessageTypeId\":2,\"UniqueId\":\"\xff\",\"Action\":\"Reset\",\"Payload\":{}}",
}

// FuzzDecodeCommand checks that decodeCommand never panics, that every
// command it accepts is a frame ParseFrame accepts back with the same
// type, UniqueId and Action, and that every refusal still yields a valid
// gateway error, as Deliver publishes it.
func FuzzDecodeCommand(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, bad := decodeCommand(data, nil, "")
		fr := cmd.Frame
		if bad != nil {
			if bad.why == "" {
				t.Fatalf("decodeCommand(%q): refusal without a reason", data)
			}
			// Deliver publishes the refusal; it must be a valid message
			// echoing the UniqueId and Action that could be read.
			b := appendGatewayError(nil, bad.uniqueID, bad.action, string(ocpp.FormationViolation),
				&ocpp.GatewayError{Reason: ocpp.ReasonMalformed, Code: ocpp.FormationViolation, Description: bad.why})
			m := readFuzzMessage(t, b)
			if m.MessageTypeID == nil || *m.MessageTypeID != "4" || m.UniqueID == nil || *m.UniqueID != jsonString(bad.uniqueID) {
				t.Fatalf("decodeCommand(%q): gateway error %q", data, b)
			}
			return
		}
		if n := len(fr.UniqueID); n == 0 || n > maxUniqueIDLen {
			t.Fatalf("decodeCommand(%q) accepted a UniqueId of %d bytes", data, n)
		}
		b := fr.AppendJSON(nil)
		if !json.Valid(b) {
			t.Fatalf("decodeCommand(%q) = %+v: AppendJSON %q is not valid JSON", data, fr, b)
		}
		if !utf8.Valid(b) {
			t.Fatalf("decodeCommand(%q) = %+v: AppendJSON %q is not UTF-8", data, fr, b)
		}
		back, err := ocpp.ParseFrame(b)
		if err != nil {
			t.Fatalf("decodeCommand(%q): the charge point would refuse %q: %v", data, b, err)
		}
		if back.Type != fr.Type || back.UniqueID != fr.UniqueID || back.Action != fr.Action ||
			back.ErrorCode != fr.ErrorCode || back.ErrorDescription != fr.ErrorDescription ||
			!equalJSON(t, back.Payload, fr.Payload) || !equalJSON(t, back.ErrorDetails, fr.ErrorDetails) {
			t.Fatalf("decodeCommand(%q) = %+v; the charge point reads %q as %+v", data, fr, b, back)
		}
	})
}

// FuzzEncode feeds appendUpstream and appendGatewayError arbitrary strings
// (invalid UTF-8 included) and payloads from ParseFrame: the output is
// always valid JSON carrying the values, and it is what decodeCommand
// reads back whenever the values make a valid command.
func FuzzEncode(f *testing.F) {
	f.Add([]byte(`[2,"a1","Heartbeat",{}]`), uint8(2), "a1", "Heartbeat", "", "", "", false, false)
	f.Add([]byte(`[3,"a1",{"currentTime":"2024-05-01T10:00:00Z"}]`), uint8(3), "a1", "Heartbeat", "", "", "", true, false)
	f.Add([]byte(`[4,"a1","GenericError","x",{"a":[1,2]}]`), uint8(4), "a1", "", "GenericError", "x", "", false, true)
	f.Add([]byte(`[3,"a1",{"status":"Rejected"}]`), uint8(3), "a1", "Reset", "", "status: must be one of", "invalid_payload", false, false)
	f.Add([]byte(`x`), uint8(4), "\xff\"\\\x00", "\u2028</script>", "\x7f", "\n\t\r\xc3", "timeout", true, true)
	f.Add([]byte(`[2,"a1","DataTransfer",{"data":"\u00e9\ud800"}]`), uint8(0), "", "", "", "", "", false, false)
	f.Add([]byte(`[2,"a1","Heartbeat",{}]`), uint8(255), "123456789012345678901234567890123456789", "A", "B", "C", "queue_full", false, false)
	f.Fuzz(func(t *testing.T, frame []byte, typ uint8, id, action, code, desc, reason string, late, unsolicited bool) {
		in := ocpp.Inbound{
			Frame: ocpp.Frame{Type: ocpp.MessageType(typ), UniqueID: id, Action: action, ErrorCode: code, ErrorDescription: desc},
			Late:  late, Unsolicited: unsolicited,
		}
		if pf, err := ocpp.ParseFrame(frame); err == nil {
			in.Payload, in.ErrorDetails = pf.Payload, pf.ErrorDetails
		}
		var violations []byte
		if desc != "" {
			// As the gateway builds them: encoding/json of schemas.Violation.
			violations, _ = json.Marshal([]schemas.Violation{{Field: action, Rule: reason, Message: desc}})
		}
		in.Violations = violations

		b := appendUpstream(nil, &in)
		m := readFuzzMessage(t, b)
		if m.MessageTypeID == nil || m.MessageTypeID.String() != jsonNumber(typ) ||
			m.UniqueID == nil || *m.UniqueID != jsonString(id) || m.Late != late || m.Unsolicited != unsolicited {
			t.Fatalf("appendUpstream(%+v) = %q", in, b)
		}
		if m.Action == nil || *m.Action != jsonString(action) {
			t.Fatalf("appendUpstream(%+v) = %q: Action", in, b)
		}
		if (len(violations) != 0) != (m.Violations != nil) || (m.Violations != nil && !equalJSON(t, m.Violations, violations)) {
			t.Fatalf("appendUpstream(%+v) = %q: Violations", in, b)
		}
		if in.Type == ocpp.TypeCallError {
			if m.ErrorCode == nil || *m.ErrorCode != jsonString(code) || m.ErrorDescription == nil ||
				*m.ErrorDescription != jsonString(desc) || !equalJSON(t, m.ErrorDetails, in.ErrorDetails) || m.Payload != nil {
				t.Fatalf("appendUpstream(%+v) = %q: error fields", in, b)
			}
		} else if !equalJSON(t, m.Payload, in.Payload) || m.ErrorCode != nil || m.ErrorDetails != nil {
			t.Fatalf("appendUpstream(%+v) = %q: Payload", in, b)
		}
		// The upstream shape is the downstream shape: a consumer can send a
		// message back as a command (Late, Unsolicited and Violations are
		// ignored as unknown members). Invalid UTF-8 never reaches here from
		// a charge point (ParseFrame refuses it); this seed corpus still
		// feeds some (testdata/fuzz/FuzzEncode/invalid-utf8-payload), which
		// decodeCommand refuses.
		if wantCommand(in.Frame) && utf8.Valid(b) {
			cmd, bad := decodeCommand(b, nil, "")
			got := cmd.Frame
			if bad != nil {
				t.Fatalf("decodeCommand(appendUpstream(%+v) = %q): %s", in, b, bad.why)
			}
			if got.Type != in.Type || got.UniqueID != jsonString(id) ||
				(in.Type == ocpp.TypeCall && got.Action != jsonString(action)) ||
				(in.Type == ocpp.TypeCallError && (got.ErrorCode != jsonString(code) || got.ErrorDescription != jsonString(desc))) {
				t.Fatalf("decodeCommand(appendUpstream(%+v) = %q) = %+v", in, b, got)
			}
		}

		gerr := &ocpp.GatewayError{Reason: ocpp.Reason(reason), Code: ocpp.GenericError, Description: desc, Violations: violations}
		b = appendGatewayError(nil, id, action, code, gerr)
		if !json.Valid(b) {
			t.Fatalf("appendGatewayError(%q, %q, %q, %+v) = %q: not valid JSON", id, action, code, gerr, b)
		}
		if !utf8.Valid(b) {
			t.Fatalf("appendGatewayError(%q, %q, %q, %+v) = %q: not UTF-8", id, action, code, gerr, b)
		}
		m = readFuzzMessage(t, b)
		var details struct {
			Origin     string          `json:"origin"`
			Reason     *string         `json:"reason"`
			Violations json.RawMessage `json:"violations"`
		}
		if err := json.Unmarshal(m.ErrorDetails, &details); err != nil {
			t.Fatalf("appendGatewayError: ErrorDetails %q: %v", m.ErrorDetails, err)
		}
		if m.MessageTypeID == nil || *m.MessageTypeID != "4" || m.UniqueID == nil || *m.UniqueID != jsonString(id) ||
			m.Action == nil || *m.Action != jsonString(action) ||
			m.ErrorCode == nil || *m.ErrorCode != jsonString(code) || m.ErrorDescription == nil || *m.ErrorDescription != jsonString(desc) ||
			details.Origin != "gateway" || details.Reason == nil || *details.Reason != jsonString(reason) ||
			(len(violations) != 0) != (details.Violations != nil) {
			t.Fatalf("appendGatewayError(%q, %q, %q, %+v) = %q", id, action, code, gerr, b)
		}
	})
}

// jsonNumber is typ as strconv writes it.
func jsonNumber(typ uint8) string {
	b, _ := json.Marshal(typ)
	return string(b)
}

// wantCommand reports whether decodeCommand must accept the message
// appendUpstream writes for f (payloads from ParseFrame are objects).
func wantCommand(f ocpp.Frame) bool {
	id := jsonString(f.UniqueID)
	if id == "" || len(id) > maxUniqueIDLen {
		return false
	}
	switch f.Type {
	case ocpp.TypeCall:
		return f.Action != ""
	case ocpp.TypeCallResult:
		return true
	case ocpp.TypeCallError:
		return f.ErrorCode != ""
	}
	return false
}
