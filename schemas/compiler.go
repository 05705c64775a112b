package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// This file compiles a JSON schema document into a graph of nodes that checks.go walks while it
// scans a payload. Every (sub)schema object becomes one *node; a "$ref" becomes an edge to the
// node of its target, so "definitions" shared by many properties are compiled once and recursive
// definitions are cycles in the graph. Only local refs ("#", "#/definitions/X", any JSON pointer
// into the same document) are resolved, at compile time; the OCPP 2.0.1 and 2.1 sets use nothing
// else. A document using a keyword the compiler does not implement is not compiled at all: Load
// keeps checking it with gojsonschema and reports it through Set.Fallbacks.

// typeSet is the set of JSON types a schema's "type" allows; 0 means the schema has no "type".
type typeSet uint8

const (
	tNull typeSet = 1 << iota
	tBoolean
	tObject
	tArray
	tNumber
	tInteger
	tString
)

var typeBits = map[string]typeSet{
	"null": tNull, "boolean": tBoolean, "object": tObject, "array": tArray,
	"number": tNumber, "integer": tInteger, "string": tString,
}

// allows reports whether a value of the non-number type t passes "type".
func (ts typeSet) allows(t typeSet) bool { return ts == 0 || ts&t != 0 }

// format is a compiled "format" keyword.
type format uint8

const (
	fmtNone format = iota
	fmtDateTime
	fmtURI
)

func (f format) name() string {
	switch f {
	case fmtDateTime:
		return "date-time"
	case fmtURI:
		return "uri"
	}
	return ""
}

// check applies the format to a decoded string (the same checkers gojsonschema is given).
func (f format) check(s string) bool {
	switch f {
	case fmtDateTime:
		return isDateTime(s)
	case fmtURI:
		return isURI(s)
	}
	return true
}

// node is one compiled (sub)schema. Limits are -1 when the schema does not set them.
type node struct {
	// ref is the target of a "$ref": the value is checked against it and nothing else here
	// applies (gojsonschema ignores the siblings of $ref, as draft-04 to draft-07 say).
	ref *node

	types    typeSet
	typeName string // "string", "[string,null]": "type" as gojsonschema's messages print it

	// Objects. names lists the "properties" (in schema order: the order in which violations
	// are reported) and then the names only "required" mentions; a member's position in names
	// indexes the bitset of members seen.
	props    []*node
	names    []string
	index    map[string]int // names → position, for objects with many names
	required []int          // "required", in its order, as positions in names
	closed   bool           // "additionalProperties": false

	// Arrays.
	items              *node
	minItems, maxItems int

	// Strings.
	enum                 []string
	enumIndex            map[string]struct{} // for long enums
	enumAllowed          string              // the enum as gojsonschema's message lists it
	minLength, maxLength int
	format               format

	// Numbers.
	multipleOf, minimum, maximum *bound

	strChecks, numChecks bool // some string / number keyword is set
	trivial              bool // no keyword at all: values are only scanned
}

// lookup returns the position in n.names of the member name raw (scanned, not decoded), or -1.
// hint is where the name is most likely: members usually come in schema order.
func (n *node) lookup(raw []byte, fl strFlags, hint int) int {
	var buf [64]byte
	key := decodeString(buf[:], raw, fl)
	if hint < len(n.names) && n.names[hint] == string(key) {
		return hint
	}
	if n.index != nil {
		if j, ok := n.index[string(key)]; ok {
			return j
		}
		return -1
	}
	for j, name := range n.names {
		if name == string(key) {
			return j
		}
	}
	return -1
}

func (n *node) inEnum(s []byte) bool {
	if n.enumIndex != nil {
		_, ok := n.enumIndex[string(s)]
		return ok
	}
	for _, e := range n.enum {
		if e == string(s) {
			return true
		}
	}
	return false
}

// indexFrom is the size from which objects and enums get a map instead of a linear search.
const indexFrom = 12

