package schemas

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/xeipuuv/gojsonschema"
)

func TestSender(t *testing.T) {
	t.Parallel()
	s := set16(t)
	for _, tc := range []struct {
		action string
		want   Sender
		ok     bool
	}{
		{"BootNotification", SenderChargePoint, true},
		{"Heartbeat", SenderChargePoint, true},
		{"SignCertificate", SenderChargePoint, true},
		{"Reset", SenderCentralSystem, true},
		{"CertificateSigned", SenderCentralSystem, true},
		{"DataTransfer", SenderChargePoint | SenderCentralSystem, true},
		{"NoSuchAction", 0, false},
		{"bootnotification", 0, false},
	} {
		t.Run(tc.action, func(t *testing.T) {
			t.Parallel()
			got, ok := s.Sender(tc.action)
			if got != tc.want || ok != tc.ok {
				t.Errorf("Sender(%q) = %v, %v; want %v, %v", tc.action, got, ok, tc.want, tc.ok)
			}
		})
	}
	count := map[Sender]int{}
	for _, d := range defs16() {
		count[d.sender]++
	}
	if count[SenderChargePoint] != 13 || count[SenderCentralSystem] != 25 || count[SenderChargePoint|SenderCentralSystem] != 1 {
		t.Errorf("senders: %v, want 13 charge point, 25 central system, 1 both", count)
	}
	if p := s.Protocol(); p != "ocpp1.6" {
		t.Errorf("Protocol() = %q", p)
	}
}

func TestCheckShapes(t *testing.T) {
	t.Parallel()
	s := set16(t)
	for _, tc := range []struct {
		name     string
		action   string
		response bool
		payload  string
		code     string // "" = valid
		err      string // Failure.Error(), when set
	}{
		{"valid", "Heartbeat", false, `{}`, "", ""},
		{"valid with whitespace", "Heartbeat", false, " \n{ }\t", "", ""},
		{"unknown action", "Foo", false, `{}`, "NotImplemented", `action "Foo" is not defined in ocpp1.6`},
		{"empty", "Heartbeat", false, ``, "FormationViolation", "payload is not a JSON object"},
		{"truncated", "Heartbeat", false, `{`, "FormationViolation", ""},
		{"trailing data", "Heartbeat", false, `{} {}`, "FormationViolation", ""},
		{"trailing garbage", "Heartbeat", false, `{}x`, "FormationViolation", ""},
		{"array", "Heartbeat", false, `[]`, "FormationViolation", ""},
		{"number", "Heartbeat", false, `1`, "FormationViolation", ""},
		{"missing", "BootNotification", false, `{"chargePointVendor":"A"}`, "OccurenceConstraintViolation", "chargePointModel: required"},
		{"two missing", "BootNotification", false, `{}`, "OccurenceConstraintViolation", "chargePointVendor: required; chargePointModel: required"},
		{"response checked against response schema", "Heartbeat", true, `{}`, "OccurenceConstraintViolation", "currentTime: required"},
		{"all classes", "BootNotification", false,
			`{"zz":1,"chargePointVendor":1,"aa":2,"firmwareVersion":"` + strings.Repeat("x", 51) + `"}`,
			"OccurenceConstraintViolation",
			"chargePointModel: required; chargePointVendor: type; firmwareVersion: maxLength; aa: additionalProperties; zz: additionalProperties"},
		{"nested path", "StartTransaction", true, `{"idTagInfo":{"status":"Nope","zz":1},"transactionId":1}`,
			"PropertyConstraintViolation", "idTagInfo.status: enum; idTagInfo.zz: additionalProperties"},
		{"multipleOf exact", "SetChargingProfile", false, profile("16.1"), "", ""},
		{"multipleOf float noise", "SetChargingProfile", false, profile("0.30000000000000004"), "", ""},
		{"multipleOf exponent", "SetChargingProfile", false, profile("1.61e1"), "", ""},
		{"multipleOf miss", "SetChargingProfile", false, profile("16.15"), "PropertyConstraintViolation",
			"csChargingProfiles.chargingSchedule.chargingSchedulePeriod.0.limit: multipleOf"},
		{"multipleOf miss kept beside a tolerated one", "GetCompositeSchedule", true,
			`{"status":"Accepted","chargingSchedule":{"chargingRateUnit":"A","minChargingRate":0.30000000000000004,"chargingSchedulePeriod":[{"startPeriod":0,"limit":1.05}]}}`,
			"PropertyConstraintViolation", "chargingSchedule.chargingSchedulePeriod.0.limit: multipleOf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := s.Check(tc.action, tc.response, []byte(tc.payload))
			if tc.code == "" {
				if f != nil {
					t.Fatalf("want valid, got %s: %v", f.Code, f)
				}
				return
			}
			if f == nil {
				t.Fatalf("valid, want %s", tc.code)
			}
			if f.Code != tc.code {
				t.Errorf("code %s, want %s", f.Code, tc.code)
			}
			if tc.err != "" && f.Error() != tc.err {
				t.Errorf("Error() = %q\nwant      %q", f.Error(), tc.err)
			}
			for _, v := range f.Violations {
				if v.Rule == "" || v.Message == "" {
					t.Errorf("incomplete violation %+v", v)
				}
			}
		})
	}
}

