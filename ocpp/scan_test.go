package ocpp

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// requiredField is a ScanValidator for tests. It defines Heartbeat and
// BootNotification, sent by the charge point, and Reset, sent by the
// central system; a payload must be an object, and a BootNotification
// request must have chargePointVendor. It counts its calls. Its ScanCall
// sets no nesting limit, as the gateway checks that itself.
type requiredField struct {
	checks, scans atomic.Int64
}

func newRequiredField() *requiredField { return new(requiredField) }

func (v *requiredField) Sender(action string) (fromCP, fromCS, ok bool) {
	switch action {
	case "Heartbeat", "BootNotification":
		return true, false, true
	case "Reset":
		return false, true, true
	}
	return false, false, false
}

func (v *requiredField) Check(action string, response bool, payload []byte) *CallError {
	v.checks.Add(1)
	return v.check(action, response, payload)
}

func (v *requiredField) ScanCall(action string, data []byte) (int, *CallError) {
	v.scans.Add(1)
	s := scanner{data: data}
	end := s.value(0, math.MinInt32)
	if end < 0 {
		return -1, nil
	}
	return end, v.check(action, false, data[:end])
}

func (v *requiredField) check(action string, response bool, payload []byte) *CallError {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil || m == nil {
		return &CallError{Code: FormationViolation, Description: "payload is not a JSON object"}
	}
	if _, ok := m["chargePointVendor"]; action == "BootNotification" && !response && !ok {
		return &CallError{Code: OccurenceConstraintViolation, Description: "chargePointVendor: required",
			Details: json.RawMessage(`{"violations":[{"field":"chargePointVendor","rule":"required"}]}`)}
	}
	return nil
}

// checkOnly hides ScanCall: the validator as a connection without the
// scan hook sees it.
type checkOnly struct{ Validator }

// TestScanValidatorOnConnection: a connection whose validator scans
// answers a bad CALL with the validator's CallError and publishes a good
// one, reading each payload once (ScanCall, never Check), and answers
// exactly as a connection whose validator only checks: same frames, same
// counters. With upstream checking off nothing is checked.
func TestScanValidatorOnConnection(t *testing.T) {
	t.Parallel()
	frames := []struct {
		name, in string
		want     []any // the CALLERROR answered; nil: published
	}{
		{"valid", `[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]`, nil},
		{"required field missing", `[2,"b2","BootNotification",{"chargePointModel":"M"}]`,
			[]any{float64(4), "b2", "OccurenceConstraintViolation", "chargePointVendor: required",
				map[string]any{"violations": []any{map[string]any{"field": "chargePointVendor", "rule": "required"}}}}},
		{"unknown action", `[2,"u1","Invented",{}]`, []any{float64(4), "u1", "NotImplemented", "unknown action Invented", map[string]any{}}},
		{"central system action", `[2,"r1","Reset",{"type":"Hard"}]`,
			[]any{float64(4), "r1", "NotSupported", "Reset is sent by the central system, not by a charge point", map[string]any{}}},
		{"malformed wins over schema", `[2,"b3","BootNotification",{"chargePointModel":"M"},{}]`,
			[]any{float64(4), "b3", "FormationViolation", "CALL must have 4 elements", map[string]any{}}},
		{"syntax error in payload", `[2,"b4","BootNotification",{"chargePointModel":}]`,
			[]any{float64(4), "-1", "FormationViolation", "frame is not a JSON array", map[string]any{}}},
		{"heartbeat", `[2,"h1","Heartbeat",{}]`, nil},
	}
	run := func(t *testing.T, v Validator, checking Checking) (Stats, []event) {
		t.Helper()
		h := newHarness(t, Options{Validators: map[Protocol]Validator{OCPP16: v},
			Checking: func(string) (Checking, string) { return checking, "" }})
		ws := h.dial(t, "CP1")
		var published []event
		for _, fr := range frames {
			write(t, ws, fr.in)
			want := fr.want
			if checking&CheckUpstream == 0 && want != nil && want[2] != "FormationViolation" {
				want = nil // only malformed frames are refused
			}
			if want == nil {
				published = append(published, h.rec.next(t, "received"))
				continue
			}
			if got := read(t, ws); !jsonEqual(got, want) {
				t.Fatalf("%s: answered %v, want %v", fr.name, got, want)
			}
		}
		return h.srv.Stats(), published
	}

	scan := newRequiredField()
	scanStats, scanPublished := run(t, scan, CheckAll)
	check := newRequiredField()
	checkStats, checkPublished := run(t, checkOnly{check}, CheckAll)
	if n := scan.checks.Load(); n != 0 {
		t.Fatalf("the scanning connection called Check %d times, want 0 (ScanCall only)", n)
	}
	if n := scan.scans.Load(); n != 5 {
		t.Fatalf("ScanCall called %d times, want 5 (each CALL of a defined charge point action)", n)
	}
	if n := check.checks.Load(); n != 3 {
		t.Fatalf("the checking connection called Check %d times, want 3 (each well-formed CALL it defines)", n)
	}
	if len(scanPublished) != 2 || scanPublished[0].in.UniqueID != "b1" || scanPublished[1].in.UniqueID != "h1" ||
		string(scanPublished[0].in.Payload) != `{"chargePointVendor":"V","chargePointModel":"M"}` {
		t.Fatalf("published %+v, want b1 and h1", scanPublished)
	}
	for i := range scanPublished {
		if a, b := scanPublished[i].in, checkPublished[i].in; a.UniqueID != b.UniqueID || string(a.Payload) != string(b.Payload) {
			t.Fatalf("published %+v with ScanCall, %+v with Check", a, b)
		}
	}
	for _, k := range []string{"call", "malformed", "schema_invalid"} {
		if scanStats.FramesIn[k] != checkStats.FramesIn[k] {
			t.Fatalf("frames_in[%s] = %d with ScanCall, %d with Check", k, scanStats.FramesIn[k], checkStats.FramesIn[k])
		}
	}
	if scanStats.FramesIn["schema_invalid"] != 3 || scanStats.FramesIn["malformed"] != 2 {
		t.Fatalf("frames_in = %v, want 3 schema_invalid and 2 malformed", scanStats.FramesIn)
	}
	if !jsonEqual(scanStats.SchemaFailures, checkStats.SchemaFailures) || len(scanStats.SchemaFailures) != 3 {
		t.Fatalf("schema failures %+v with ScanCall, %+v with Check", scanStats.SchemaFailures, checkStats.SchemaFailures)
	}

	t.Run("checking off", func(t *testing.T) {
		t.Parallel()
		off := newRequiredField()
		if _, published := run(t, off, CheckDownstream); len(published) != 5 {
			t.Fatalf("published %d frames with upstream checking off, want 5", len(published))
		}
		if n := off.checks.Load() + off.scans.Load(); n != 0 {
			t.Fatalf("validator called %d times with upstream checking off", n)
		}
	})
}