// unsupportedKeywords are the keywords gojsonschema implements and the compiler does not: a
// schema using one of them is checked by gojsonschema. Keywords neither knows (javaType,
// $comment, default …) are ignored by both.
var unsupportedKeywords = map[string]bool{
	"patternProperties": true, "propertyNames": true, "dependencies": true,
	"minProperties": true, "maxProperties": true,
	"exclusiveMinimum": true, "exclusiveMaximum": true,
	"pattern": true, "uniqueItems": true, "contains": true, "const": true,
	"allOf": true, "anyOf": true, "oneOf": true, "not": true, "if": true, "then": true, "else": true,
}

// unsupported is why a document cannot be compiled: a keyword, where, and in what use.
type unsupported struct {
	keyword, pointer, reason string
}

// errRefCycle is returned for $refs that only lead to each other: gojsonschema would recurse
// forever on the first payload that reaches them.
var errRefCycle = errors.New("$ref cycle without a schema")

// compileSchema compiles one schema document. When it uses what the compiler does not
// implement, root is nil and why lists each such keyword once (the first place it occurs).
func compileSchema(data []byte) (root *node, why []unsupported, err error) {
	doc, err := parseDoc(data)
	if err != nil {
		return nil, nil, err
	}
	c := &compiler{doc: doc, memo: make(map[*jnode]*node), seen: make(map[string]bool)}
	c.checkIDs(doc, "#", true)
	root = c.compile(doc, "#")
	for _, n := range c.memo {
		if n.ref == nil {
			continue
		}
		t, steps := n.ref, 0
		for t.ref != nil {
			if t, steps = t.ref, steps+1; steps > len(c.memo) {
				return nil, nil, errRefCycle
			}
		}
		n.ref = t // collapse chains: checking follows at most one edge
	}
	if len(c.why) > 0 {
		return nil, c.why, nil
	}
	return root, nil, nil
}

type compiler struct {
	doc  *jnode
	memo map[*jnode]*node
	why  []unsupported
	seen map[string]bool // keywords already in why
}

func (c *compiler) unsupported(keyword, pointer, reason string) {
	if !c.seen[keyword] {
		c.seen[keyword] = true
		c.why = append(c.why, unsupported{keyword, pointer, reason})
	}
}

