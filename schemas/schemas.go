package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/xeipuuv/gojsonschema"
)

// Sender says who may send the CALL of an action. The gateway answers a CALL from the wrong side
// with NotSupported rather than validating it, so it needs to know the direction per action.
type Sender uint8

const (
	// SenderChargePoint marks actions whose CALL comes from the charge point (BootNotification).
	SenderChargePoint Sender = 1 << iota
	// SenderCentralSystem marks actions whose CALL comes from the central system (Reset).
	// DataTransfer has both bits.
	SenderCentralSystem
)

// ErrUnknownProtocol is returned by Load for a protocol it has no schemas for.
var ErrUnknownProtocol = errors.New("schemas: unknown protocol")

// Options selects the schema set Load builds.
type Options struct {
	// Protocol is the OCPP-J subprotocol name: "ocpp1.6" is the only one so far.
	Protocol string
	// IDPrefix is the prefix of schema ids, which are <IDPrefix><Action>Request and
	// <IDPrefix><Action>Response. Empty means the protocol's default, "urn:OCPP:1.6:2019:12:" for
	// 1.6 (the OCA's own ids). It matters only for the files in Dir, which are matched by id.
	IDPrefix string
	// Dir, when set, is a directory of *.json schemas (draft-04 "id" or later "$id") that replace
	// the embedded schemas with the same id: a vendor's corrected set can be dropped in without a
	// rebuild. A file whose id is not one of the protocol's schema ids is an error naming the file.
	Dir string
}

// Set is a compiled schema set for one protocol. It is immutable after Load and safe for
// concurrent use: compile once at startup, then Check every message.
type Set struct {
	protocol  string
	codes     codes
	actions   map[string]*actionSchemas
	fallbacks []Fallback
}

type actionSchemas struct {
	sender   Sender
	request  messageSchema
	response messageSchema
}

// messageSchema is one schema compiled twice: by gojsonschema, the reference engine (and the
// engine for what the compiler does not implement), and by the compiler.
type messageSchema struct {
	ref  *gojsonschema.Schema
	root *node // nil: checked by gojsonschema (see Set.Fallbacks)
}

func (a *actionSchemas) schema(response bool) *messageSchema {
	if response {
		return &a.response
	}
	return &a.request
}

// Fallback is a schema the compiled validator does not handle, because it uses a keyword (or a
// form of one) the compiler does not implement: payloads of that message are checked by
// gojsonschema instead, correctly but some thirty times slower and allocating per keyword. Only
// vendor schemas (Options.Dir) can cause one; Set.Fallbacks lists them so that startup can say so.
type Fallback struct {
	// Schema is the schema's id ("urn:OCPP:1.6:2019:12:BootNotificationRequest").
	Schema string
	// File is where it was read from: a file in Options.Dir, or the embedded path.
	File string
	// Keyword is the keyword that is not compiled ("pattern", "oneOf", "format", "$ref" …), or
	// "(boolean schema)" for a subschema that is just true or false.
	Keyword string
	// Pointer is a JSON pointer to its first use in the file ("#/properties/idTag/pattern").
	Pointer string
	// Reason says what about the keyword is not compiled when it is not the keyword itself
	// (`format "email"`, "enum with a value that is not a string"); empty otherwise.
	Reason string
}

// schemaSource is one schema document before compilation and where it came from.
type schemaSource struct {
	origin string // file name, for errors
	id     string
	data   []byte
}

