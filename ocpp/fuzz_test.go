package ocpp

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseFrame checks that ParseFrame never panics, that every frame it
// accepts encodes to JSON that parses back to the same frame, and that every
// refusal is a *CallError that encodes to a valid CALLERROR frame.
// Crashers live in testdata/fuzz/FuzzParseFrame and run with go test.
func FuzzParseFrame(f *testing.F) {
	for _, s := range frameSeeds() {
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

// frameSeeds are the frames both fuzz targets start from: valid frames of
// each type and refusals of each kind.
func frameSeeds() []string {
	return []string{
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
	}
}

// FuzzParseFrameMatchesReference holds ParseFrame to the encoding/json
// implementation it replaced (parseFrameReference): the same Frame, to
// the last field and byte, and the same refusal (code, description,
// UniqueId) for every input. parseFrame with a ScanValidator must give
// that frame too, and for a well-formed CALL the refusal checkCall gives.
func FuzzParseFrameMatchesReference(f *testing.F) {
	for _, s := range frameSeeds() {
		f.Add([]byte(s))
	}
	for _, s := range edgeSeeds() {
		f.Add([]byte(s))
	}
	for _, b := range corpusFrames(f) {
		f.Add(b)
	}
	for _, b := range goldenFrames(f) {
		f.Add(b)
	}
	sv := newRequiredField()
	c := &conn{validator: sv, checks: CheckUpstream}
	f.Fuzz(func(t *testing.T, data []byte) { matchReference(t, c, data) })
}

// matchReference fails t unless ParseFrame(data) is parseFrameReference's
// result, and parseFrame(data) with c's ScanValidator is too, with the
// refusal c.checkCall makes of it.
func matchReference(t *testing.T, c *conn, data []byte) {
	t.Helper()
	want, wantErr := parseFrameReference(data)
	got, gotErr := ParseFrame(data)
	if !reflect.DeepEqual(got, want) || !sameError(gotErr, wantErr) {
		t.Fatalf("ParseFrame(%.200q)\n = %#v, %#v\nreference %#v, %#v", data, got, errValue(gotErr), want, errValue(wantErr))
	}
	var wantRefusal *CallError
	if wantErr == nil && want.Type == TypeCall {
		wantRefusal = c.checkCall(&want)
	}
	got, refusal, gotErr := parseFrame(data, c.validator.(ScanValidator))
	if !reflect.DeepEqual(got, want) || !sameError(gotErr, wantErr) || !reflect.DeepEqual(refusal, wantRefusal) {
		t.Fatalf("parseFrame(%.200q, scan)\n = %#v, %#v, %#v\nreference %#v, %#v, %#v",
			data, got, refusal, errValue(gotErr), want, wantRefusal, errValue(wantErr))
	}
}

// sameError reports whether two ParseFrame errors are the same refusal.
func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var ca, cb *CallError
	return errors.As(a, &ca) && errors.As(b, &cb) && reflect.DeepEqual(ca, cb)
}

// errValue shows an error's fields in a failure message.
func errValue(err error) any {
	var ce *CallError
	if errors.As(err, &ce) {
		return *ce
	}
	return err
}

// edgeSeeds are the inputs where a hand-written scanner and encoding/json
// could part: number forms, string escapes and bad UTF-8, null elements,
// whitespace, nesting depth, and syntax errors at every place.
func edgeSeeds() []string {
	return []string{
		// MessageTypeId forms.
		`[20e-1,"a1","Heartbeat",{}]`, `[0.2e1,"a1","Heartbeat",{}]`, `[2.0000000000000001,"a1","Heartbeat",{}]`,
		`[1.9999999999999999,"a1","Heartbeat",{}]`, `[-0,"a1",{}]`, `[3E0,"a1",{}]`, `[4.0,"a1","E",""]`,
		`[1e-400,"a1",{}]`, `[true,"a1",{}]`, `[[2],"a1",{}]`, `[{},"a1",{}]`, `[02,"a1",{}]`, `[2.,"a1",{}]`,
		`[.2,"a1",{}]`, `[-,"a1",{}]`, `[2e,"a1",{}]`, `[2e+,"a1",{}]`, `[+2,"a1",{}]`, `[0,"a1",{}]`, `[9,"a1",{}]`,
		`[ 2 ]`, `[2,null]`, `[2,null,"Heartbeat",{}]`, `[2,"a1",null,{}]`, `[4,"a1",null,"",{}]`,
		`[4,"a1","GenericError",null,{}]`, `[4,"a1","GenericError","",null]`, `[4,"a1","GenericError","d",{},{}]`,
		`[4,"a1","GenericError"]`, `[4,"a1","E","d", {"k" : [1, 2]} ]`, `[3,"a1",{},{}]`, `[3,"a1",[]]`, `[3,"a1",1]`,
		// Strings.
		`[2,"\"\\\/\b\f\n\r\t","Heartbeat",{}]`, `[2,"\u0041\u00e9\u20ac","Heartbeat",{}]`,
		`[2,"\ud800","Heartbeat",{}]`, `[2,"\udc00","Heartbeat",{}]`, `[2,"\ud800\ud800","Heartbeat",{}]`,
		`[2,"\ud800\u0041","Heartbeat",{}]`, `[2,"\ud800x","Heartbeat",{}]`, `[2,"\ud83d\ude00\ud83d","Heartbeat",{}]`,
		`[2,"\uDBFF\uDFFF","Heartbeat",{}]`, `[2,"\u0000","Heartbeat",{}]`, `[2,"\uD800\\u","Heartbeat",{}]`,
		`[2,"a1","\u0048eartbeat",{}]`, `[2,"a1","Heartbeat\u0000",{}]`, `[2,"a1","MeterValues",{}]`,
		`[2,"a1","Reset",{}]`, `[2,"a1","Unknown",{}]`, `[2,"a1","BootNotification",{}]`,
		`[2,"a1","BootNotification",{"chargePointVendor":"V"}]`, `[2,"a1","BootNotification",[]]`,
		`[4,"a1","Generic\u0045rror","\u00e9",{}]`, `[2,"a\'b","Heartbeat",{}]`, `[2,"\x","Heartbeat",{}]`,
		`[2,"\u12","Heartbeat",{}]`, `[2,"\u12g4","Heartbeat",{}]`, `[2,"a1\`, `[2,"a1`,
		"[2,\"a\tb\",\"Heartbeat\",{}]", "[2,\"a\x7fb\",\"Heartbeat\",{}]",
		"[2,\"\xed\xa0\x80\",\"Heartbeat\",{}]", "[2,\"\xef\xbf\xbd\",\"Heartbeat\",{}]",
		"[2,\"\xc3\",\"Heartbeat\",{}]", "[2,\"\xf4\x90\x80\x80\",\"Heartbeat\",{}]", "[2,\"\xe2\x82\",\"Heartbeat\",{}]",
		"[2,\"a1\",\"Heartbeat\",{\"\xff\":1}]", "[2,\"a1\",\"Heartbeat\",{}]\xff", "\xff[2,\"a1\",\"Heartbeat\",{}]",
		"[2,\"a1\",\"Heart\xffbeat\",{}]", "[4,\"a1\",\"E\",\"\xff\",{}]", "[3,\"\xff\",{}]",
		"[2,1,\"Heart\xffbeat\",{}]", "[2,\"\",\"\xff\",{}]",
		// Whitespace and syntax.
		"\t\r\n[2,\"a1\",\"Heartbeat\",{}]\t\r\n", "[2,\"a1\",\"Heartbeat\",{}]\f", "[2,\"a1\",\"Heartbeat\",{}]\x00",
		`[2,"a1","Heartbeat",{},]`, `[,2,"a1","Heartbeat",{}]`, `[2,,"a1","Heartbeat",{}]`, `[2 "a1","Heartbeat",{}]`,
		`[2,"a1","Heartbeat",{"a"}]`, `[2,"a1","Heartbeat",{"a":}]`, `[2,"a1","Heartbeat",{"a":1,}]`,
		`[2,"a1","Heartbeat",{1:1}]`, `[2,"a1","Heartbeat",{"a" 1}]`, `[2,"a1","Heartbeat",{"a":1 "b":2}]`,
		`[2,"a1","Heartbeat",{"a":[1,]}]`, `[2,"a1","Heartbeat",{"a":[1 2]}]`, `[2,"a1","Heartbeat",{"a":tru}]`,
		`[2,"a1","Heartbeat",{"a":truex}]`, `[2,"a1","Heartbeat",{"a":nul}]`, `[2,"a1","Heartbeat",{"a":fals}]`,
		`[2,"a1","Heartbeat",{"a":-01}]`, `[2,"a1","Heartbeat",{"a":1.5e+10,"b":-0.0E-0,"c":[true,false,null]}]`,
		`[2,"a1","Heartbeat",{"a":{"b":{"c":[[],{}]}}}]`, `[2,"a1","Heartbeat",{}]]`, `[[2,"a1","Heartbeat",{}]]`,
		`[2,"a1","Heartbeat",{}][]`, `[`, `[2`, `[2,`, `[2,"a1","Heartbeat",{`, `[2,"a1","Heartbeat",{"a`,
		`[2,"a1","Heartbeat",{"a":`, `[2,"a1","Heartbeat",{"a":1`, `[2,"a1","Heartbeat",{"a":[`, `"x"`, `1`, `true`,
		`[2,"d","Heartbeat",{"a":[[[{"b":[[{}]]}]]]}]`,
	}
}

// deepFrames nest as deep as encoding/json allows (10,000 levels, the
// frame's array included) and one level deeper. They are not fuzz seeds:
// the fuzzer would spend its time minimising 20 KB inputs.
func deepFrames() []string {
	deep := func(n int, open, close string) string {
		return `[2,"d","Heartbeat",{"a":` + strings.Repeat(open, n) + strings.Repeat(close, n) + `}]`
	}
	return []string{
		deep(9998, "[", "]"), deep(9999, "[", "]"), deep(9998, `{"a":`, "}"), deep(9999, `{"a":`, "}"),
		`[3,"a1",` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `]`,
		`[3,"a1",` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `]`,
		`[4,"a1","E","",{"a":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}]`,
		`[4,"a1","E","",{"a":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}]`,
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	}
}

// TestParseFrameMatchesReferenceDeep runs the deep frames through the
// checks of FuzzParseFrameMatchesReference.
func TestParseFrameMatchesReferenceDeep(t *testing.T) {
	t.Parallel()
	sv := newRequiredField()
	c := &conn{validator: sv, checks: CheckUpstream}
	for _, s := range deepFrames() {
		matchReference(t, c, []byte(s))
	}
}

// corpusFrames reads the FuzzParseFrame corpus (testdata/fuzz): crashers
// of one target seed the other.
func corpusFrames(tb testing.TB) [][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParseFrame", "*"))
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
			tb.Fatalf("%s: not a go test fuzz v1 file of one []byte", name)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		out = append(out, []byte(s))
	}
	return out
}

// goldenFrames wraps every payload of the golden files (../testdata/frames)
// in the frame it travels in: valid and invalid requests in a CALL,
// responses in a CALLRESULT.
func goldenFrames(tb testing.TB) [][]byte {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "frames", "*.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("golden frames: %v (%d files)", err, len(files))
	}
	var out [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		var g struct {
			Action string `json:"action"`
			Valid  struct {
				Request  []json.RawMessage `json:"request"`
				Response []json.RawMessage `json:"response"`
			} `json:"valid"`
			Invalid []struct {
				Response bool            `json:"response"`
				Payload  json.RawMessage `json:"payload"`
			} `json:"invalid"`
		}
		if err := json.Unmarshal(b, &g); err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		call := func(p []byte) []byte {
			return append(append([]byte(`[2,"g1",`+strconv.Quote(g.Action)+`,`), p...), ']')
		}
		result := func(p []byte) []byte { return append(append([]byte(`[3,"g1",`), p...), ']') }
		for _, p := range g.Valid.Request {
			out = append(out, call(p))
		}
		for _, p := range g.Valid.Response {
			out = append(out, result(p))
		}
		for _, c := range g.Invalid {
			if c.Response {
				out = append(out, result(c.Payload))
			} else {
				out = append(out, call(c.Payload))
			}
		}
	}
	return out
}

