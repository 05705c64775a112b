package schemas

import (
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// This file is the JSON scanner the compiled validator is built on: it accepts exactly what
// encoding/json's json.Valid accepts (so "syntactically valid" means the same on both engines) and
// decodes strings exactly as encoding/json decodes them into Go values (so enum, length and
// format checks see the same string gojsonschema sees). Functions take the payload and an offset
// and return the offset past what they read, or -1 for a syntax error; they never allocate.

// maxDepth is encoding/json's maxNestingDepth: json.Valid rejects a document whose objects and
// arrays nest deeper than this, so the scanner does too (and the validator's recursion is bounded).
const maxDepth = 10000

// strFlags says what scanString saw inside a string, so that callers decode only when they must.
type strFlags uint8

const (
	strEscape strFlags = 1 << iota // a backslash escape
	strHigh                        // a byte >= 0x80 (UTF-8, valid or not)
)

// needsDecode reports whether the raw bytes of a string with these flags differ from its value:
// escapes, or bytes that are not valid UTF-8, which encoding/json replaces with U+FFFD.
func (fl strFlags) needsDecode(raw []byte) bool {
	return fl&strEscape != 0 || fl&strHigh != 0 && !utf8.Valid(raw)
}

// Byte classes inside a JSON string.
const (
	chPlain   = iota
	chQuote   // '"' ends the string
	chEscape  // '\\' starts an escape
	chControl // < 0x20: not allowed unescaped
	chHigh    // >= 0x80
)

var strClass = func() (t [256]uint8) {
	for c := range 0x20 {
		t[c] = chControl
	}
	for c := 0x80; c < 0x100; c++ {
		t[c] = chHigh
	}
	t['"'], t['\\'] = chQuote, chEscape
	return t
}()

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipWS returns the offset of the first byte at or after i that is not JSON whitespace.
func skipWS(data []byte, i int) int {
	for i < len(data) && isWS(data[i]) {
		i++
	}
	return i
}

// scanString reads the string whose opening quote is data[i] and returns the offset past its
// closing quote. The string's raw contents are data[i+1 : end-1].
func scanString(data []byte, i int) (int, strFlags) {
	var fl strFlags
	i++
	for {
		for i < len(data) && strClass[data[i]] == chPlain {
			i++
		}
		if i >= len(data) {
			return -1, 0
		}
		switch strClass[data[i]] {
		case chQuote:
			return i + 1, fl
		case chHigh:
			fl |= strHigh
			i++
		case chControl:
			return -1, 0
		case chEscape:
			fl |= strEscape
			if i+1 >= len(data) {
				return -1, 0
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) || hex4(data[i+2:i+6]) < 0 {
					return -1, 0
				}
				i += 6
			default:
				return -1, 0
			}
		}
	}
}

// hex4 returns the value of four hex digits, or -1.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// getu4 decodes the \uXXXX escape at the start of s, or returns -1 (encoding/json's getu4).
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	return hex4(s[2:6])
}

// appendDecoded appends the value of the raw, already scanned string contents raw to dst, exactly
// as encoding/json decodes a string: escapes resolved, a surrogate pair joined, a lone surrogate
// and every byte that is not valid UTF-8 replaced by U+FFFD.
func appendDecoded(dst, raw []byte) []byte {
	for r := 0; r < len(raw); {
		switch c := raw[r]; {
		case c == '\\':
			switch e := raw[r+1]; e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := getu4(raw[r:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(raw[r:])); dec != utf8.RuneError {
						r += 6
						dst = utf8.AppendRune(dst, dec)
						continue
					}
					rr = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, e)
			}
			r += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			r++
		default:
			rr, size := utf8.DecodeRune(raw[r:])
			dst = utf8.AppendRune(dst, rr)
			r += size
		}
	}
	return dst
}

// decodeString returns the value of a scanned string: raw itself when it needs no decoding (no
// allocation), else its decoded form in buf's storage (allocating only when buf is too small).
func decodeString(buf, raw []byte, fl strFlags) []byte {
	if !fl.needsDecode(raw) {
		return raw
	}
	return appendDecoded(buf[:0], raw)
}