// jsonEqual compares two values by their JSON encoding.
func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// TestScanRefusalMatchesCheckCall: the refusals parseFrame makes with a
// ScanValidator are checkCall's, field for field, UniqueID included.
func TestScanRefusalMatchesCheckCall(t *testing.T) {
	t.Parallel()
	v := newRequiredField()
	c := &conn{validator: v, checks: CheckUpstream}
	for _, in := range []string{
		`[2,"a","Heartbeat",{}]`,
		`[2,"a","BootNotification",{}]`,
		`[2,"a","BootNotification",{"chargePointVendor":1}]`,
		`[2,"\u00e9","Reset",{}]`,
		`[2,"a","Heart\u0062eat",{}]`,
		`[2,"a","Invented",{"x":[1,2,{"y":null}]}]`,
		`[2.0,"a","BootNotification" , {} ]`,
	} {
		want, err := ParseFrame([]byte(in))
		if err != nil {
			t.Fatalf("ParseFrame(%s): %v", in, err)
		}
		wantRefusal := c.checkCall(&want)
		got, refusal, err := parseFrame([]byte(in), v)
		if err != nil || got.UniqueID != want.UniqueID || got.Action != want.Action || string(got.Payload) != string(want.Payload) {
			t.Fatalf("parseFrame(%s) = %+v, %v; ParseFrame %+v", in, got, err, want)
		}
		if !jsonEqual(refusal, wantRefusal) {
			t.Fatalf("parseFrame(%s) refused %+v, checkCall %+v", in, refusal, wantRefusal)
		}
	}
}

// TestScanHookSeesThePayloadOnly: ScanCall gets the frame from the payload
// on, and is not asked for frames that are not CALLs or whose action is
// not a non-empty string.
func TestScanHookSeesThePayloadOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in    string
		scans int64
	}{
		{`[2,"a","Heartbeat", {"k":1} ]`, 1},
		{`[2,"a","Heartbeat",{"k":1},{}]`, 1}, // scanned, then refused as malformed
		{`[3,"a",{}]`, 0},
		{`[4,"a","GenericError","",{}]`, 0},
		{`[2,"a","",{}]`, 0},
		{`[2,"a",null,{}]`, 0},
		{`[5,"a","Heartbeat",{}]`, 0},
		{`[2,"a","Invented",{}]`, 0},
	} {
		v := &spyValidator{}
		parseFrame([]byte(tc.in), v)
		if v.scans != tc.scans {
			t.Fatalf("%s: ScanCall called %d times, want %d", tc.in, v.scans, tc.scans)
		}
		if tc.scans > 0 && !strings.HasPrefix(tc.in[strings.Index(tc.in, "{"):], v.data) {
			t.Fatalf("%s: ScanCall got %q", tc.in, v.data)
		}
	}
}

// spyValidator records what ScanCall is given.
type spyValidator struct {
	requiredField
	scans int64
	data  string
}

func (v *spyValidator) ScanCall(action string, data []byte) (int, *CallError) {
	v.scans++
	v.data = string(data)
	return v.requiredField.ScanCall(action, data)
}

