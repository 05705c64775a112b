package schemas

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file is the compiled validator proper: a walk over the payload bytes that scans each value
// once and applies the keywords of its compiled node as it goes. The valid path allocates nothing:
// the path to the current value is a stack of steps inside the walker (itself on the Go stack),
// strings are decoded only when a keyword needs their value (into stack buffers), numbers are
// compared as decimal digits.
// Violations are recorded with where they are in the schema tree and sorted at the end into the
// order gojsonschema reports them in (see finding.less).

// step is one step of the path from the payload root to the value being checked.
type step struct {
	key     []byte   // object member: its name as scanned
	keyFl   strFlags // what scanString saw in key
	pos     int      // object member: its position in the parent's properties; array item: index
	inArray bool
}

// name is the path segment of the step as gojsonschema writes it: the decoded member name or
// the item index.
func (st *step) name() string {
	if st.inArray {
		return strconv.Itoa(st.pos)
	}
	return string(decodeString(nil, st.key, st.keyFl))
}

// finding is a violation with what orders it.
type finding struct {
	v       Violation
	c       class
	tree    []uint64 // per path step: position<<1 | 1 if the step is into an array
	atArray bool     // the violation is about an array itself (minItems, maxItems)
	rank    int      // order among the violations of one value
}

// less orders findings as failure() orders gojsonschema's errors: by class; unexpected
// properties by field; then in gojsonschema's walk order, with each object's properties in
// schema order (gojsonschema's own order there is that of a Go map, so random): an object's own
// violations before those of its members, an array's items before the array's own, and within
// one value by keyword (rank).
func (a *finding) less(b *finding) bool {
	if a.c != b.c {
		return a.c < b.c
	}
	if a.c == classFormation && a.v.Field != b.v.Field {
		return a.v.Field < b.v.Field
	}
	for i := 0; i < len(a.tree) && i < len(b.tree); i++ {
		if a.tree[i] != b.tree[i] {
			return a.tree[i] < b.tree[i]
		}
	}
	switch {
	case len(a.tree) < len(b.tree): // a is about an ancestor of b's value
		return !a.atArray
	case len(a.tree) > len(b.tree):
		return b.atArray
	}
	return a.rank < b.rank
}

// walker checks one payload against a compiled schema while scanning it.
type walker struct {
	data  []byte
	found []finding
	// dup is set when an object names a schema property twice. gojsonschema decodes objects
	// into maps, so it sees only the last value; such a payload is handed to it whole.
	dup bool
	// The path to the current value: depth steps, the first ones in fixed, which lives with the
	// walker on the Go stack, the others in more. (Frames linked by pointers from one recursive
	// call to the next would escape to the heap.)
	depth int
	fixed [16]step
	more  []step
}

func (w *walker) push(st step) {
	if w.depth < len(w.fixed) {
		w.fixed[w.depth] = st
	} else {
		w.more = append(w.more, st)
	}
	w.depth++
}

func (w *walker) pop() {
	if w.depth--; w.depth >= len(w.fixed) {
		w.more = w.more[:len(w.more)-1]
	}
}

func (w *walker) step(k int) *step {
	if k < len(w.fixed) {
		return &w.fixed[k]
	}
	return &w.more[k-len(w.fixed)]
}

// context is the path of the current value as gojsonschema's error Field() gives it: "(root)"
// for the payload itself, else the segments joined with dots.
func (w *walker) context() string {
	if w.depth == 0 {
		return "(root)"
	}
	parts := make([]string, w.depth)
	for k := range parts {
		parts[k] = w.step(k).name()
	}
	return strings.Join(parts, ".")
}

// field is Violation.Field for the current value: its context, with the root as "" (as
// failure() maps it).
func (w *walker) field() string {
	if c := w.context(); c != "(root)" {
		return c
	}
	return ""
}

// add records a violation about the current value.
func (w *walker) add(c class, rank int, fld, rule, msg string) {
	tree := make([]uint64, w.depth)
	for k := range tree {
		st := w.step(k)
		tree[k] = uint64(st.pos) << 1
		if st.inArray {
			tree[k] |= 1
		}
	}
	w.found = append(w.found, finding{v: Violation{Field: fld, Rule: rule, Message: msg}, c: c, tree: tree, rank: rank})
}

func (w *walker) wrongType(n *node, given string) {
	w.add(classType, 0, w.field(), "type", "Invalid type. Expected: "+n.typeName+", given: "+given)
}