// Load compiles every schema of opts.Protocol once: the embedded, generated ones, each replaced by
// the file in opts.Dir with the same id. Errors name the file or id at fault, so a bad vendor file
// fails startup rather than the first message that uses it.
func Load(opts Options) (*Set, error) {
	registerFormats()
	p, ok := lookupProtocol(opts.Protocol)
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownProtocol, opts.Protocol, strings.Join(protocolNames(), ", "))
	}
	prefix := opts.IDPrefix
	if prefix == "" {
		prefix = p.defaultPrefix
	}

	defs := p.defs()
	s := &Set{protocol: p.name, codes: p.codes, actions: make(map[string]*actionSchemas, len(defs))}
	wanted := make(map[string]bool, 2*len(defs)) // schema names: <Action>Request, <Action>Response
	for _, d := range defs {
		s.actions[d.name] = &actionSchemas{sender: d.sender}
		wanted[d.name+"Request"], wanted[d.name+"Response"] = true, true
	}

	sources := make(map[string]schemaSource, len(wanted))
	entries, err := fs.ReadDir(p.files, p.dir)
	if err != nil {
		return nil, fmt.Errorf("schemas: embedded %s: %w", p.dir, err)
	}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".json" {
			continue
		}
		name := path.Join(p.dir, e.Name())
		data, err := fs.ReadFile(p.files, name)
		if err != nil {
			return nil, fmt.Errorf("schemas: embedded %s: %w", name, err)
		}
		src, key, err := identify(name, data, p.defaultPrefix, wanted)
		if err != nil {
			return nil, err
		}
		sources[key] = src
	}
	if opts.Dir != "" {
		if err := readDir(opts.Dir, prefix, wanted, sources); err != nil {
			return nil, err
		}
	}

	for _, d := range defs {
		a := s.actions[d.name]
		for _, response := range []bool{false, true} {
			key := schemaName(d.name, response)
			src, ok := sources[key]
			if !ok {
				return nil, fmt.Errorf("schemas: %s: no schema %s%s", p.name, prefix, key)
			}
			ref, err := gojsonschema.NewSchema(gojsonschema.NewBytesLoader(src.data))
			if err != nil {
				return nil, fmt.Errorf("schemas: %s (id %s): %w", src.origin, src.id, err)
			}
			root, why, err := compileSchema(src.data)
			if err != nil {
				return nil, fmt.Errorf("schemas: %s (id %s): %w", src.origin, src.id, err)
			}
			for _, u := range why {
				s.fallbacks = append(s.fallbacks, Fallback{Schema: src.id, File: src.origin, Keyword: u.keyword, Pointer: u.pointer, Reason: u.reason})
			}
			*a.schema(response) = messageSchema{ref: ref, root: root}
		}
	}
	return s, nil
}

func schemaName(action string, response bool) string {
	if response {
		return action + "Response"
	}
	return action + "Request"
}

// readDir adds the vendor schemas in dir to sources, replacing embedded ones by id.
func readDir(dir, prefix string, wanted map[string]bool, sources map[string]schemaSource) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("schemas: schema dir: %w", err)
	}
	seen := make(map[string]string)
	for _, e := range entries { // os.ReadDir sorts by name: errors are reproducible
		if e.IsDir() || filepath.Ext(e.Name()) != ".json" {
			continue
		}
		name := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("schemas: %w", err)
		}
		src, key, err := identify(name, data, prefix, wanted)
		if err != nil {
			return err
		}
		if other, dup := seen[key]; dup {
			return fmt.Errorf("schemas: %s: id %q is also the id of %s", name, src.id, other)
		}
		seen[key] = name
		sources[key] = src
	}
	return nil
}

