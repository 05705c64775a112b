package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xeipuuv/gojsonschema"
)

// The compiled validator must give the verdict, code and violations gojsonschema (the reference
// engine, s.checkReference) gives. These tests compare both on the corpus, on mutations of it, on
// payloads generated from the schemas, and (FuzzCompiledMatchesReference) on whatever the fuzzer
// finds, for the embedded 1.6 set and, when test/interop is installed, the official OCPP 1.6,
// 2.0.1 and 2.1 sets (which use $ref and definitions).
//
// Where the two may legitimately differ, and how the comparison allows for it:
//
//   - Order among sibling properties. gojsonschema compiles "properties" by ranging over a Go map
//     (schema.go, parseProperties), so within one class the violations of two properties of an
//     object come in an order that changes from one Load to the next. The compiled validator uses
//     the schema's property order. So the lists must hold the same violations (field, rule and
//     message), and every two violations whose relative order gojsonschema does fix (same class
//     and not in sibling properties of one object: the same value, an object before its members,
//     array items before the array, items by index, classes) must come in the same order. The
//     first violation, and so the code, must be the same unless the reference's first is one of
//     several whose order is random.
//   - A number big.Rat cannot hold (exponent minus fraction digits beyond ±10^6) checked by
//     multipleOf, minimum or maximum: gojsonschema dereferences a nil *big.Rat and panics, so
//     there is no verdict to compare; the compiled validator computes exactly. Such inputs are
//     skipped (referenceResult recovers the panic).
//   - Exponents of 100000 and more: gojsonschema's big.Rat computes 5^exponent, which takes
//     seconds near 10^6; such payloads are skipped to keep the fuzzer fast, not for a mismatch.

var hugeExponent = regexp.MustCompile(`[0-9][eE][+-]?0*[1-9][0-9]{5}`)

// engines is one schema compiled by both engines.
type engines struct {
	name string
	sch  *messageSchema
}

// diffEngines returns "" when both engines agree on payload, else what differs.
func diffEngines(s *Set, e engines, payload []byte) string {
	if hugeExponent.Match(payload) {
		return ""
	}
	got := s.check(e.sch, payload)
	want, panicked := s.referenceResult(e.sch, payload)
	if panicked {
		return ""
	}
	if (got == nil) != (want == nil) {
		return fmt.Sprintf("%s: compiled %v, reference %v", e.name, describe(got), describe(want))
	}
	if got == nil {
		return ""
	}
	if got.Code != want.Code {
		return fmt.Sprintf("%s: code %s, reference %s\n compiled  %v\n reference %v", e.name, got.Code, want.Code, describe(got), describe(want))
	}
	if e.sch.root == nil || len(want.Violations) == 1 && want.Violations[0].Rule == "json" {
		if !slices.Equal(got.Violations, want.Violations) {
			return fmt.Sprintf("%s: compiled %v\n reference %v", e.name, describe(got), describe(want))
		}
		return ""
	}
	key := func(v Violation) string { return v.Field + "\x00" + v.Rule }
	gk, wk := make([]string, len(got.Violations)), make([]string, len(want.Violations))
	for i, v := range got.Violations {
		gk[i] = key(v)
	}
	for i, v := range want.Violations {
		wk[i] = key(v)
	}
	gs, ws := slices.Clone(gk), slices.Clone(wk)
	slices.Sort(gs)
	slices.Sort(ws)
	if !slices.Equal(gs, ws) {
		return fmt.Sprintf("%s: different violations\n compiled  %v\n reference %v", e.name, describe(got), describe(want))
	}
	pos := make(map[string]int, len(gk)) // assumes no (field, rule) repeats, checked here
	for i, k := range gk {
		if _, dup := pos[k]; dup {
			return fmt.Sprintf("%s: compiled repeats %q: %v", e.name, k, describe(got))
		}
		pos[k] = i
	}
	paths := make([][]pathStep, len(want.Violations))
	for i, v := range want.Violations {
		paths[i] = violationPath(e.sch.root, v)
		if g := got.Violations[pos[wk[i]]]; g.Message != v.Message {
			return fmt.Sprintf("%s: %s %s: message %q, reference %q", e.name, v.Field, v.Rule, g.Message, v.Message)
		}
	}
	classOf := func(v Violation) class {
		switch v.Rule {
		case "required":
			return classRequired
		case "type":
			return classType
		case "additionalProperties":
			return classFormation
		}
		return classProperty
	}
	for i := range want.Violations {
		for j := i + 1; j < len(want.Violations); j++ {
			vi, vj := want.Violations[i], want.Violations[j]
			if classOf(vi) == classOf(vj) && siblings(paths[i], paths[j]) {
				continue
			}
			if pos[wk[i]] > pos[wk[j]] {
				return fmt.Sprintf("%s: %s %s must come before %s %s\n compiled  %v\n reference %v",
					e.name, vi.Field, vi.Rule, vj.Field, vj.Rule, describe(got), describe(want))
			}
		}
	}
	first := want.Violations[0]
	if g := got.Violations[0]; g.Field != first.Field || g.Rule != first.Rule {
		if classOf(g) != classOf(first) || !siblings(paths[0], paths[pos0(want, g)]) {
			return fmt.Sprintf("%s: first %s %s, reference %s %s", e.name, g.Field, g.Rule, first.Field, first.Rule)
		}
	}
	return ""
}