// value checks the value at data[i] (whitespace skipped) against n, at nesting depth depth,
// and returns the offset past it, or -1 when the bytes are not JSON.
func (w *walker) value(i int, n *node, depth int) int {
	if n != nil && n.ref != nil {
		n = n.ref
	}
	if n == nil || n.trivial {
		return skipValue(w.data, i, depth)
	}
	data := w.data
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '{':
		if !n.types.allows(tObject) {
			w.wrongType(n, "object")
			return skipValue(data, i, depth)
		}
		return w.object(i, n, depth+1)
	case '[':
		if !n.types.allows(tArray) {
			w.wrongType(n, "array")
			return skipValue(data, i, depth)
		}
		return w.array(i, n, depth+1)
	case '"':
		end, fl := scanString(data, i)
		if end < 0 {
			return -1
		}
		if !n.types.allows(tString) {
			w.wrongType(n, "string")
		} else if n.strChecks {
			w.checkString(n, data[i+1:end-1], fl)
		}
		return end
	case 't', 'f', 'n':
		lit, t, given := "null", tNull, "null"
		switch data[i] {
		case 't':
			lit, t, given = "true", tBoolean, "boolean"
		case 'f':
			lit, t, given = "false", tBoolean, "boolean"
		}
		end := scanLiteral(data, i, lit)
		if end >= 0 && !n.types.allows(t) {
			w.wrongType(n, given)
		}
		return end
	}
	end, x := scanNumber(data, i)
	if end < 0 {
		return -1
	}
	if n.types != 0 && n.types&tNumber == 0 {
		if !x.ratInteger() {
			w.wrongType(n, "number")
			return end
		}
		if n.types&tInteger == 0 {
			w.wrongType(n, "integer")
			return end
		}
	}
	if n.numChecks {
		w.checkNumber(n, data[i:end], &x)
	}
	return end
}

// bitset records which names of an object have been seen.
type bitset struct {
	small uint64
	large []uint64 // objects with more than 64 names
}

func (b *bitset) testAndSet(i int) bool {
	if b.large == nil {
		m := uint64(1) << i
		old := b.small&m != 0
		b.small |= m
		return old
	}
	m := uint64(1) << (i % 64)
	old := b.large[i/64]&m != 0
	b.large[i/64] |= m
	return old
}

func (b *bitset) has(i int) bool {
	if b.large == nil {
		return b.small&(1<<i) != 0
	}
	return b.large[i/64]&(1<<(i%64)) != 0
}

// object checks the object at data[i] == '{' against n: members against "properties" (others
// against "additionalProperties"), then "required" once all members are known.
func (w *walker) object(i int, n *node, depth int) int {
	if depth > maxDepth {
		return -1
	}
	data := w.data
	var seen bitset
	if len(n.names) > 64 {
		seen.large = make([]uint64, (len(n.names)+63)/64)
	}
	hint := 0
	if i = skipWS(data, i+1); i < len(data) && data[i] == '}' {
		i++
	} else {
		for {
			if i >= len(data) || data[i] != '"' {
				return -1
			}
			end, fl := scanString(data, i)
			if end < 0 {
				return -1
			}
			raw := data[i+1 : end-1]
			if i = skipWS(data, end); i >= len(data) || data[i] != ':' {
				return -1
			}
			i = skipWS(data, i+1)
			st := step{key: raw, keyFl: fl}
			var child *node
			j := -1
			if len(n.names) > 0 {
				j = n.lookup(raw, fl, hint)
			}
			if j >= 0 {
				if seen.testAndSet(j) {
					w.dup = true
				}
				hint = j + 1
			}
			switch {
			case j >= 0 && j < len(n.props):
				child, st.pos = n.props[j], j
			case n.closed:
				name := string(decodeString(nil, raw, fl))
				w.add(classFormation, 0, joinField(w.field(), name), "additionalProperties",
					"Additional property "+name+" is not allowed")
			}
			w.push(st)
			i = w.value(i, child, depth)
			w.pop()
			if i < 0 {
				return -1
			}
			if i = skipWS(data, i); i >= len(data) {
				return -1
			}
			if data[i] == '}' {
				i++
				break
			}
			if data[i] != ',' {
				return -1
			}
			i = skipWS(data, i+1)
		}
	}
	for r, j := range n.required {
		if !seen.has(j) {
			w.add(classRequired, r, joinField(w.field(), n.names[j]), "required", n.names[j]+" is required")
		}
	}
	return i
}

