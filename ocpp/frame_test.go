package ocpp

import (
	"encoding/json"
	"errors"
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

// TestDecodeStringMatchesEncodingJSON: the fast path for plain strings
// reads exactly what encoding/json reads, and refuses what it refuses.
func TestDecodeStringMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{`"abc"`, `""`, `"a\"b"`, `"a\\b"`, `"\u00e9"`, `"é"`, "\"a\x01b\"", "\"\xff\"",
		`"a/b"`, `7`, `null`, `"unterminated`, `"`, `"a" `, `{"a":1}`, `"BootNotification"`, `"550e8400-e29b-41d4-a716-446655440000"`} {
		var want, got string
		wantErr := json.Unmarshal([]byte(raw), &want)
		gotErr := decodeString(json.RawMessage(raw), &got)
		if (wantErr == nil) != (gotErr == nil) || got != want {
			t.Errorf("decodeString(%s) = %q, %v; encoding/json: %q, %v", raw, got, gotErr, want, wantErr)
		}
	}
}