// num is a JSON number as the scanner read it: views into the payload, so reading one does not
// allocate. Its value is (-1 if neg) × ip.fp × 10^exp.
type num struct {
	neg   bool
	ip    []byte // integer digits: "0" or digits without a leading zero
	fp    []byte // fraction digits, possibly empty
	exp   int64  // the exponent; clamped to ±2^62 when it does not fit an int64
	expOK bool   // the exponent fits an int64 (big.Rat.SetString fails on one that does not)
}

const expClamp = 1 << 62

// scanNumber reads the number starting at data[i].
func scanNumber(data []byte, i int) (int, num) {
	var n num
	if i < len(data) && data[i] == '-' {
		n.neg = true
		i++
	}
	start := i
	switch {
	case i >= len(data):
		return -1, n
	case data[i] == '0':
		i++
	case '1' <= data[i] && data[i] <= '9':
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	default:
		return -1, n
	}
	n.ip = data[start:i]
	n.expOK = true
	if i < len(data) && data[i] == '.' {
		i++
		start = i
		for i < len(data) && isDigit(data[i]) {
			i++
		}
		if i == start {
			return -1, n
		}
		n.fp = data[start:i]
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		negExp := false
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			negExp = data[i] == '-'
			i++
		}
		start = i
		var mag uint64 // saturates above 2^63
		for i < len(data) && isDigit(data[i]) {
			if mag <= 1<<63 {
				mag = mag*10 + uint64(data[i]-'0')
			}
			i++
		}
		if i == start {
			return -1, n
		}
		// strconv.ParseInt's range, as big.Rat's exponent scanner uses it.
		n.expOK = mag < 1<<63 || negExp && mag == 1<<63
		if mag > expClamp {
			mag = expClamp
		}
		n.exp = int64(mag)
		if negExp {
			n.exp = -n.exp
		}
	}
	return i, n
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scanLiteral reads the literal lit (true, false, null) at data[i].
func scanLiteral(data []byte, i int, lit string) int {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// skipValue reads the value starting at data[i] (whitespace already skipped) without checking
// it against a schema, at nesting depth depth, and returns the offset past it.
func skipValue(data []byte, i, depth int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '{':
		if depth++; depth > maxDepth {
			return -1
		}
		i = skipWS(data, i+1)
		if i < len(data) && data[i] == '}' {
			return i + 1
		}
		for {
			if i >= len(data) || data[i] != '"' {
				return -1
			}
			if i, _ = scanString(data, i); i < 0 {
				return -1
			}
			if i = skipWS(data, i); i >= len(data) || data[i] != ':' {
				return -1
			}
			if i = skipValue(data, skipWS(data, i+1), depth); i < 0 {
				return -1
			}
			if i = skipWS(data, i); i >= len(data) {
				return -1
			}
			switch data[i] {
			case ',':
				i = skipWS(data, i+1)
			case '}':
				return i + 1
			default:
				return -1
			}
		}
	case '[':
		if depth++; depth > maxDepth {
			return -1
		}
		i = skipWS(data, i+1)
		if i < len(data) && data[i] == ']' {
			return i + 1
		}
		for {
			if i = skipValue(data, i, depth); i < 0 {
				return -1
			}
			if i = skipWS(data, i); i >= len(data) {
				return -1
			}
			switch data[i] {
			case ',':
				i = skipWS(data, i+1)
			case ']':
				return i + 1
			default:
				return -1
			}
		}
	case '"':
		i, _ = scanString(data, i)
		return i
	case 't':
		return scanLiteral(data, i, "true")
	case 'f':
		return scanLiteral(data, i, "false")
	case 'n':
		return scanLiteral(data, i, "null")
	}
	i, _ = scanNumber(data, i)
	return i
}

// view returns b as a string without copying, for the read-only checks (format checkers,
// strconv.ParseFloat) that take strings. The caller must not keep the string beyond the call it
// passes it to, and b must not change meanwhile: both hold for the payload while it is checked and
// for the decode buffers here. It exists so that the valid path allocates nothing.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