func pos0(f *Failure, v Violation) int {
	for i, w := range f.Violations {
		if w.Field == v.Field && w.Rule == v.Rule {
			return i
		}
	}
	return 0
}

func describe(f *Failure) string {
	if f == nil {
		return "valid"
	}
	var b strings.Builder
	b.WriteString(f.Code)
	for _, v := range f.Violations {
		fmt.Fprintf(&b, " [%s %s]", v.Field, v.Rule)
	}
	return b.String()
}

// pathStep is one step of the path to the value a violation is about: a member name or an
// item index (array).
type pathStep struct {
	seg   string
	array bool
}

// siblings reports whether two violation paths part in two members of one object: the only
// pairs whose order gojsonschema leaves to a Go map.
func siblings(a, b []pathStep) bool {
	for k := 0; k < len(a) && k < len(b); k++ {
		if a[k].seg != b[k].seg {
			return !a[k].array
		}
	}
	return false
}

// violationPath splits v.Field into the path of the value v is about, using the compiled schema
// to tell names from indexes; for required and additionalProperties that is the object holding
// the named member.
func violationPath(root *node, v Violation) []pathStep {
	member := v.Rule == "required" || v.Rule == "additionalProperties"
	n, rest := root, v.Field
	var path []pathStep
	for rest != "" && n != nil {
		if n.ref != nil {
			n = n.ref
		}
		if member && slices.Contains(n.names, rest) {
			break
		}
		best := -1
		for j := range n.props {
			name := n.names[j]
			if (rest == name || strings.HasPrefix(rest, name+".")) && (best < 0 || len(name) > len(n.names[best])) {
				best = j
			}
		}
		if best >= 0 {
			name := n.names[best]
			path = append(path, pathStep{seg: name})
			n, rest = n.props[best], strings.TrimPrefix(rest[len(name):], ".")
			continue
		}
		seg, tail, _ := strings.Cut(rest, ".")
		if _, err := strconv.Atoi(seg); err == nil && n.items != nil {
			path = append(path, pathStep{seg: seg, array: true})
			n, rest = n.items, tail
			continue
		}
		break // an additional member's name
	}
	return path
}

// corpusSchemas returns the embedded 1.6 schemas as engines, by "<Action>Request|Response".
func corpusSchemas(t testing.TB, s *Set) []engines {
	var out []engines
	for _, a := range s.Actions() {
		for _, response := range []bool{false, true} {
			out = append(out, engines{schemaName(a, response), s.actions[a].schema(response)})
		}
	}
	return out
}

// officialSchemas compiles an official schema set bundled by npm ocpp-rpc (1.6, 2.0.1 or 2.1)
// with both engines; nil when test/interop is not installed.
func officialSchemas(t testing.TB, file string) []engines {
	t.Helper()
	raw, err := os.ReadFile("../test/interop/node_modules/ocpp-rpc/lib/schemas/" + file)
	if err != nil {
		if os.Getenv("CHARGEMQ_REQUIRE_ORACLE") != "" {
			t.Fatalf("oracle required but not readable: %v", err)
		}
		return nil
	}
	registerFormats()
	var docs []json.RawMessage
	if err := json.Unmarshal(raw, &docs); err != nil {
		t.Fatal(err)
	}
	var out []engines
	for _, d := range docs {
		var head struct {
			ID string `json:"$id"`
		}
		_ = json.Unmarshal(d, &head)
		ref, err := gojsonschema.NewSchema(gojsonschema.NewBytesLoader(d))
		if err != nil {
			t.Fatalf("%s %s: %v", file, head.ID, err)
		}
		root, why, err := compileSchema(d)
		if err != nil || len(why) > 0 {
			t.Fatalf("%s %s: not compiled: %v %v", file, head.ID, err, why)
		}
		out = append(out, engines{file + " " + head.ID, &messageSchema{ref: ref, root: root}})
	}
	return out
}