// array checks the array at data[i] == '[' against n: every item against "items", then the
// item count.
func (w *walker) array(i int, n *node, depth int) int {
	if depth > maxDepth {
		return -1
	}
	data := w.data
	count := 0
	if i = skipWS(data, i+1); i < len(data) && data[i] == ']' {
		i++
	} else {
		for {
			w.push(step{pos: count, inArray: true})
			i = w.value(i, n.items, depth)
			w.pop()
			if i < 0 {
				return -1
			}
			count++
			if i = skipWS(data, i); i >= len(data) {
				return -1
			}
			if data[i] == ']' {
				i++
				break
			}
			if data[i] != ',' {
				return -1
			}
			i = skipWS(data, i+1)
		}
	}
	if n.minItems >= 0 && count < n.minItems {
		w.add(classProperty, 0, w.field(), "minItems", fmt.Sprintf("Array must have at least %d items", n.minItems))
		w.found[len(w.found)-1].atArray = true
	}
	if n.maxItems >= 0 && count > n.maxItems {
		w.add(classProperty, 1, w.field(), "maxItems", fmt.Sprintf("Array must have at most %d items", n.maxItems))
		w.found[len(w.found)-1].atArray = true
	}
	return i
}

// checkString applies enum, minLength, maxLength and format, in gojsonschema's order, to the
// string whose scanned contents are raw.
func (w *walker) checkString(n *node, raw []byte, fl strFlags) {
	// A string has at most as many characters as raw has bytes: most maxLength checks need
	// neither decoding nor counting.
	if n.enum == nil && n.format == fmtNone && n.minLength <= 0 && len(raw) <= n.maxLength {
		return
	}
	var buf [256]byte
	s := decodeString(buf[:], raw, fl)
	if n.enum != nil && !n.inEnum(s) {
		w.add(classProperty, 0, w.field(), "enum", w.context()+" must be one of the following: "+n.enumAllowed)
	}
	if n.minLength > 0 || n.maxLength >= 0 {
		c := utf8.RuneCount(s) // gojsonschema counts runes of the decoded string
		if n.minLength > 0 && c < n.minLength {
			w.add(classProperty, 1, w.field(), "minLength", fmt.Sprintf("String length must be greater than or equal to %d", n.minLength))
		}
		if n.maxLength >= 0 && c > n.maxLength {
			w.add(classProperty, 2, w.field(), "maxLength", fmt.Sprintf("String length must be less than or equal to %d", n.maxLength))
		}
	}
	if n.format != fmtNone {
		// Not s: the uri checker passes its argument to netip.ParseAddr, whose error keeps it,
		// which would move buf to the heap for every string. An escaped date-time or URI is
		// decoded again, on the heap; the payload's own bytes can be viewed as they are.
		fs := raw
		if fl.needsDecode(raw) {
			fs = appendDecoded(nil, raw)
		}
		if !n.format.check(view(fs)) {
			w.add(classProperty, 3, w.field(), "format", "Does not match format '"+n.format.name()+"'")
		}
	}
}

// checkNumber applies multipleOf (exact, then with ajv's tolerance), maximum and minimum, in
// gojsonschema's order, to the number x whose text is text.
func (w *walker) checkNumber(n *node, text []byte, x *num) {
	if d := n.multipleOf; d != nil && !d.isMultiple(x) && !withinTolerance(view(text), d.float) {
		w.add(classProperty, 0, w.field(), "multipleOf", "Must be a multiple of "+d.text)
	}
	if d := n.maximum; d != nil && cmpNum(x, d) > 0 {
		w.add(classProperty, 1, w.field(), "maximum", "Must be less than or equal to "+d.text)
	}
	if d := n.minimum; d != nil && cmpNum(x, d) < 0 {
		w.add(classProperty, 2, w.field(), "minimum", "Must be greater than or equal to "+d.text)
	}
}

// failure sorts the findings and turns them into a Failure. A property repeated in one object
// (which gojsonschema, decoding into a map, sees once) is reported once.
func (w *walker) failure(c codes) *Failure {
	fs := w.found
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].less(&fs[j]) })
	out := make([]Violation, 0, len(fs))
	for i := range fs {
		if i > 0 && fs[i].v.Rule == "additionalProperties" && fs[i-1].v == fs[i].v && equalTree(fs[i-1].tree, fs[i].tree) {
			continue
		}
		out = append(out, fs[i].v)
	}
	return &Failure{Code: c.of(fs[0].c), Violations: out}
}

func equalTree(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
