package ocpp

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     string
		want   Frame
		code   ErrorCode // "" when valid
		echoID string
	}{
		{name: "call", in: `[2,"a1","Heartbeat",{}]`, want: Frame{Type: TypeCall, UniqueID: "a1", Action: "Heartbeat", Payload: json.RawMessage(`{}`)}},
		{name: "call with spaces", in: ` [ 2 , "a1" , "Heartbeat" , { "x" : 1 } ] `, want: Frame{Type: TypeCall, UniqueID: "a1", Action: "Heartbeat", Payload: json.RawMessage(`{ "x" : 1 }`)}},
		{name: "callresult", in: `[3,"a1",{"status":"Accepted"}]`, want: Frame{Type: TypeCallResult, UniqueID: "a1", Payload: json.RawMessage(`{"status":"Accepted"}`)}},
		{name: "callerror", in: `[4,"a1","NotImplemented","no",{"k":1}]`, want: Frame{Type: TypeCallError, UniqueID: "a1", ErrorCode: "NotImplemented", ErrorDescription: "no", ErrorDetails: json.RawMessage(`{"k":1}`)}},
		{name: "callerror without details", in: `[4,"a1","GenericError",""]`, want: Frame{Type: TypeCallError, UniqueID: "a1", ErrorCode: "GenericError"}},
		{name: "not json", in: `hello`, code: FormationViolation},
		{name: "object", in: `{"a":1}`, code: FormationViolation},
		{name: "empty array", in: `[]`, code: FormationViolation},
		{name: "null", in: `null`, code: FormationViolation},
		{name: "invalid utf8 in payload", in: "[2,\"a1\",\"DataTransfer\",{\"data\":\"\xff\xfe\"}]", code: FormationViolation, echoID: "a1"},
		{name: "truncated", in: `[2,"a1","Heartbeat",{}`, code: FormationViolation},
		{name: "type is string", in: `["2","a1","Heartbeat",{}]`, code: FormationViolation, echoID: "a1"},
		{name: "unknown type", in: `[5,"a1","Heartbeat",{}]`, code: MessageTypeNotSupported, echoID: "a1"},
		{name: "id is number", in: `[2,1,"Heartbeat",{}]`, code: FormationViolation},
		{name: "empty id", in: `[2,"","Heartbeat",{}]`, code: FormationViolation},
		{name: "call too short", in: `[2,"a1","Heartbeat"]`, code: FormationViolation, echoID: "a1"},
		{name: "call too long", in: `[2,"a1","Heartbeat",{},{}]`, code: FormationViolation, echoID: "a1"},
		{name: "action not string", in: `[2,"a1",7,{}]`, code: FormationViolation, echoID: "a1"},
		{name: "payload array", in: `[2,"a1","Heartbeat",[]]`, code: FormationViolation, echoID: "a1"},
		{name: "payload null", in: `[3,"a1",null]`, code: FormationViolation, echoID: "a1"},
		{name: "callerror details string", in: `[4,"a1","X","d","s"]`, code: FormationViolation, echoID: "a1"},
		{name: "callerror code missing", in: `[4,"a1","","d",{}]`, code: FormationViolation, echoID: "a1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseFrame([]byte(tc.in))
			if tc.code == "" {
				if err != nil {
					t.Fatalf("ParseFrame(%s) error %v", tc.in, err)
				}
				if got.Type != tc.want.Type || got.UniqueID != tc.want.UniqueID || got.Action != tc.want.Action ||
					string(got.Payload) != string(tc.want.Payload) || got.ErrorCode != tc.want.ErrorCode ||
					got.ErrorDescription != tc.want.ErrorDescription || string(got.ErrorDetails) != string(tc.want.ErrorDetails) {
					t.Fatalf("ParseFrame(%s) = %+v, want %+v", tc.in, got, tc.want)
				}
				return
			}
			var ce *CallError
			if !errors.As(err, &ce) {
				t.Fatalf("ParseFrame(%s) error %v, want CallError %s", tc.in, err, tc.code)
			}
			if ce.Code != tc.code || ce.UniqueID != tc.echoID {
				t.Fatalf("ParseFrame(%s) = %s id %q, want %s id %q", tc.in, ce.Code, ce.UniqueID, tc.code, tc.echoID)
			}
		})
	}
}

