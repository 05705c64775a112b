package schemas

import (
	"net/netip"
	"strings"
	"sync"

	"github.com/xeipuuv/gojsonschema"
)

// formatsOnce guards the one process-wide registration this package makes: gojsonschema keeps its
// format checkers in a global table, so they are replaced once, before the first schema compiles.
var formatsOnce sync.Once

// registerFormats replaces gojsonschema's "date-time" and "uri" checkers with strict ones. Any
// other user of gojsonschema in the same process sees them too; both are stricter only where the
// built-in ones accept values that are not what their RFCs define.
func registerFormats() {
	formatsOnce.Do(func() {
		gojsonschema.FormatCheckers.
			Add("date-time", dateTimeChecker{}).
			Add("uri", uriChecker{})
	})
}

// dateTimeChecker accepts RFC 3339 §5.6 date-times only: "2024-01-01T10:00:00Z",
// "2024-01-01T10:00:00.123+02:00". The offset is required: a date-time without one
// ("2024-01-01T10:00:00") is rejected, although ajv (ocpp-rpc) accepts it, because OCPP 1.6 says
// date-times are RFC 3339 and without an offset the instant is unknown. Lower-case "t"/"z" are
// accepted (RFC 3339 §5.6 note), a space instead of "T" is not. A leap second (":60") is accepted
// only at 23:59:60 UTC. Non-strings pass: the "type" keyword judges them.
type dateTimeChecker struct{}

// IsFormat implements gojsonschema.FormatChecker.
func (dateTimeChecker) IsFormat(input interface{}) bool {
	s, ok := input.(string)
	if !ok {
		return true
	}
	return isDateTime(s)
}

// isDateTime reports whether s is an RFC 3339 date-time with an offset. It does not allocate.
func isDateTime(s string) bool {
	// 2006-01-02T15:04:05 is 19 bytes; at least "Z" follows.
	if len(s) < 20 {
		return false
	}
	num := func(i, n int) (int, bool) {
		v := 0
		for j := i; j < i+n; j++ {
			c := s[j]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	hour, ok4 := num(11, 2)
	minute, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 60 {
		return false
	}
	i := 19
	if s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i >= len(s) {
		return false // no offset
	}
	offset := 0 // minutes east of UTC
	switch s[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(s)-i != 6 || s[i+3] != ':' {
			return false
		}
		oh, ok1 := num(i+1, 2)
		om, ok2 := num(i+4, 2)
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return false
		}
		offset = oh*60 + om
		if s[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return false
	}
	if i != len(s) {
		return false
	}
	if sec == 60 { // leap second: only at 23:59:60 UTC [RFC 3339 §5.7]
		utc := ((hour*60+minute-offset)%1440 + 1440) % 1440
		return utc == 23*60+59
	}
	return true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// uriChecker accepts absolute URIs as RFC 3986 §4.3 defines them ("ftp://user:pw@host/diag",
// "https://example.com/fw.bin"): a scheme is required, so a bare host or path is rejected — the
// charge point cannot know how to fetch it. Characters RFC 3986 does not allow (spaces, control
// characters, non-ASCII, `\ " < > { } | ^ ```) must be percent-encoded, and every "%" must start a
// valid escape. This matches what ajv-formats ("uri", full mode) accepts closely enough that a
// message we pass is one a strict charge point accepts. Non-strings pass.
type uriChecker struct{}

// IsFormat implements gojsonschema.FormatChecker.
func (uriChecker) IsFormat(input interface{}) bool {
	s, ok := input.(string)
	if !ok {
		return true
	}
	return isURI(s)
}

func isURI(s string) bool {
	colon, ok := uriSyntax(s)
	return ok && hostOK(s, colon)
}

// uriSyntax does the checks of isURI that look at characters only, and returns the offset of
// the colon after the scheme.
func uriSyntax(s string) (colon int, ok bool) {
	colon = -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ':' {
			colon = i
			break
		}
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !alpha || !alpha && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.' {
			return 0, false
		}
	}
	if colon < 1 || colon == len(s)-1 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ' || c >= 0x7f:
			return 0, false
		case c == '\\' || c == '"' || c == '<' || c == '>' || c == '{' || c == '}' || c == '|' || c == '^' || c == '`':
			return 0, false
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return 0, false
			}
		}
	}
	if strings.Count(s, "#") > 1 { // "#" is not a fragment character [RFC 3986 §3.5]
		return 0, false
	}
	if !bracketsOnlyAroundHost(s[colon+1:]) {
		return 0, false
	}
	return colon, true
}