// parseFrameReference is ParseFrame as it was before the hand-written
// scanner, kept as the reference the scanner must match: encoding/json
// into []json.RawMessage, then each element again.
func parseFrameReference(data []byte) (Frame, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(data, &parts); err != nil || parts == nil {
		return Frame{}, &CallError{Code: FormationViolation, Description: "frame is not a JSON array"}
	}
	var f Frame
	if len(parts) >= 2 {
		// Read the id first so every later refusal can echo it.
		if err := decodeStringReference(parts[1], &f.UniqueID); err != nil || f.UniqueID == "" {
			f.UniqueID = ""
			return f, &CallError{Code: FormationViolation, Description: "UniqueId must be a non-empty string"}
		}
	}
	if !utf8.Valid(data) {
		return f, f.violation(FormationViolation, "frame is not valid UTF-8")
	}
	if len(parts) < 3 {
		return f, f.violation(FormationViolation, "frame has "+strconv.Itoa(len(parts))+" elements")
	}
	typ, err := messageTypeReference(parts[0])
	if err != nil {
		return f, f.violation(FormationViolation, "MessageTypeId must be a number")
	}
	switch typ {
	case 2:
		f.Type = TypeCall
		if len(parts) != 4 {
			return f, f.violation(FormationViolation, "CALL must have 4 elements")
		}
		if err := decodeStringReference(parts[2], &f.Action); err != nil || f.Action == "" {
			return f, f.violation(FormationViolation, "Action must be a non-empty string")
		}
		f.Payload = parts[3]
	case 3:
		f.Type = TypeCallResult
		if len(parts) != 3 {
			return f, f.violation(FormationViolation, "CALLRESULT must have 3 elements")
		}
		f.Payload = parts[2]
	case 4:
		f.Type = TypeCallError
		if len(parts) != 4 && len(parts) != 5 {
			return f, f.violation(FormationViolation, "CALLERROR must have 5 elements")
		}
		if err := decodeStringReference(parts[2], &f.ErrorCode); err != nil || f.ErrorCode == "" {
			return f, f.violation(FormationViolation, "ErrorCode must be a non-empty string")
		}
		if err := decodeStringReference(parts[3], &f.ErrorDescription); err != nil {
			return f, f.violation(FormationViolation, "ErrorDescription must be a string")
		}
		if len(parts) == 5 {
			f.ErrorDetails = parts[4]
		}
		if len(f.ErrorDetails) != 0 && !IsObject(f.ErrorDetails) {
			return f, f.violation(FormationViolation, "ErrorDetails must be an object")
		}
		return f, nil
	default:
		return f, f.violation(MessageTypeNotSupported, "unknown MessageTypeId "+string(parts[0]))
	}
	if !IsObject(f.Payload) {
		return f, f.violation(FormationViolation, "Payload must be a JSON object")
	}
	return f, nil
}

func messageTypeReference(raw json.RawMessage) (float64, error) {
	if len(raw) == 1 && raw[0] >= '0' && raw[0] <= '9' {
		return float64(raw[0] - '0'), nil
	}
	var typ float64
	err := json.Unmarshal(raw, &typ)
	return typ, err
}

func decodeStringReference(raw json.RawMessage, s *string) error {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		inner := raw[1 : n-1]
		plain := true
		for _, c := range inner {
			if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				plain = false
				break
			}
		}
		if plain {
			*s = string(inner)
			return nil
		}
	}
	return json.Unmarshal(raw, s)
}