func TestFrameRoundTrip(t *testing.T) {
	t.Parallel()
	frames := []Frame{
		{Type: TypeCall, UniqueID: "id\"1\\\n\x01é", Action: "DataTransfer", Payload: json.RawMessage(`{"vendorId":"x"}`)},
		{Type: TypeCallResult, UniqueID: "r", Payload: json.RawMessage(`{}`)},
		{Type: TypeCallError, UniqueID: "e", ErrorCode: "GenericError", ErrorDescription: "<b>&", ErrorDetails: json.RawMessage(`{"a":[1]}`)},
	}
	for _, f := range frames {
		b := f.AppendJSON(nil)
		if !json.Valid(b) {
			t.Fatalf("AppendJSON(%+v) = %s: invalid JSON", f, b)
		}
		got, err := ParseFrame(b)
		if err != nil || got.UniqueID != f.UniqueID || got.Type != f.Type || got.Action != f.Action || got.ErrorDescription != f.ErrorDescription {
			t.Fatalf("round trip of %+v = %+v, %v", f, got, err)
		}
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", "q\"b\\", "\x00\x1f\u2028", "bad\xffutf8", "日本"} {
		got := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("AppendString(%q) = %s: %v", s, got, err)
		}
		want, _ := json.Marshal(s)
		var wantBack string
		json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("AppendString(%q) decodes to %q, encoding/json to %q", s, back, wantBack)
		}
	}
}

func TestSpell(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    Protocol
		code ErrorCode
		want string
	}{
		{OCPP16, FormationViolation, "FormationViolation"},
		{OCPP16, MessageTypeNotSupported, "ProtocolError"},
		{"ocpp2.0.1", FormationViolation, "FormatViolation"},
		{"ocpp2.0.1", MessageTypeNotSupported, "MessageTypeNotSupported"},
	}
	for _, tc := range tests {
		if got := tc.p.Spell(tc.code); got != tc.want {
			t.Errorf("%s.Spell(%s) = %s, want %s", tc.p, tc.code, got, tc.want)
		}
	}
}

// TestStringElementMatchesEncodingJSON: a string element reads exactly
// what encoding/json reads into a Go string, and is refused when that
// fails (null reads as "", as encoding/json leaves the string alone).
func TestStringElementMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{`"abc"`, `""`, `"a\"b"`, `"a\\b"`, `"\u00e9"`, `"é"`, "\"\xff\"", "\"a\xffb\xfe\"",
		`"a/b"`, `"a\/b"`, `7`, `null`, `true`, `{"a":1}`, `[]`, `"BootNotification"`, `"550e8400-e29b-41d4-a716-446655440000"`,
		`"\b\f\n\r\t"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ud83d\ud83d\ude00"`, `"\ud83dx"`, `"\ud83d\n"`,
		`"\u0000"`, `"\uFFFD"`, "\"\xed\xa0\x80\"", "\"\xf0\x9f\x98\"", "\"\xf0\x9f\x98\x80\"", `"x\u20acy"`,
		"\"\xe2\x82\xac\\n\xff\""} {
		for _, intern := range []bool{false, true} {
			var want string
			wantErr := json.Unmarshal([]byte(raw), &want)
			s := scanner{data: []byte(raw)}
			if end := s.value(0, 0); end != len(raw) {
				t.Fatalf("scan of %s ended at %d", raw, end)
			}
			got, ok := stringElement([]byte(raw), intern)
			if ok != (wantErr == nil) || got != want {
				t.Errorf("stringElement(%s) = %q, %v; encoding/json: %q, %v", raw, got, ok, want, wantErr)
			}
		}
	}
}

