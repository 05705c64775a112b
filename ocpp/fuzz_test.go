package ocpp

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzParseFrame checks that ParseFrame never panics, that every frame it
// accepts encodes to JSON that parses back to the same frame, and that every
// refusal is a *CallError that encodes to a valid CALLERROR frame.
// Crashers live in testdata/fuzz/FuzzParseFrame and run with go test.
func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{
		// Valid frames of each type.
		`[2,"a1","Heartbeat",{}]`,
		` [ 2 , "a1" , "Heartbeat" , { "x" : 1 } ] `,
		`[2,"19223201","BootNotification",{"chargePointVendor":"VendorX","chargePointModel":"SingleSocketCharger"}]`,
		`[2,"7","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Charging","timestamp":"2024-05-01T10:00:00Z"}]`,
		`[3,"a1",{"currentTime":"2024-05-01T10:00:00.000Z"}]`,
		`[3,"a1",{}]`,
		`[4,"a1","NotImplemented","Requested Action is not known by receiver",{}]`,
		`[4,"a1","GenericError","",{"origin":"gateway"}]`,
		`[4,"a1","GenericError","four elements"]`,
		`[2.0,"a1","Heartbeat",{}]`,
		`[2e0,"\u00e9\ud83d\ude00","Heart\"beat",{"k":"\u0000"}]`,
		`[2,"a1","Heartbeat",{"a":1,"a":2}]`,
		`[3,"a1",{"v":1e400}]`,
		// Refusals.
		``,
		`null`,
		`{}`,
		`[]`,
		`[2]`,
		`[2,"a1"]`,
		`[2,"","Heartbeat",{}]`,
		`[2,1,"Heartbeat",{}]`,
		`[2,"a1","",{}]`,
		`[2,"a1","Heartbeat",[]]`,
		`[2,"a1","Heartbeat",null]`,
		`[2,"a1","Heartbeat",{},{}]`,
		`[3,"a1"]`,
		`[3,"a1","x"]`,
		`[4,"a1","","",{}]`,
		`[4,"a1","GenericError",1,{}]`,
		`[4,"a1","GenericError","",[]]`,
		`[5,"a1","Heartbeat",{}]`,
		`["2","a1","Heartbeat",{}]`,
		`[null,"a1","Heartbeat",{}]`,
		`[-1e999,"a1",{}]`,
		`[2,"a1","Heartbeat",{}`,
		`[2,"a1","Heartbeat",{}] x`,
		"[2,\"\xff\xfe\",\"Heartbeat\",{}]",
		"[2,\"a1\",\"Heart\xffbeat\",{\"k\":\"\xff\"}]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := ParseFrame(data)
		if err != nil {
			var ce *CallError
			if !errors.As(err, &ce) {
				t.Fatalf("ParseFrame(%q) error %T %v, want *CallError", data, err, err)
			}
			if ce.Code == "" {
				t.Fatalf("ParseFrame(%q) = %#v: empty Code", data, ce)
			}
			out := ce.Frame(OCPP16)
			b := out.AppendJSON(nil)
			if !json.Valid(b) {
				t.Fatalf("ParseFrame(%q): CALLERROR %q is not valid JSON", data, b)
			}
			// The refusal is itself a frame the charge point can parse.
			back, err := ParseFrame(b)
			if err != nil || back.Type != TypeCallError || back.UniqueID != out.UniqueID || back.ErrorCode != out.ErrorCode {
				t.Fatalf("ParseFrame(%q): CALLERROR %q re-parses to %+v, %v", data, b, back, err)
			}
			return
		}
		switch fr.Type {
		case TypeCall, TypeCallResult, TypeCallError:
		default:
			t.Fatalf("ParseFrame(%q) accepted type %d", data, fr.Type)
		}
		if fr.UniqueID == "" {
			t.Fatalf("ParseFrame(%q) accepted an empty UniqueId", data)
		}
		b := fr.AppendJSON(nil)
		if !json.Valid(b) {
			t.Fatalf("ParseFrame(%q) = %+v: AppendJSON %q is not valid JSON", data, fr, b)
		}
		// Only UTF-8 frames are accepted, and what is encoded is UTF-8
		// (testdata/fuzz/FuzzParseFrame/invalid-utf8-payload is refused).
		if !utf8.Valid(data) || !utf8.Valid(b) {
			t.Fatalf("ParseFrame(%q): AppendJSON %q is not UTF-8", data, b)
		}
		back, err := ParseFrame(b)
		if err != nil {
			t.Fatalf("ParseFrame(%q): AppendJSON %q does not re-parse: %v", data, b, err)
		}
		if back.Type != fr.Type || back.UniqueID != fr.UniqueID || back.Action != fr.Action ||
			back.ErrorCode != fr.ErrorCode || back.ErrorDescription != fr.ErrorDescription {
			t.Fatalf("ParseFrame(%q) = %+v; AppendJSON %q re-parses to %+v", data, fr, b, back)
		}
		if !sameJSON(t, back.Payload, fr.Payload) || !sameJSON(t, back.ErrorDetails, fr.ErrorDetails) {
			t.Fatalf("ParseFrame(%q) = %+v; AppendJSON %q re-parses to %+v", data, fr, b, back)
		}
		// The encoding is canonical: encoding the re-parsed frame gives the same bytes.
		if b2 := back.AppendJSON(nil); !bytes.Equal(b2, b) {
			t.Fatalf("ParseFrame(%q): AppendJSON not stable: %q then %q", data, b, b2)
		}
	})
}

// sameJSON reports whether a and b are the same JSON value; an empty one is
// {} (as AppendJSON writes it). Numbers are compared by their text.
func sameJSON(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	decode := func(raw json.RawMessage) any {
		if len(raw) == 0 {
			raw = json.RawMessage(`{}`)
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
