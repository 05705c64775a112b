package schemas

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// corpusDir holds the golden frames, one file per action (see testdata/frames/README.md).
const corpusDir = "../testdata/frames"

type corpusFile struct {
	Action string `json:"action"`
	Valid  struct {
		Request  []json.RawMessage `json:"request"`
		Response []json.RawMessage `json:"response"`
	} `json:"valid"`
	Invalid []struct {
		Name       string          `json:"name"`
		Response   bool            `json:"response"`
		Payload    json.RawMessage `json:"payload"`
		Code       string          `json:"code"`
		Field      *string         `json:"field"`
		Rule       string          `json:"rule"`
		AJVAccepts bool            `json:"ajvAccepts"`
	} `json:"invalid"`
}

func readCorpus(t *testing.T, action string) corpusFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, action+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var c corpusFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s.json: %v", action, err)
	}
	if c.Action != action {
		t.Fatalf("%s.json: action %q", action, c.Action)
	}
	return c
}

// loadSet16 compiles the default 1.6 set once for the whole test binary.
var loadSet16 = sync.OnceValues(func() (*Set, error) { return Load(Options{Protocol: "ocpp1.6"}) })

func set16(t testing.TB) *Set {
	t.Helper()
	s, err := loadSet16()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCorpus(t *testing.T) {
	t.Parallel()
	s := set16(t)
	for _, d := range defs16() {
		c := readCorpus(t, d.name)
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			valid := func(kind string, response bool, payloads []json.RawMessage) {
				if len(payloads) == 0 {
					t.Errorf("no valid %s", kind)
				}
				for i, p := range payloads {
					t.Run(fmt.Sprintf("valid %s %d", kind, i), func(t *testing.T) {
						t.Parallel()
						if f := s.Check(d.name, response, p); f != nil {
							t.Errorf("%s: %s %v", p, f.Code, f)
						}
					})
				}
			}
			valid("request", false, c.Valid.Request)
			valid("response", true, c.Valid.Response)
			for _, tc := range c.Invalid {
				t.Run(tc.Name, func(t *testing.T) {
					t.Parallel()
					f := s.Check(d.name, tc.Response, tc.Payload)
					if f == nil {
						t.Fatalf("%s: valid, want %s", tc.Payload, tc.Code)
					}
					if f.Code != tc.Code {
						t.Errorf("code %s, want %s (%v)", f.Code, tc.Code, f)
					}
					if len(f.Violations) == 0 {
						t.Fatal("no violations")
					}
					first := f.Violations[0]
					if tc.Field != nil && first.Field != *tc.Field {
						t.Errorf("first field %q, want %q (%v)", first.Field, *tc.Field, f)
					}
					if tc.Rule != "" && first.Rule != tc.Rule {
						t.Errorf("first rule %q, want %q (%v)", first.Rule, tc.Rule, f)
					}
				})
			}
		})
	}
}

// TestCorpusCoverage checks that every action has both schemas, a corpus file, and in it at least
// a valid request and response and each kind of invalid case its schemas make possible.
func TestCorpusCoverage(t *testing.T) {
	t.Parallel()
	s := set16(t)
	defs := defs16()
	if len(defs) != 39 {
		t.Fatalf("%d actions, want 39", len(defs))
	}
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.json"))
	if len(files) != len(defs) {
		t.Errorf("%d corpus files, want %d", len(files), len(defs))
	}
	for _, d := range defs {
		a := s.actions[d.name]
		if a == nil || a.request.ref == nil || a.response.ref == nil || a.request.root == nil || a.response.root == nil {
			t.Errorf("%s: schemas missing", d.name)
			continue
		}
		c := readCorpus(t, d.name)
		if len(c.Valid.Request) == 0 || len(c.Valid.Response) == 0 {
			t.Errorf("%s: needs a valid request and response", d.name)
		}
		for _, response := range []bool{false, true} {
			fs := d.request
			if response {
				fs = d.response
			}
			need := map[string]bool{"additionalProperties": true}
			walkFields(fs, func(f field) {
				if f.required {
					need["required"] = true
				}
				need["type"] = true
				if len(f.enum) > 0 {
					need["enum"] = true
				}
				if f.maxLength > 0 {
					need["maxLength"] = true
				}
			})
			for _, tc := range c.Invalid {
				if tc.Response == response {
					delete(need, tc.Rule)
				}
			}
			for rule := range need {
				t.Errorf("%s %s: no invalid case for %s", d.name, schemaName(d.name, response), rule)
			}
		}
	}
}

func walkFields(fs []field, fn func(field)) {
	for _, f := range fs {
		fn(f)
		walkFields(f.fields, fn)
		if f.items != nil {
			walkFields([]field{*f.items}, fn)
		}
	}
}
