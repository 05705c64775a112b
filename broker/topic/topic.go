// Package topic renders and recognises the gateway's MQTT topics.
//
// A template (config keys ocpp.upstream.topic, ocpp.dnstream.topic, ...) is relative to a
// mountpoint (ocpp.mountpoint, default "ocpp/"), which is prefixed to it as in EMQX: the
// mountpoint "ocpp/" and the template "cp/${cid}" give "ocpp/cp/CP001". Templates are parsed
// once at startup, so that a typo is a config error rather than a literal "${cdi}" in every topic,
// and rendered on every frame with a single allocation.
//
// Placeholders: ${cid} and ${clientid} (the charge point id, same value), ${action}, ${id} (the
// OCPP UniqueId) and ${type} (MessageTypeId 2, 3 or 4).
//
// This package is a leaf: it imports no project package.
package topic

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultMountpoint is the prefix of every gateway topic unless configured otherwise; it is
// EMQX's default, so existing integrations keep their topics.
const DefaultMountpoint = "ocpp/"

// ErrInvalidTemplate is wrapped by every error Parse and ParseDownstream return, so the config
// layer can tell a bad template from other failures with errors.Is; the message names the
// offending placeholder or character.
var ErrInvalidTemplate = errors.New("topic: invalid template")

// ErrInvalidEscape is wrapped by Unescape's errors: a '%' not followed by two hex digits cannot
// come from Escape, so the input did not come from a rendered topic.
var ErrInvalidEscape = errors.New("topic: invalid escape")

// kind says what a part of a parsed template stands for.
type kind uint8

const (
	literal kind = iota
	cidField
	actionField
	idField
	typeField
)

// placeholders maps the names allowed in "${name}" to what they render.
var placeholders = map[string]kind{
	"cid":      cidField,
	"clientid": cidField,
	"action":   actionField,
	"id":       idField,
	"type":     typeField,
}

// part is a literal run of the template or one placeholder.
type part struct {
	kind kind
	lit  string // for literal parts
}

// Template is a parsed topic template, mountpoint included. The zero Template renders "".
// Templates are immutable values: copy and share them freely between goroutines.
type Template struct {
	src   string // mountpoint + template, as configured
	parts []part
	nlit  int  // total length of the literal parts, to size the rendering in one go
	cid   bool // whether ${cid}/${clientid} occurs
}

// Values are what a template's placeholders are replaced with. CID fills ${cid} and ${clientid},
// ID fills ${id} (the UniqueId), Type fills ${type}.
type Values struct {
	CID, Action, ID string
	Type            int
}

// Parse parses mountpoint+tmpl. It refuses, with an error wrapping ErrInvalidTemplate that
// names the problem: an unknown placeholder or an unterminated "${" (so typos fail at startup); a
// placeholder in the mountpoint; '+', '#' or NUL in the literal text (a rendering would not be a
// valid topic name [MQTT-3.3.2-2] [MQTT-1.5.4-2]); invalid UTF-8; an empty result; and a template
// that starts with '$' or with a placeholder, because a topic beginning with '$' is not matched by
// "#" or "+" subscriptions [MQTT-4.7.2-1] and mochi refuses publishes to "$SYS".
func Parse(mountpoint, tmpl string) (Template, error) {
	src := mountpoint + tmpl
	bad := func(format string, args ...any) (Template, error) {
		return Template{}, fmt.Errorf("%w %q: %s", ErrInvalidTemplate, src, fmt.Sprintf(format, args...))
	}
	if strings.Contains(mountpoint, "${") || (strings.HasSuffix(mountpoint, "$") && strings.HasPrefix(tmpl, "{")) {
		return bad("mountpoint %q: placeholders are not supported in the mountpoint", mountpoint)
	}
	if src == "" {
		return bad("empty topic")
	}
	if !utf8.ValidString(src) {
		return bad("not valid UTF-8")
	}
	if src[0] == '$' {
		if strings.HasPrefix(src, "${") {
			return bad("must start with literal text, not a placeholder: a value starting with '$' would hide the topic from wildcard subscriptions")
		}
		return bad("must not start with '$' (reserved for broker topics; not matched by wildcard subscriptions)")
	}

	t := Template{src: src}
	rest := src
	for rest != "" {
		i := strings.Index(rest, "${")
		if i < 0 {
			i = len(rest)
		}
		if i > 0 {
			lit := rest[:i]
			if j := strings.IndexAny(lit, "+#\x00"); j >= 0 {
				return bad("literal text contains %q, which no topic name may hold", lit[j])
			}
			t.parts = append(t.parts, part{kind: literal, lit: lit})
			t.nlit += len(lit)
			rest = rest[i:]
			continue
		}
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return bad("unterminated placeholder %q", rest)
		}
		name := rest[2:end]
		k, ok := placeholders[name]
		if !ok {
			return bad("unknown placeholder %q (known: ${cid}, ${clientid}, ${action}, ${id}, ${type})", rest[:end+1])
		}
		if k == cidField {
			t.cid = true
		}
		t.parts = append(t.parts, part{kind: k})
		rest = rest[end+1:]
	}
	return t, nil
}