// corpusPayloads returns every payload of the corpus with the schema it was written for.
func corpusPayloads(t testing.TB) map[string][][]byte {
	out := make(map[string][][]byte)
	for _, d := range defs16() {
		c := readCorpusFile(t, d.name)
		for _, p := range c.Valid.Request {
			out[d.name+"Request"] = append(out[d.name+"Request"], p)
		}
		for _, p := range c.Valid.Response {
			out[d.name+"Response"] = append(out[d.name+"Response"], p)
		}
		for _, tc := range c.Invalid {
			n := schemaName(d.name, tc.Response)
			out[n] = append(out[n], tc.Payload)
		}
	}
	return out
}

// mutations returns structural variants of a JSON payload: each value replaced by values of
// other types and edge cases, each member removed, duplicated, renamed, escaped; whitespace.
func mutations(payload []byte) [][]byte {
	var v any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return nil
	}
	replacements := []string{`null`, `true`, `0`, `-1`, `1.0`, `1e2`, `1.5`, `-0`, `1e400`, `1e1000001`,
		`16.1`, `0.30000000000000004`, `16.15`, `""`, `"x"`, `"\u00e9"`, `"\ud800"`, `"\ud83d\ude00"`,
		`"` + strings.Repeat("é", 21) + `"`, `"` + strings.Repeat("a", 51) + `"`, `"2024-05-01T10:00:00Z"`,
		`"2024-05-01T10:00:00"`, `"ftp://h/x"`, `"h/x"`, `{}`, `[]`, `[{}]`, `{"zz":1}`}
	var out [][]byte
	var walk func(v any, set func(string))
	render := func() string { b, _ := json.Marshal(v); return string(b) }
	walk = func(x any, set func(string)) {
		switch x := x.(type) {
		case map[string]any:
			keys := slices.Sorted(maps.Keys(x))
			for _, k := range keys {
				val := x[k]
				for _, r := range replacements {
					x[k] = json.RawMessage(r)
					out = append(out, []byte(render()))
				}
				x[k] = val
				delete(x, k)
				out = append(out, []byte(render()))
				x[k] = val
				walk(val, func(s string) { x[k] = json.RawMessage(s) })
				x[k] = val
			}
			x["zz"] = 1
			out = append(out, []byte(render()))
			delete(x, "zz")
		case []any:
			for i, val := range x {
				for _, r := range replacements[:6] {
					x[i] = json.RawMessage(r)
					out = append(out, []byte(render()))
				}
				x[i] = val
				walk(val, func(s string) { x[i] = json.RawMessage(s) })
				x[i] = val
			}
		}
	}
	walk(v, nil)
	// Byte-level variants: duplicate and escaped member names, whitespace, trailing data.
	if i := bytes.IndexByte(payload, '"'); i >= 0 {
		if j := bytes.IndexByte(payload[i+1:], '"'); j >= 0 {
			name := payload[i : i+j+2]
			esc := []byte(`"\u00` + strconv.FormatInt(int64(name[1]), 16) + string(name[2:]))
			out = append(out, bytes.Replace(payload, name, esc, 1))
			if k := bytes.LastIndexByte(payload, '}'); k > 0 {
				dup := slices.Concat(payload[:k], []byte(`,`), name, []byte(`:1}`))
				out = append(out, dup)
			}
		}
	}
	out = append(out, bytes.ReplaceAll(payload, []byte(","), []byte(" ,\n\t")), append(slices.Clone(payload), " x"...))
	return out
}