// hostOK checks what url.Parse still rejects in a string that passed the checks of isURI: the
// host and port of an authority, nothing else can fail (userinfo, path, query and fragment only
// need valid %-escapes, checked already). It is url.Parse's parseHost (Go 1.26), written out
// because url.Parse allocates and the compiled validator must not; TestURIMatchesNetURL and
// FuzzURIMatchesNetURL hold it to url.Parse.
func hostOK(s string, colon int) bool {
	scheme, rest := s[:colon], s[colon+1:]
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	auth, ok := strings.CutPrefix(rest, "//")
	if !ok {
		return true // no authority: an opaque or absolute path
	}
	if i := strings.IndexByte(auth, '/'); i >= 0 {
		auth = auth[:i]
	}
	host := auth[strings.LastIndexByte(auth, '@')+1:]
	if strings.HasPrefix(host, "[") { // an IP literal: an IPv6 address, no zone (checked above)
		end := strings.IndexByte(host, ']')
		if !validOptionalPort(host[end+1:]) {
			return false
		}
		addr, err := netip.ParseAddr(host[1:end])
		return err == nil && !addr.Is4()
	}
	if i := strings.IndexByte(host, ':'); i >= 0 {
		// A second colon is an error for http and https (GODEBUG urlstrictcolons, default since
		// Go 1.26); for other schemes only the part after the last one must be a port.
		if !strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https") {
			i = strings.LastIndexByte(host, ':')
		}
		if !validOptionalPort(host[i:]) {
			return false
		}
	}
	// In a host, %-escapes may only encode bytes >= 0x80, or be %25 [RFC 3986 §3.2.2, RFC 6874].
	for i := 0; i < len(host); i++ {
		if host[i] == '%' && host[i+1] < '8' && host[i:i+3] != "%25" {
			return false
		}
	}
	return true
}

// validOptionalPort reports whether port is empty or a colon followed by digits.
func validOptionalPort(port string) bool {
	if port == "" {
		return true
	}
	if port[0] != ':' {
		return false
	}
	for i := 1; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return true
}

// bracketsOnlyAroundHost reports whether "[" and "]" appear only around an
// IP literal host, without a zone id [RFC 3986 §3.2.2, §3.3]. Go's
// net/url also takes them in a path and takes RFC 6874 zone ids; strict
// charge points (ajv) refuse both, and what we pass they must accept.
func bracketsOnlyAroundHost(hierPart string) bool {
	rest := hierPart
	if strings.HasPrefix(rest, "//") {
		a := rest[2:]
		end := strings.IndexAny(a, "/?#")
		if end < 0 {
			end = len(a)
		}
		auth := a[:end]
		rest = a[end:]
		host := auth[strings.LastIndexByte(auth, '@')+1:]
		if strings.ContainsAny(auth[:len(auth)-len(host)], "[]") {
			return false
		}
		if strings.HasPrefix(host, "[") {
			closing := strings.IndexByte(host, ']')
			if closing < 0 || strings.ContainsAny(host[1:closing], "[%") || strings.ContainsAny(host[closing+1:], "[]") {
				return false
			}
		} else if strings.ContainsAny(host, "[]") {
			return false
		}
	}
	return !strings.ContainsAny(rest, "[]")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