// checkIDs looks for an "id" or "$id" below the root, the way gojsonschema's reference pool
// does (every value but enum and const; the values, not the names, of properties): such an id
// changes what a $ref resolves to, which the compiler does not follow.
func (c *compiler) checkIDs(j *jnode, ptr string, root bool) {
	switch j.kind {
	case 'o':
		if !root {
			for _, k := range []string{"id", "$id"} {
				if v, ok := j.get(k); ok && v.kind == 's' {
					c.unsupported(k, ptr, "an id below the root changes what $refs resolve to")
				}
			}
		}
		for i, k := range j.keys {
			switch k {
			case "enum", "const":
			case "properties", "dependencies", "patternProperties":
				if v := j.vals[i]; v.kind == 'o' {
					for m, name := range v.keys {
						c.checkIDs(v.vals[m], ptr+"/"+k+"/"+escapePointer(name), false)
					}
				}
			default:
				c.checkIDs(j.vals[i], ptr+"/"+escapePointer(k), false)
			}
		}
	case 'a':
		for i, v := range j.items {
			c.checkIDs(v, ptr+"/"+strconv.Itoa(i), false)
		}
	}
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// compile returns the node of the schema j found at the JSON pointer ptr.
func (c *compiler) compile(j *jnode, ptr string) *node {
	if n, ok := c.memo[j]; ok {
		return n
	}
	n := &node{minItems: -1, maxItems: -1, minLength: -1, maxLength: -1}
	c.memo[j] = n // before the children: a recursive definition finds itself here
	if j.kind != 'o' {
		c.unsupported("(boolean schema)", ptr, "a schema that is true or false")
		return n
	}
	if ref, ok := j.get("$ref"); ok {
		target, why := c.resolve(ref)
		if target == nil {
			c.unsupported("$ref", ptr, why)
			return n
		}
		n.ref = c.compile(target, ref.s)
		return n
	}
	var enum, required *jnode
	for i, k := range j.keys {
		v, at := j.vals[i], ptr+"/"+escapePointer(k)
		switch k {
		case "type":
			c.types(n, v, at)
		case "properties":
			for m, name := range v.keys {
				n.names = append(n.names, name)
				n.props = append(n.props, c.compile(v.vals[m], at+"/"+escapePointer(name)))
			}
		case "required":
			required = v
		case "additionalProperties":
			if v.kind != 'b' {
				c.unsupported(k, at, "additionalProperties as a schema")
				continue
			}
			n.closed = !v.b
		case "items":
			if v.kind != 'o' {
				c.unsupported(k, at, "items as an array of schemas or a boolean")
				continue
			}
			n.items = c.compile(v, at)
		case "enum":
			enum = v
		case "minLength", "maxLength", "minItems", "maxItems":
			x, err := strconv.Atoi(v.s)
			if err != nil || x < 0 {
				c.unsupported(k, at, "a limit that is not a non-negative integer")
				continue
			}
			switch k {
			case "minLength":
				n.minLength = x
			case "maxLength":
				n.maxLength = x
			case "minItems":
				n.minItems = x
			default:
				n.maxItems = x
			}
		case "minimum", "maximum", "multipleOf":
			d, err := parseBound(v.s)
			if err != nil {
				c.unsupported(k, at, err.Error())
				continue
			}
			switch k {
			case "minimum":
				n.minimum = d
			case "maximum":
				n.maximum = d
			default:
				if !d.setMultiple() {
					c.unsupported(k, at, "multipleOf with more than 19 significant digits")
					continue
				}
				n.multipleOf = d
			}
		case "format":
			switch v.s {
			case "date-time":
				n.format = fmtDateTime
			case "uri":
				n.format = fmtURI
			default:
				c.unsupported(k, at, fmt.Sprintf("format %q", v.s))
			}
		case "additionalItems":
			// Applies only when "items" is an array of schemas, which is not compiled.
		default:
			if unsupportedKeywords[k] {
				c.unsupported(k, at, "")
			}
		}
	}
	// Names only "required" mentions go after the properties (whose positions are their order);
	// they are still "additional" to gojsonschema, which looks only at "properties".
	if required != nil {
		for _, r := range required.items {
			n.required = append(n.required, n.name(r.s))
		}
	}
	if enum != nil {
		c.enum(n, enum, ptr+"/enum")
	}
	if len(n.names) >= indexFrom {
		n.index = make(map[string]int, len(n.names))
		for i := len(n.names) - 1; i >= 0; i-- {
			n.index[n.names[i]] = i
		}
	}
	n.strChecks = n.enum != nil || n.minLength > 0 || n.maxLength >= 0 || n.format != fmtNone
	n.numChecks = n.multipleOf != nil || n.minimum != nil || n.maximum != nil
	n.trivial = n.types == 0 && len(n.names) == 0 && !n.closed && n.items == nil &&
		n.minItems < 0 && n.maxItems < 0 && !n.strChecks && !n.numChecks
	return n
}

// name returns the position of a required name in n.names, adding it when "properties" does not
// have it.
func (n *node) name(s string) int {
	for i, name := range n.names {
		if name == s {
			return i
		}
	}
	n.names = append(n.names, s)
	return len(n.names) - 1
}

func (c *compiler) types(n *node, v *jnode, at string) {
	var names []string
	switch v.kind {
	case 's':
		names = []string{v.s}
	case 'a':
		for _, t := range v.items {
			names = append(names, t.s)
		}
	}
	for _, t := range names {
		n.types |= typeBits[t]
	}
	switch len(names) {
	case 0:
	case 1:
		n.typeName = names[0]
	default:
		n.typeName = "[" + strings.Join(names, ",") + "]"
	}
}

// enum compiles an enum of strings on a schema whose only type is string, so that no other
// JSON value reaches it; any other enum is left to gojsonschema (which compares values as
// re-marshalled JSON text, numbers by their float64 value).
func (c *compiler) enum(n *node, v *jnode, at string) {
	if n.types != tString {
		c.unsupported("enum", at, `enum on a schema whose "type" is not just "string"`)
		return
	}
	allowed := make([]string, 0, len(v.items))
	for _, e := range v.items {
		if e.kind != 's' {
			c.unsupported("enum", at, "enum with a value that is not a string")
			return
		}
		n.enum = append(n.enum, e.s)
		b, _ := json.Marshal(e.s)
		allowed = append(allowed, string(b))
	}
	n.enumAllowed = strings.Join(allowed, ", ")
	if len(n.enum) >= indexFrom {
		n.enumIndex = make(map[string]struct{}, len(n.enum))
		for _, e := range n.enum {
			n.enumIndex[e] = struct{}{}
		}
	}
}

// resolve finds the target of a local $ref ("#", "#/definitions/X", any JSON pointer [RFC
// 6901] into this document), or returns nil and why not.
func (c *compiler) resolve(ref *jnode) (*jnode, string) {
	if ref.kind != 's' {
		return nil, "$ref is not a string"
	}
	frag, ok := strings.CutPrefix(ref.s, "#")
	switch {
	case !ok:
		return nil, fmt.Sprintf("$ref %q to another document", ref.s)
	case strings.Contains(frag, "%"):
		return nil, fmt.Sprintf("$ref %q with percent-encoding", ref.s)
	case frag == "":
		return c.doc, ""
	case frag[0] != '/':
		return nil, fmt.Sprintf("$ref %q to a named anchor", ref.s)
	}
	cur := c.doc
	for _, tok := range strings.Split(frag[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch cur.kind {
		case 'o':
			v, ok := cur.get(tok)
			if !ok {
				return nil, fmt.Sprintf("$ref %q does not resolve", ref.s)
			}
			cur = v
		case 'a':
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(cur.items) {
				return nil, fmt.Sprintf("$ref %q does not resolve", ref.s)
			}
			cur = cur.items[i]
		default:
			return nil, fmt.Sprintf("$ref %q does not resolve", ref.s)
		}
	}
	return cur, ""
}

// jnode is a schema document as parsed for compiling: like encoding/json's any, but objects
// keep their member order, which is the order violations are reported in.
type jnode struct {
	kind  byte // 'o' object, 'a' array, 's' string, 'n' number (s holds its text), 'b' bool, 'z' null
	s     string
	b     bool
	keys  []string
	vals  []*jnode
	items []*jnode
}

func (j *jnode) get(key string) (*jnode, bool) {
	for i, k := range j.keys {
		if k == key {
			return j.vals[i], true
		}
	}
	return nil, false
}

func parseDoc(data []byte) (*jnode, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	j, err := parseValue(dec)
	if err != nil {
		return nil, fmt.Errorf("schemas: parse schema: %w", err)
	}
	return j, nil
}

func parseValue(dec *json.Decoder) (*jnode, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			j := &jnode{kind: 'o'}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				if old, dup := j.get(k); dup { // encoding/json: the last value wins
					*old = *v
					continue
				}
				j.keys, j.vals = append(j.keys, k), append(j.vals, v)
			}
			_, err := dec.Token()
			return j, err
		case '[':
			j := &jnode{kind: 'a'}
			for dec.More() {
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				j.items = append(j.items, v)
			}
			_, err := dec.Token()
			return j, err
		}
	case string:
		return &jnode{kind: 's', s: t}, nil
	case json.Number:
		return &jnode{kind: 'n', s: string(t)}, nil
	case bool:
		return &jnode{kind: 'b', b: t}, nil
	case nil:
		return &jnode{kind: 'z'}, nil
	}
	return nil, io.ErrUnexpectedEOF
}