// TestScannerMatchesEncodingJSON: the scanner accepts exactly what
// json.Valid accepts, as a whole input.
func TestScannerMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, in := range []string{``, ` `, `1`, `-`, `-0`, `-01`, `0.`, `0.0`, `1e5`, `1E+5`, `1e-`, `1.5e+`, `01`, `+1`,
		`"a`, `"\`, `"\u`, `"\u123`, `"\u123g"`, `"\uABCD"`, `"\x"`, "\"\x01\"", "\"\x7f\"", "\"\xff\"",
		`true`, `tru`, `truee`, `nul`, `null`, `false`, `[`, `[]`, `[ ]`, `[1,]`, `[,]`, `[1 2]`, `{}`, `{ }`, `{"a"}`,
		`{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`, `{1:2}`, `{"a":[{"b":[]}]}`, `[{}]`, `[}`, `{]`, `[[]]]`, `{"a":1}}`,
		" \t\r\n[1]\n", "[1]\f", "\x00", `"\/"`, "[\"\xc3\xa9\"]",
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
		strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
	} {
		s := scanner{data: []byte(in)}
		end := -1
		if i := skipSpace(s.data, 0); i < len(in) {
			if end = s.value(i, 0); end >= 0 && skipSpace(s.data, end) != len(in) {
				end = -1
			}
		}
		if got, want := end >= 0, json.Valid([]byte(in)); got != want {
			t.Errorf("scanner accepts %.40q: %v, json.Valid %v", in, got, want)
		}
	}
}

// TestParseFrameAllocations: a CALL costs its UniqueId and its payload;
// a known action, the known error codes and an empty description cost
// nothing.
func TestParseFrameAllocations(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
	}{
		{`[2,"19223201","Heartbeat",{}]`, 2},
		{`[2,"19223201","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]`, 2},
		{`[2,"19223201","Invented",{}]`, 3},
		{`[3,"19223201",{"currentTime":"2024-05-01T10:00:00Z"}]`, 2},
		{`[4,"19223201","GenericError","",{}]`, 2},
		{`[4,"19223201","GenericError",""]`, 1},
	} {
		data := []byte(tc.in)
		if got := testing.AllocsPerRun(100, func() { ParseFrame(data) }); got != tc.want {
			t.Errorf("ParseFrame(%s): %v allocations, want %v", tc.in, got, tc.want)
		}
	}
	v := newRequiredField()
	data := []byte(`[2,"19223201","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]`)
	var noCheck ScanValidator = fixedEnd{v, len(`{"chargePointVendor":"V","chargePointModel":"M"}`)}
	if got := testing.AllocsPerRun(100, func() { parseFrame(data, noCheck) }); got != 2 {
		t.Errorf("parseFrame with a ScanValidator: %v allocations, want 2", got)
	}
}

// meterValues is a MeterValues CALL with n sampled values.
func meterValues(n int) []byte {
	b := []byte(`[2,"5a1f3c2e-8d4b-4e0a-9c1f-2b3d4e5f6a7b","MeterValues",{"connectorId":1,"transactionId":1234,"meterValue":[{"timestamp":"2024-05-01T10:00:00.000Z","sampledValue":[`)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"value":"`...)
		b = strconv.AppendInt(b, int64(1000+i*17), 10)
		b = append(b, `.5","context":"Sample.Periodic","format":"Raw","measurand":"Energy.Active.Import.Register","phase":"L1","location":"Outlet","unit":"Wh"}`...)
	}
	return append(b, "]}]}]"...)
}

// BenchmarkParseFrame compares ParseFrame with the encoding/json
// implementation it replaced and with a plain json.Unmarshal of the frame
// into []any.
func BenchmarkParseFrame(b *testing.B) {
	frames := []struct {
		name string
		data []byte
	}{
		{"Heartbeat", []byte(`[2,"19223201","Heartbeat",{}]`)},
		{"BootNotification", []byte(`[2,"19223201","BootNotification",{"chargePointVendor":"VendorX","chargePointModel":"SingleSocketCharger","chargePointSerialNumber":"SN-0001","firmwareVersion":"1.2.3","iccid":"8931440400000000001","imsi":"240010000000001","meterType":"ACME-3P","meterSerialNumber":"M-0001"}]`)},
		{"MeterValues20", meterValues(20)},
	}
	impls := []struct {
		name  string
		parse func([]byte) error
	}{
		{"scan", func(d []byte) error { _, err := ParseFrame(d); return err }},
		{"reference", func(d []byte) error { _, err := parseFrameReference(d); return err }},
		{"unmarshal_any", func(d []byte) error { var v []any; return json.Unmarshal(d, &v) }},
	}
	for _, fr := range frames {
		for _, im := range impls {
			b.Run(fr.name+"/"+im.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(fr.data)))
				for b.Loop() {
					if err := im.parse(fr.data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