func TestCompiledMatchesReference(t *testing.T) {
	t.Parallel()
	s := set16(t)
	corpus := corpusPayloads(t)
	for _, e := range corpusSchemas(t, s) {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			var payloads [][]byte
			for _, p := range corpus[e.name] {
				payloads = append(payloads, p)
				payloads = append(payloads, mutations(p)...)
			}
			r := rand.New(rand.NewPCG(1, uint64(len(e.name))))
			for range generated(300) {
				payloads = append(payloads, genPayload(r, e.sch.root))
			}
			for _, p := range payloads {
				if msg := diffEngines(s, e, p); msg != "" {
					t.Fatalf("%s\n payload %s", msg, p)
				}
			}
		})
	}
}

// TestCompiledMatchesReferenceOfficial runs generated payloads against the official 1.6, 2.0.1
// and 2.1 sets with both engines: they use $ref and definitions, which the embedded set does not.
func TestCompiledMatchesReferenceOfficial(t *testing.T) {
	t.Parallel()
	s := set16(t)
	for _, file := range []string{"ocpp1_6.json", "ocpp2_0_1.json", "ocpp2_1.json"} {
		set := officialSchemas(t, file)
		if set == nil {
			t.Skip("test/interop not installed (npm ci); set CHARGEMQ_REQUIRE_ORACLE=1 to require it")
		}
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			for i, e := range set {
				r := rand.New(rand.NewPCG(2, uint64(i)))
				for range generated(150) {
					p := genPayload(r, e.sch.root)
					if msg := diffEngines(s, e, p); msg != "" {
						t.Fatalf("%s\n payload %s", msg, p)
					}
				}
			}
		})
	}
}

// generated is how many payloads to generate per schema: n, or a fifth under the race detector.
func generated(n int) int {
	if raceEnabled {
		return n / 5
	}
	return n
}

// FuzzCompiledMatchesReference holds the compiled validator to gojsonschema's verdict, code and
// violations (see diffEngines) on any payload, for every 1.6 action and direction (sel picks
// them), and checks that Scan finds the end of a payload inside a frame.
func FuzzCompiledMatchesReference(f *testing.F) {
	s := set16(f)
	schemas := corpusSchemas(f, s)
	index := make(map[string]int, len(schemas))
	for i, e := range schemas {
		index[e.name] = i
	}
	for _, d := range defs16() {
		c := readCorpusFile(f, d.name)
		add := func(response bool, p []byte) {
			sel := uint16(index[schemaName(d.name, response)])
			f.Add(sel, p)
			for _, m := range mutations(p)[:min(len(mutations(p)), 8)] {
				f.Add(sel, m)
			}
		}
		for _, p := range c.Valid.Request {
			add(false, p)
		}
		for _, p := range c.Valid.Response {
			add(true, p)
		}
		for _, tc := range c.Invalid {
			add(tc.Response, tc.Payload)
		}
	}
	for i, e := range schemas {
		r := rand.New(rand.NewPCG(3, uint64(i)))
		f.Add(uint16(i), genPayload(r, e.sch.root))
	}
	f.Fuzz(func(t *testing.T, sel uint16, payload []byte) {
		e := schemas[int(sel)%len(schemas)]
		if msg := diffEngines(s, e, payload); msg != "" {
			t.Fatalf("%s\n payload %q", msg, payload)
		}
		action, response := strings.TrimSuffix(strings.TrimSuffix(e.name, "Request"), "Response"), strings.HasSuffix(e.name, "Response")
		end, f := s.Scan(action, response, payload)
		if end >= 0 && !json.Valid(payload[:end]) || end < 0 && json.Valid(payload) {
			t.Fatalf("Scan end %d for %q", end, payload)
		}
		if json.Valid(payload) {
			framed := slices.Concat(payload, []byte(`]`))
			end2, f2 := s.Scan(action, response, framed)
			if end2 != end || describe(f2) != describe(f) || skipWS(payload, end) != len(payload) {
				t.Fatalf("Scan in a frame: end %d (alone %d), %s (alone %s)", end2, end, describe(f2), describe(f))
			}
		}
	})
}

// readCorpusFile is readCorpus for any testing.TB.
func readCorpusFile(tb testing.TB, action string) corpusFile {
	tb.Helper()
	b, err := os.ReadFile(corpusDir + "/" + action + ".json")
	if err != nil {
		tb.Fatal(err)
	}
	var c corpusFile
	if err := json.Unmarshal(b, &c); err != nil {
		tb.Fatal(err)
	}
	return c
}