// identify reads the id of a schema document and returns the schema name (<Action>Request …) it
// stands for, or an error naming the file.
func identify(origin string, data []byte, prefix string, wanted map[string]bool) (schemaSource, string, error) {
	var head struct {
		ID    string `json:"id"`
		DolID string `json:"$id"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return schemaSource{}, "", fmt.Errorf("schemas: %s: not a JSON schema object: %w", origin, err)
	}
	id := head.ID
	if id == "" {
		id = head.DolID
	}
	if id == "" {
		return schemaSource{}, "", fmt.Errorf("schemas: %s: no \"id\"", origin)
	}
	key, ok := strings.CutPrefix(id, prefix)
	if !ok || !wanted[key] {
		return schemaSource{}, "", fmt.Errorf("schemas: %s: unknown schema id %q (want %s<Action>Request or %s<Action>Response)", origin, id, prefix, prefix)
	}
	return schemaSource{origin: origin, id: id, data: data}, key, nil
}

// Protocol returns the subprotocol name of the set ("ocpp1.6").
func (s *Set) Protocol() string { return s.protocol }

// Actions lists the protocol's actions, sorted: a bounded set, for
// metric labels.
func (s *Set) Actions() []string {
	out := make([]string, 0, len(s.actions))
	for a := range s.actions {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Sender returns who may send the CALL of action; false when the protocol does not define the
// action (the gateway answers NotImplemented).
func (s *Set) Sender(action string) (Sender, bool) {
	a, ok := s.actions[action]
	if !ok {
		return 0, false
	}
	return a.sender, true
}

// Fallbacks lists the schemas of the set that are checked by gojsonschema because they use a
// keyword the compiled validator does not implement, one entry per schema and keyword. It is
// empty for the embedded schemas; a vendor file in Options.Dir can add entries, which startup
// should log once. The slice is a copy.
func (s *Set) Fallbacks() []Fallback { return append([]Fallback(nil), s.fallbacks...) }

// Check validates the payload of a CALL (response false) or CALLRESULT (response true) of action.
// It returns nil when the payload is valid, and then allocates nothing (unless the schema is a
// Fallback). An unknown action gives a Failure with Code NotImplemented; a payload that is not
// exactly one JSON object (not JSON, not an object, or followed by anything but whitespace) gives
// FormationViolation. It is Scan plus that check of what follows the value.
func (s *Set) Check(action string, response bool, payload []byte) *Failure {
	a, ok := s.actions[action]
	if !ok {
		return s.notImplemented(action)
	}
	return s.check(a.schema(response), payload)
}

func (s *Set) check(sch *messageSchema, payload []byte) *Failure {
	end, f := s.scan(sch, payload)
	if end < 0 || skipWS(payload, end) != len(payload) {
		return s.formation("payload is not a JSON object")
	}
	return f
}

// Scan validates the JSON value that starts data (after optional whitespace) as the payload of a
// CALL (response false) or CALLRESULT (response true) of action, in one pass over its bytes, and
// returns the offset in data just past that value: the OCPP frame parser calls it on the rest of
// a CALL frame, `{…}]`, and reads what follows the payload itself.
//
// When the bytes from data[0] are not one syntactically valid JSON value, end is negative and f
// nil: the frame is malformed, which the caller reports. Otherwise f is nil for a valid payload
// (and nothing is allocated), FormationViolation for a value that is not an object, NotImplemented
// for an unknown action (whose payload is still scanned, to find its end), or the schema
// violations in the order and with the codes Check gives.
func (s *Set) Scan(action string, response bool, data []byte) (end int, f *Failure) {
	a, ok := s.actions[action]
	if !ok {
		if end = skipValue(data, skipWS(data, 0), 0); end < 0 {
			return -1, nil
		}
		return end, s.notImplemented(action)
	}
	return s.scan(a.schema(response), data)
}

func (s *Set) scan(sch *messageSchema, data []byte) (end int, f *Failure) {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' || sch.root == nil {
		if end = skipValue(data, i, 0); end < 0 {
			return -1, nil
		}
		if data[i] != '{' {
			return end, s.formation("payload is not a JSON object")
		}
		return end, s.checkReference(sch, data[i:end])
	}
	w := walker{data: data}
	if end = w.value(i, sch.root, 0); end < 0 {
		return -1, nil
	}
	switch {
	case w.dup:
		return end, s.checkReference(sch, data[i:end])
	case len(w.found) == 0:
		return end, nil
	}
	return end, w.failure(s.codes)
}

func (s *Set) notImplemented(action string) *Failure {
	return &Failure{Code: s.codes.notImplemented, Violations: []Violation{{
		Rule: "action", Message: fmt.Sprintf("action %q is not defined in %s", action, s.protocol),
	}}}
}

// checkReference validates payload with gojsonschema, the reference engine: what Check did before
// the compiled validator, and what it still does for a Fallback schema and for an object that
// repeats a property. It keeps the contract of Check for a known action.
func (s *Set) checkReference(sch *messageSchema, payload []byte) *Failure {
	f, _ := s.referenceResult(sch, payload)
	return f
}

// referenceResult is checkReference that also says whether gojsonschema panicked. It does so on
// a number big.Rat cannot hold (exponent beyond ±10^6) checked by multipleOf, minimum or maximum;
// that is a FormationViolation rather than a crash of the broker.
func (s *Set) referenceResult(sch *messageSchema, payload []byte) (f *Failure, panicked bool) {
	if !isJSONObject(payload) {
		return s.formation("payload is not a JSON object"), false
	}
	defer func() {
		if r := recover(); r != nil {
			f, panicked = s.formation(fmt.Sprintf("payload could not be validated: %v", r)), true
		}
	}()
	res, err := sch.ref.Validate(gojsonschema.NewBytesLoader(payload))
	if err != nil { // not reachable for valid JSON, kept so a decoder change cannot panic us
		return s.formation("payload is not valid JSON"), false
	}
	if res.Valid() {
		return nil, false
	}
	return s.failure(res.Errors()), false
}

func (s *Set) formation(msg string) *Failure {
	return &Failure{Code: s.codes.formation, Violations: []Violation{{Rule: "json", Message: msg}}}
}

// isJSONObject reports whether payload is exactly one valid JSON object (gojsonschema's decoder
// would silently ignore trailing data after the first value).
func isJSONObject(payload []byte) bool {
	for _, c := range payload {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return json.Valid(payload)
		}
		return false
	}
	return false
}

// Failure is why a payload failed its schema: the OCPP-J error code to answer with and every
// violation found, ordered so that Violations[0] is the one Code comes from.
type Failure struct {
	// Code is the CALLERROR code: the code of the first violation in the order missing required,
	// wrong type, enum/length/range/format, unexpected property (docs/topics.md, "Schema violations").
	Code string
	// Violations is every problem found, in that order; the gateway sends them as ErrorDetails.
	Violations []Violation
}

// Error returns the violations as "field: rule" joined by "; " (e.g. "chargePointModel: required"),
// short enough for an ErrorDescription and a log line.
func (f *Failure) Error() string {
	var b strings.Builder
	for i, v := range f.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		switch {
		case v.Field == "":
			b.WriteString(v.Message)
		default:
			b.WriteString(v.Field)
			b.WriteString(": ")
			b.WriteString(v.Rule)
		}
	}
	if b.Len() == 0 {
		return f.Code
	}
	return b.String()
}

// Violation is one schema violation, shaped for CALLERROR ErrorDetails
// (`{"violations":[{"field":…,"rule":…,"message":…}]}`).
type Violation struct {
	// Field is the dotted path of the field ("meterValue.0.sampledValue.1.value"); empty for the
	// payload itself.
	Field string `json:"field"`
	// Rule is the JSON-schema keyword that failed: required, type, enum, maxLength, format,
	// multipleOf, minimum, additionalProperties, …
	Rule string `json:"rule"`
	// Message is human text from the validator.
	Message string `json:"message"`
}

// class orders violations (and so picks the code): lower comes first.
type class uint8

const (
	classRequired class = iota
	classType
	classProperty
	classFormation
)

func (c codes) of(k class) string {
	switch k {
	case classRequired:
		return c.occurrence
	case classType:
		return c.typ
	case classProperty:
		return c.property
	}
	return c.formation
}

// failure turns gojsonschema's errors into a Failure, or nil when every error is a multipleOf
// miss within tolerance.
func (s *Set) failure(errs []gojsonschema.ResultError) *Failure {
	type ranked struct {
		v Violation
		c class
	}
	rs := make([]ranked, 0, len(errs))
	for _, e := range errs {
		rule, c := ruleOf(e.Type())
		if rule == "multipleOf" && multipleWithinTolerance(e) {
			continue
		}
		field := e.Field()
		if field == gojsonschema.STRING_ROOT_SCHEMA_PROPERTY {
			field = ""
		}
		if rule == "required" || rule == "additionalProperties" {
			if p, ok := e.Details()["property"].(string); ok {
				field = joinField(field, p)
			}
		}
		rs = append(rs, ranked{Violation{Field: field, Rule: rule, Message: e.Description()}, c})
	}
	if len(rs) == 0 {
		return nil
	}
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].c != rs[j].c {
			return rs[i].c < rs[j].c
		}
		// gojsonschema reports unexpected properties in map order: sort those for stable output.
		return rs[i].c == classFormation && rs[i].v.Field < rs[j].v.Field
	})
	f := &Failure{Code: s.codes.of(rs[0].c), Violations: make([]Violation, len(rs))}
	for i, r := range rs {
		f.Violations[i] = r.v
	}
	return f
}

func joinField(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// ruleOf maps a gojsonschema error type to the schema keyword and its class.
func ruleOf(t string) (string, class) {
	switch t {
	case "required":
		return "required", classRequired
	case "invalid_type":
		return "type", classType
	case "enum":
		return "enum", classProperty
	case "const":
		return "const", classProperty
	case "string_gte":
		return "minLength", classProperty
	case "string_lte":
		return "maxLength", classProperty
	case "pattern":
		return "pattern", classProperty
	case "format":
		return "format", classProperty
	case "multiple_of":
		return "multipleOf", classProperty
	case "number_gte":
		return "minimum", classProperty
	case "number_gt":
		return "exclusiveMinimum", classProperty
	case "number_lte":
		return "maximum", classProperty
	case "number_lt":
		return "exclusiveMaximum", classProperty
	case "array_min_items":
		return "minItems", classProperty
	case "array_max_items":
		return "maxItems", classProperty
	case "unique":
		return "uniqueItems", classProperty
	case "array_min_properties":
		return "minProperties", classProperty
	case "array_max_properties":
		return "maxProperties", classProperty
	case "additional_property_not_allowed":
		return "additionalProperties", classFormation
	case "array_no_additional_items":
		return "additionalItems", classFormation
	}
	return t, classFormation // anyOf, oneOf, not, dependencies …: structure, not one field's value
}

func multipleWithinTolerance(e gojsonschema.ResultError) bool {
	n, ok := e.Value().(json.Number)
	if !ok {
		return false
	}
	m, ok := e.Details()["multiple"].(*big.Float)
	if !ok {
		return false
	}
	mf, _ := m.Float64()
	return withinTolerance(string(n), mf)
}