// TestScanValidatorOutOfRange: a ScanValidator that reports an end beyond
// the data, or none, makes the frame malformed rather than a panic.
func TestScanValidatorOutOfRange(t *testing.T) {
	t.Parallel()
	for _, end := range []int{-1, 0, 1 << 20} {
		_, _, err := parseFrame([]byte(`[2,"a","Heartbeat",{}]`), fixedEnd{newRequiredField(), end})
		if ce := AsCallError(err); err == nil || ce.Description != "frame is not a JSON array" {
			t.Fatalf("end %d: err %v, want a frame that is not a JSON array", end, err)
		}
	}
}

type fixedEnd struct {
	*requiredField
	end int
}

func (v fixedEnd) ScanCall(string, []byte) (int, *CallError) { return v.end, nil }

// TestScanNestingLimit: the gateway applies encoding/json's nesting limit
// to a scanned payload even when ScanCall applies none.
func TestScanNestingLimit(t *testing.T) {
	t.Parallel()
	v := newRequiredField()
	for _, tc := range []struct {
		levels int // inside the payload object
		ok     bool
	}{{9998, true}, {9999, false}} {
		in := `[2,"d","Heartbeat",{"a":` + strings.Repeat("[", tc.levels) + strings.Repeat("]", tc.levels) + `}]`
		_, _, err := parseFrame([]byte(in), v)
		if _, refErr := parseFrameReference([]byte(in)); (err == nil) != tc.ok || (refErr == nil) != tc.ok {
			t.Fatalf("%d levels: err %v, reference %v, want ok %v", tc.levels, err, refErr, tc.ok)
		}
	}
}

// TestCommandCheckedWhileDecoded: CommandValidator hands a command's
// decoder the scanning validator of the protocol the charge point speaks
// (none when its downstream is not checked), and Send takes the verdict
// the decoder found (Command.CheckedAs) instead of checking the payload
// again, unless the charge point speaks another protocol by then.
func TestCommandCheckedWhileDecoded(t *testing.T) {
	t.Parallel()
	v := newRequiredField()
	checking := atomic.Int32{}
	checking.Store(int32(CheckAll))
	h := newHarness(t, Options{Validators: map[Protocol]Validator{OCPP16: v},
		Checking: func(string) (Checking, string) { return Checking(checking.Load()), "" }})
	ws := h.dial(t, "CP1")

	sv, p := h.srv.CommandValidator("CP1")
	if sv != v || p != OCPP16 {
		t.Fatalf("CommandValidator = %v, %q; want the 1.6 validator", sv, p)
	}
	if sv, p := h.srv.CommandValidator("offline"); sv != v || p != OCPP16 {
		t.Fatalf("CommandValidator of an unknown charge point = %v, %q; want the 1.6 validator", sv, p)
	}
	checking.Store(int32(CheckUpstream))
	if sv, _ := h.srv.CommandValidator("CP1"); sv != nil {
		t.Fatalf("CommandValidator with downstream checking off = %v, want nil", sv)
	}
	checking.Store(int32(CheckAll))

	cases := []struct {
		name       string
		checkedAs  Protocol
		refusal    *CallError
		wantChecks int64
		wantCode   ErrorCode // "" when sent
	}{
		{"valid in the pass", OCPP16, nil, 0, ""},
		{"invalid in the pass", OCPP16, &CallError{Code: PropertyConstraintViolation, Description: "type: not in enum"}, 0, PropertyConstraintViolation},
		{"checked for another protocol", "ocpp2.0.1", &CallError{Code: PropertyConstraintViolation}, 1, ""},
		{"not checked in the pass", "", nil, 1, ""},
	}
	for i, c := range cases {
		before := v.checks.Load()
		cmd := call("r"+strconv.Itoa(i), "Reset")
		cmd.Frame.Payload = []byte(`{"type":"Soft"}`)
		cmd.CheckedAs, cmd.PayloadRefusal = c.checkedAs, c.refusal
		err := h.srv.Send("CP1", cmd)
		if n := v.checks.Load() - before; n != c.wantChecks {
			t.Fatalf("%s: Check called %d times, want %d", c.name, n, c.wantChecks)
		}
		if c.wantCode != "" {
			if err == nil || err.Reason != ReasonInvalidPayload || err.Code != c.wantCode {
				t.Fatalf("%s: Send = %v, want invalid_payload %s", c.name, err, c.wantCode)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: Send = %v", c.name, err)
		}
		got := read(t, ws) // the CALL; answer it so the next one goes out
		if got[2] != "Reset" {
			t.Fatalf("%s: charge point read %v", c.name, got)
		}
		write(t, ws, `[3,"r`+strconv.Itoa(i)+`",{"status":"Accepted"}]`)
		if ev := h.rec.next(t, "received"); ev.in.Type != TypeCallResult {
			t.Fatalf("%s: received %+v, want the answer", c.name, ev.in)
		}
	}
	failures := h.srv.Stats().SchemaFailures
	if len(failures) != 1 || failures[0].Direction != "downstream" || failures[0].Code != string(PropertyConstraintViolation) {
		t.Fatalf("schema failures %+v, want the one verdict of the pass", failures)
	}
}