func profile(limit string) string {
	return `{"connectorId":1,"csChargingProfiles":{"chargingProfileId":1,"stackLevel":0,` +
		`"chargingProfilePurpose":"TxProfile","chargingProfileKind":"Relative","chargingSchedule":` +
		`{"chargingRateUnit":"A","chargingSchedulePeriod":[{"startPeriod":0,"limit":` + limit + `}]}}}`
}

// vendorBoot is a corrected BootNotificationRequest as a vendor might ship it: draft-04, with
// definitions and a $ref, chargePointModel allowed up to 30 characters.
const vendorBoot = `{
  "$schema": "http://json-schema.org/draft-04/schema#",
  "id": "%ID%BootNotificationRequest",
  "type": "object",
  "definitions": {"model": {"type": "string", "maxLength": 30}},
  "properties": {
    "chargePointVendor": {"type": "string", "maxLength": 20},
    "chargePointModel": {"$ref": "#/definitions/model"}
  },
  "additionalProperties": false,
  "required": ["chargePointVendor", "chargePointModel"]
}`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDir(t *testing.T) {
	t.Parallel()
	model25 := []byte(`{"chargePointVendor":"A","chargePointModel":"` + strings.Repeat("m", 25) + `"}`)
	if f := set16(t).Check("BootNotification", false, model25); f == nil || f.Code != "PropertyConstraintViolation" {
		t.Fatalf("embedded schema: %v", f)
	}
	for _, tc := range []struct {
		name   string
		prefix string
	}{
		{"default prefix", ""},
		{"own prefix", "urn:acme:ocpp16:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			id := tc.prefix
			if id == "" {
				id = "urn:OCPP:1.6:2019:12:"
			}
			writeFile(t, dir, "boot.json", strings.ReplaceAll(vendorBoot, "%ID%", id))
			writeFile(t, dir, "notes.txt", "not a schema")
			s, err := Load(Options{Protocol: "ocpp1.6", IDPrefix: tc.prefix, Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if f := s.Check("BootNotification", false, model25); f != nil {
				t.Errorf("vendor schema not used: %v", f)
			}
			if f := s.Check("BootNotification", false, []byte(`{"chargePointVendor":"A","chargePointModel":"`+strings.Repeat("m", 31)+`"}`)); f == nil {
				t.Error("vendor schema: 31 characters accepted")
			}
			if f := s.Check("Heartbeat", true, []byte(`{}`)); f == nil {
				t.Error("embedded schemas not kept beside the vendor's")
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opts   func(dir string) Options
		files  map[string]string
		want   string // in the error
		target error
	}{
		{name: "unknown protocol", opts: func(string) Options { return Options{Protocol: "ocpp1.5"} },
			want: `"ocpp1.5"`, target: ErrUnknownProtocol},
		{name: "empty protocol", opts: func(string) Options { return Options{} }, target: ErrUnknownProtocol},
		{name: "missing dir", opts: func(dir string) Options {
			return Options{Protocol: "ocpp1.6", Dir: filepath.Join(dir, "nope")}
		}, want: "nope"},
		{name: "unknown id", files: map[string]string{"x.json": `{"id":"urn:OCPP:1.6:2019:12:FooRequest","type":"object"}`},
			want: `x.json: unknown schema id "urn:OCPP:1.6:2019:12:FooRequest"`},
		{name: "id with another prefix", files: map[string]string{"b.json": strings.ReplaceAll(vendorBoot, "%ID%", "urn:Boot.req")}, want: "b.json: unknown schema id"},
		{name: "no id", files: map[string]string{"noid.json": `{"type":"object"}`}, want: `noid.json: no "id"`},
		{name: "not JSON", files: map[string]string{"bad.json": `{`}, want: "bad.json: not a JSON schema object"},
		{name: "does not compile", files: map[string]string{"c.json": `{"id":"urn:OCPP:1.6:2019:12:ResetRequest","type":"object","required":"type"}`},
			want: "c.json (id urn:OCPP:1.6:2019:12:ResetRequest)"},
		{name: "duplicate id", files: map[string]string{
			"a.json": `{"id":"urn:OCPP:1.6:2019:12:ResetRequest","type":"object"}`,
			"b.json": `{"id":"urn:OCPP:1.6:2019:12:ResetRequest","type":"object"}`,
		}, want: "b.json: id \"urn:OCPP:1.6:2019:12:ResetRequest\" is also the id of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for n, c := range tc.files {
				writeFile(t, dir, n, c)
			}
			opts := Options{Protocol: "ocpp1.6", Dir: dir}
			if tc.opts != nil {
				opts = tc.opts(dir)
			}
			s, err := Load(opts)
			if err == nil {
				t.Fatalf("Load succeeded: %v", s.Protocol())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("error %v is not %v", err, tc.target)
			}
		})
	}
}

// TestConcurrentCheck runs the corpus from many goroutines against one Set (run with -race).
func TestConcurrentCheck(t *testing.T) {
	t.Parallel()
	s := set16(t)
	type job struct {
		action   string
		response bool
		payload  []byte
		valid    bool
	}
	var jobs []job
	for _, d := range defs16() {
		c := readCorpus(t, d.name)
		for _, p := range c.Valid.Request {
			jobs = append(jobs, job{d.name, false, p, true})
		}
		for _, p := range c.Valid.Response {
			jobs = append(jobs, job{d.name, true, p, true})
		}
		for _, tc := range c.Invalid {
			jobs = append(jobs, job{d.name, tc.Response, tc.Payload, false})
		}
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				j := jobs[(i+g*7)%len(jobs)]
				if f := s.Check(j.action, j.response, j.payload); (f == nil) != j.valid {
					t.Errorf("%s %s: valid=%v, want %v", j.action, j.payload, f == nil, j.valid)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestScan(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "boot.json", `{"id":"urn:OCPP:1.6:2019:12:BootNotificationRequest","type":"object",
		"properties":{"chargePointVendor":{"type":"string","pattern":"^[A-Z]"},"chargePointModel":{"type":"string"}},
		"required":["chargePointVendor","chargePointModel"]}`)
	vendor, err := Load(Options{Protocol: "ocpp1.6", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		set    *Set
		action string
		data   string
		end    int    // -1: malformed
		code   string // "" = valid
		err    string // Failure.Error(), when set
	}{
		{"in a frame", nil, "Heartbeat", `{}]`, 2, "", ""},
		{"leading whitespace", nil, "Heartbeat", " \n{ }\t]", 5, "", ""},
		{"violation in a frame", nil, "Heartbeat", `{"a":[1,{"b":"]"}]}]`, 19, "FormationViolation", "a: additionalProperties"},
		{"anything after", nil, "Heartbeat", `{} garbage`, 2, "", ""},
		{"nested", nil, "BootNotification", `{"chargePointVendor":"A","chargePointModel":"B"}, "x"]`, 48, "", ""},
		{"truncated", nil, "Heartbeat", `{"a":`, -1, "", ""},
		{"bad escape", nil, "Heartbeat", `{"a":"\x"}]`, -1, "", ""},
		{"empty", nil, "Heartbeat", ``, -1, "", ""},
		{"array", nil, "Heartbeat", `[1,2]]`, 5, "FormationViolation", "payload is not a JSON object"},
		{"string", nil, "Heartbeat", `"{}"]`, 4, "FormationViolation", "payload is not a JSON object"},
		{"number", nil, "Heartbeat", `12]`, 2, "FormationViolation", "payload is not a JSON object"},
		{"unknown action", nil, "Foo", `{"a":[1,{}]}]`, 12, "NotImplemented", `action "Foo" is not defined in ocpp1.6`},
		{"unknown action, malformed", nil, "Foo", `{"a":]`, -1, "", ""},
		{"gojsonschema schema", vendor, "BootNotification", `{"chargePointVendor":"a","chargePointModel":"B"}]`, 48, "PropertyConstraintViolation", "chargePointVendor: pattern"},
		{"gojsonschema schema, valid", vendor, "BootNotification", `{"chargePointVendor":"A","chargePointModel":"B"} ]`, 48, "", ""},
		{"gojsonschema schema, malformed", vendor, "BootNotification", `{"chargePointVendor":"A",]`, -1, "", ""},
		// gojsonschema decodes into a map: the last of repeated members counts.
		{"repeated member, last wrong", nil, "BootNotification", `{"chargePointVendor":"A","chargePointModel":"B","chargePointModel":1}]`, 69, "TypeConstraintViolation", "chargePointModel: type"},
		{"repeated member, last right", nil, "BootNotification", `{"chargePointVendor":"A","chargePointModel":1,"chargePointModel":"B"}]`, 69, "", ""},
		{"repeated unknown member", nil, "Heartbeat", `{"a":1,"\u0061":2}]`, 18, "FormationViolation", "a: additionalProperties"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.set
			if s == nil {
				s = set16(t)
			}
			end, f := s.Scan(tc.action, false, []byte(tc.data))
			if end != tc.end {
				t.Errorf("end %d, want %d", end, tc.end)
			}
			switch {
			case tc.end < 0 || tc.code == "":
				if f != nil {
					t.Errorf("failure %s: %v", f.Code, f)
				}
			case f == nil:
				t.Errorf("valid, want %s", tc.code)
			case f.Code != tc.code || tc.err != "" && f.Error() != tc.err:
				t.Errorf("%s %q, want %s %q", f.Code, f.Error(), tc.code, tc.err)
			}
			if end >= 0 {
				if g := s.Check(tc.action, false, []byte(tc.data[:end])); describe(g) != describe(f) {
					t.Errorf("Check of the value alone: %s, Scan %s", describe(g), describe(f))
				}
			}
		})
	}
}

func TestFallbacks(t *testing.T) {
	t.Parallel()
	if fb := set16(t).Fallbacks(); len(fb) != 0 {
		t.Errorf("embedded schemas fall back: %+v", fb)
	}
	dir := t.TempDir()
	writeFile(t, dir, "boot.json", strings.ReplaceAll(vendorBoot, "%ID%", "urn:OCPP:1.6:2019:12:"))
	file := writeFile(t, dir, "reset.json", `{"id":"urn:OCPP:1.6:2019:12:ResetRequest","type":"object",
		"properties":{"type":{"type":"string","oneOf":[{"enum":["Hard"]},{"enum":["Soft"]}]},
		"x":{"type":"string","format":"email"},"y":{"type":"string","pattern":"^a","format":"email"}},
		"required":["type"]}`)
	s, err := Load(Options{Protocol: "ocpp1.6", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	want := []Fallback{
		{Schema: "urn:OCPP:1.6:2019:12:ResetRequest", File: file, Keyword: "oneOf", Pointer: "#/properties/type/oneOf"},
		{Schema: "urn:OCPP:1.6:2019:12:ResetRequest", File: file, Keyword: "format", Pointer: "#/properties/x/format", Reason: `format "email"`},
		{Schema: "urn:OCPP:1.6:2019:12:ResetRequest", File: file, Keyword: "pattern", Pointer: "#/properties/y/pattern"},
	}
	if got := s.Fallbacks(); !slices.Equal(got, want) {
		t.Errorf("Fallbacks() =\n %+v\nwant\n %+v", got, want)
	}
	if s.actions["BootNotification"].request.root == nil {
		t.Error("vendor BootNotificationRequest ($ref, definitions) not compiled")
	}
	// The fallback schema is checked, by gojsonschema.
	if f := s.Check("Reset", false, []byte(`{"type":"Warm"}`)); f == nil || !slices.ContainsFunc(f.Violations, func(v Violation) bool { return v.Rule == "number_one_of" }) {
		t.Errorf("oneOf not checked: %v", describe(f))
	}
	if f := s.Check("Reset", false, []byte(`{"type":"Hard"}`)); f != nil {
		t.Errorf("valid: %v", f)
	}
}

func TestLoadRefCycle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "reset.json", `{"id":"urn:OCPP:1.6:2019:12:ResetRequest","type":"object",
		"definitions":{"a":{"$ref":"#/definitions/b"},"b":{"$ref":"#/definitions/a"}},
		"properties":{"type":{"$ref":"#/definitions/a"}}}`)
	if _, err := Load(Options{Protocol: "ocpp1.6", Dir: dir}); err == nil || !strings.Contains(err.Error(), "reset.json") || !strings.Contains(err.Error(), "$ref cycle") {
		t.Errorf("Load: %v, want a $ref cycle error naming reset.json", err)
	}
}

// TestRecursiveSchema checks a schema whose definition refers to itself, a cycle in the compiled
// graph, against gojsonschema.
func TestRecursiveSchema(t *testing.T) {
	t.Parallel()
	doc := []byte(`{"$schema":"http://json-schema.org/draft-07/schema","$id":"urn:tree","$ref":"#/definitions/node",
		"definitions":{"node":{"type":"object","additionalProperties":false,"required":["v"],
		"properties":{"v":{"type":"integer","minimum":0,"maximum":9},"kids":{"type":"array","maxItems":2,"items":{"$ref":"#/definitions/node"}}}}}}`)
	registerFormats()
	ref, err := gojsonschema.NewSchema(gojsonschema.NewBytesLoader(doc))
	if err != nil {
		t.Fatal(err)
	}
	root, why, err := compileSchema(doc)
	if err != nil || why != nil {
		t.Fatal(err, why)
	}
	s := set16(t)
	e := engines{"tree", &messageSchema{ref: ref, root: root}}
	for _, p := range []string{`{"v":1}`, `{"v":1,"kids":[{"v":2,"kids":[{"v":3},{"v":10,"x":1}]},{}]}`,
		`{"v":1,"kids":[{"v":2},{"v":3},{"v":"4"}]}`, `{"kids":[{"kids":[{"kids":[{"v":-1}]}]}]}`} {
		if msg := diffEngines(s, e, []byte(p)); msg != "" {
			t.Errorf("%s\n payload %s", msg, p)
		}
	}
	r := rand.New(rand.NewPCG(6, 6))
	for range 500 {
		p := genPayload(r, root)
		if msg := diffEngines(s, e, p); msg != "" {
			t.Fatalf("%s\n payload %s", msg, p)
		}
	}
}