// MustParse is Parse for templates fixed in code (defaults, tests); it panics on error.
func MustParse(mountpoint, tmpl string) Template {
	t, err := Parse(mountpoint, tmpl)
	if err != nil {
		panic(err)
	}
	return t
}

// String returns the template as configured, mountpoint included, for logs and check-config.
func (t Template) String() string { return t.src }

// HasCID reports whether the template holds ${cid} or ${clientid}. A template without it sends
// every charge point to the same topic, which the config layer may want to warn about.
func (t Template) HasCID() bool { return t.cid }

// Render returns the topic for v. ${action} and ${id} are percent-encoded with Escape, so any
// value yields a valid topic name with the template's number of levels and decodes back with
// Unescape. ${cid} is inserted as is, except that '/', '+', '#' and NUL (which the OCPP
// handshake already refuses) are escaped too, so that even a cid that slipped through cannot add
// a level or a wildcard; '%' in a cid stays verbatim so that "ocpp/cs/a%b" is the topic of cid
// "a%b". Render allocates once (none for a template without placeholders). A rendering longer
// than 65,535 bytes is not a valid MQTT topic; keeping values short is the caller's business.
func (t Template) Render(v Values) string {
	if len(t.parts) == 1 && t.parts[0].kind == literal {
		return t.parts[0].lit
	}
	var typeBuf [20]byte
	typ := strconv.AppendInt(typeBuf[:0], int64(v.Type), 10)

	n := t.nlit
	for _, p := range t.parts {
		switch p.kind {
		case cidField:
			n += escapedLen(v.CID, false)
		case actionField:
			n += escapedLen(v.Action, true)
		case idField:
			n += escapedLen(v.ID, true)
		case typeField:
			n += len(typ)
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range t.parts {
		switch p.kind {
		case literal:
			b.WriteString(p.lit)
		case cidField:
			writeEscaped(&b, v.CID, false)
		case actionField:
			writeEscaped(&b, v.Action, true)
		case idField:
			writeEscaped(&b, v.ID, true)
		case typeField:
			b.Write(typ)
		}
	}
	return b.String()
}

// Filter returns an MQTT topic filter that matches every rendering of t: each level holding a
// placeholder becomes "+" ("ocpp/cp/${cid}/Reply" gives "ocpp/cp/+/Reply"). It holds because
// rendered values never contain '/'. A level mixing text and a placeholder ("cp-${cid}") also
// becomes "+", so the filter may match topics t never renders; use it to subscribe or to compare
// templates, not to recognise t's topics (Downstream.Match does that).
func (t Template) Filter() string {
	var b strings.Builder
	b.Grow(len(t.src))
	level := strings.Builder{}
	wild := false
	flush := func() {
		if wild {
			b.WriteByte('+')
		} else {
			b.WriteString(level.String())
		}
		level.Reset()
		wild = false
	}
	for _, p := range t.parts {
		if p.kind != literal {
			wild = true
			continue
		}
		lit := p.lit
		for {
			i := strings.IndexByte(lit, '/')
			if i < 0 {
				level.WriteString(lit)
				break
			}
			level.WriteString(lit[:i])
			flush()
			b.WriteByte('/')
			lit = lit[i+1:]
		}
	}
	flush()
	return b.String()
}

// Overlap reports whether a topic could be rendered by both a and b, comparing their Filters with
// MQTT matching rules: same number of levels, and at every level equal text or a "+" on either
// side. It is conservative — it may report an overlap that cannot happen ("cp-${cid}" against
// "cs-${cid}"), never miss one — which is what a startup check refusing overlapping upstream and
// downstream topics needs: a charge point's own publish must never be routed back down as a
// command.
func Overlap(a, b Template) bool {
	return FiltersOverlap(a.Filter(), b.Filter())
}

// FiltersOverlap reports whether some topic name matches both MQTT filters a and b ('+' and a
// trailing '#' understood; '$' topics are not special here). The broker uses it to refuse a config
// whose upstream and downstream topics intersect, and to compare a template with a filter
// such as a Response Topic rule.
func FiltersOverlap(a, b string) bool {
	for {
		la, resta, moreA := strings.Cut(a, "/")
		lb, restb, moreB := strings.Cut(b, "/")
		if la == "#" || lb == "#" {
			return true
		}
		if la != "+" && lb != "+" && la != lb {
			return false
		}
		if !moreA || !moreB {
			// One side has no more levels: they meet only if the other ends too, or
			// continues with just "#" (which also matches the parent level [MQTT-4.7.1-2]).
			return moreA == moreB || (moreA && resta == "#") || (moreB && restb == "#")
		}
		a, b = resta, restb
	}
}

// Under reports whether topic lies under mountpoint, i.e. is one of the gateway's topics and
// subject to its ACL. The mountpoint is a plain prefix (EMQX concatenates it the same way), so
// an empty mountpoint puts every topic under it.
func Under(mountpoint, topic string) bool {
	return strings.HasPrefix(topic, mountpoint)
}

// Downstream is a template of the shape the broker can recognise on every publish cheaply: the
// cid (${cid} or ${clientid}) is exactly one whole level, and every other level is literal
// ("cs/${cid}", "cmd/${clientid}/in"). Build it with ParseDownstream.
type Downstream struct {
	Template
	prefix, suffix string // the literal text around the cid level, slashes included
}

// ParseDownstream parses a template for the MQTT → charge point direction. Besides Parse's
// rules it requires the Downstream shape, because the cid must be read back from any topic a
// client publishes to, in constant time and without allocating, on the publisher's goroutine;
// ${action}, ${id}, ${type} or a cid sharing its level with text would make that ambiguous.
func ParseDownstream(mountpoint, tmpl string) (Downstream, error) {
	t, err := Parse(mountpoint, tmpl)
	if err != nil {
		return Downstream{}, err
	}
	bad := func(msg string) (Downstream, error) {
		return Downstream{}, fmt.Errorf("%w %q: downstream template %s", ErrInvalidTemplate, t.src, msg)
	}
	at := -1
	for i, p := range t.parts {
		switch p.kind {
		case literal:
		case cidField:
			if at >= 0 {
				return bad("must hold ${cid} exactly once")
			}
			at = i
		default:
			return bad("may hold only ${cid} (or ${clientid}): other values are not known when a command is published")
		}
	}
	if at < 0 {
		return bad("must hold ${cid} (or ${clientid})")
	}
	d := Downstream{Template: t}
	if at > 0 {
		d.prefix = t.parts[at-1].lit
	}
	if at+1 < len(t.parts) {
		d.suffix = t.parts[at+1].lit
	}
	if !strings.HasSuffix(d.prefix, "/") || (d.suffix != "" && d.suffix[0] != '/') {
		return bad("must have ${cid} as a whole level, as in \"cs/${cid}\"")
	}
	return d, nil
}

// MustParseDownstream is ParseDownstream for templates fixed in code; it panics on error.
func MustParseDownstream(mountpoint, tmpl string) Downstream {
	d, err := ParseDownstream(mountpoint, tmpl)
	if err != nil {
		panic(err)
	}
	return d
}

// Match reports whether topic is a rendering of d and returns its cid, verbatim (the cid level is
// not unescaped: '%' in a cid is literal). It refuses an empty cid level, a cid with '+', '#' or
// NUL, and extra or missing levels, since none of those can be a connected charge point. Match
// does not allocate: the route hook calls it on every publish.
func (d Downstream) Match(topic string) (cid string, ok bool) {
	if len(topic) <= len(d.prefix)+len(d.suffix) ||
		!strings.HasPrefix(topic, d.prefix) || !strings.HasSuffix(topic, d.suffix) {
		return "", false
	}
	cid = topic[len(d.prefix) : len(topic)-len(d.suffix)]
	if strings.ContainsAny(cid, "/+#\x00") {
		return "", false
	}
	return cid, true
}

// Escape percent-encodes '/', '+', '#', '%' and NUL in s (as %2F, %2B, %23, %25, %00), so a value
// placed in a topic level can neither split it, act as a wildcard, nor be misread, and Unescape
// gives s back. Other bytes, UTF-8 included, are kept. Escape returns s itself when nothing needs
// escaping.
func Escape(s string) string {
	n := escapedLen(s, true)
	if n == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(n)
	writeEscaped(&b, s, true)
	return b.String()
}

// Unescape decodes every %XX (hex, either case) in s; it inverts Escape. A '%' not followed by two
// hex digits is an error wrapping ErrInvalidEscape.
func Unescape(s string) (string, error) {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("%w: truncated %q at byte %d of %q", ErrInvalidEscape, s[i:], i, s)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("%w: %q at byte %d of %q", ErrInvalidEscape, s[i:i+3], i, s)
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	return string(b), nil
}

const upperHex = "0123456789ABCDEF"

// needsEscape says whether c is escaped; '%' only for full escaping (not in a cid).
func needsEscape(c byte, full bool) bool {
	switch c {
	case '/', '+', '#', 0:
		return true
	case '%':
		return full
	}
	return false
}

func escapedLen(s string, full bool) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i], full) {
			n += 2
		}
	}
	return n
}

func writeEscaped(b *strings.Builder, s string, full bool) {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !needsEscape(c, full) {
			continue
		}
		b.WriteString(s[start:i])
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&0xF])
		start = i + 1
	}
	b.WriteString(s[start:])
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
