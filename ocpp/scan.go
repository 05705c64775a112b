package ocpp

import (
	"encoding/binary"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is the JSON scanner under ParseFrame: one pass over a frame's
// bytes, without reflection, accepting exactly what encoding/json accepts
// (RFC 8259, strings with invalid UTF-8 included, nesting up to
// maxNestingDepth) and decoding strings exactly as encoding/json decodes
// them into a Go string. FuzzParseFrameMatchesReference holds it to the
// encoding/json implementation it replaced.

// maxNestingDepth is encoding/json's limit on nested arrays and objects,
// the frame's own array included.
const maxNestingDepth = 10000

// scanner reads the JSON of one frame. badUTF8 records that a string held
// bytes that are not UTF-8: encoding/json accepts them (and decodes each
// as U+FFFD), ParseFrame refuses the frame after reading its UniqueId.
type scanner struct {
	data    []byte
	badUTF8 bool
}

// skipSpace returns the offset of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// value returns the offset just past the JSON value that starts at
// data[i], or -1 when none does: a syntax error, the end of the data, or
// nesting deeper than maxNestingDepth. depth is the number of arrays and
// objects around the value. It is iterative, so a deep value costs a bit
// per level, not a stack frame.
func (s *scanner) value(i, depth int) int {
	data := s.data
	var small [4]uint64
	objects := small[:] // bit l: the container at level l is an object
	level := 0          // containers open inside the value
	for {
		// data[i] starts a value.
		if i >= len(data) {
			return -1
		}
		switch c := data[i]; c {
		case '{', '[':
			if depth+level >= maxNestingDepth {
				return -1
			}
			i = skipSpace(data, i+1)
			if i < len(data) && (c == '{' && data[i] == '}' || c == '[' && data[i] == ']') {
				i++ // empty: go on after it
				break
			}
			if level/64 == len(objects) {
				objects = append(objects, 0)
			}
			if c == '{' {
				objects[level/64] |= 1 << (level % 64)
			} else {
				objects[level/64] &^= 1 << (level % 64)
			}
			level++
			if c == '{' {
				if i = s.key(i); i < 0 {
					return -1
				}
			}
			continue
		case '"':
			i = s.str(i)
		case 't':
			i = literal(data, i, "true")
		case 'f':
			i = literal(data, i, "false")
		case 'n':
			i = literal(data, i, "null")
		default:
			i = number(data, i)
		}
		if i < 0 {
			return -1
		}
		// After a value: close containers until one goes on.
		for {
			if level == 0 {
				return i
			}
			i = skipSpace(data, i)
			if i >= len(data) {
				return -1
			}
			l := level - 1
			object := objects[l/64]&(1<<(l%64)) != 0
			c := data[i]
			if c == ',' {
				i = skipSpace(data, i+1)
				if object {
					if i = s.key(i); i < 0 {
						return -1
					}
				}
				break
			}
			if object && c == '}' || !object && c == ']' {
				level--
				i++
				continue
			}
			return -1
		}
	}
}

// key reads an object's key and its colon at data[i] and returns the
// offset of the member's value, or -1.
func (s *scanner) key(i int) int {
	data := s.data
	if i >= len(data) || data[i] != '"' {
		return -1
	}
	if i = s.str(i); i < 0 {
		return -1
	}
	i = skipSpace(data, i)
	if i >= len(data) || data[i] != ':' {
		return -1
	}
	return skipSpace(data, i+1)
}

// str returns the offset just past the JSON string at data[i] (a quote),
// or -1.
func (s *scanner) str(i int) int {
	data := s.data
	for i++; ; {
		// Skip the bytes that need no attention, eight at a time while
		// they last, then one at a time up to the one that does.
		for len(data)-i >= 8 && plainASCII8(binary.LittleEndian.Uint64(data[i:])) {
			i += 8
		}
		for i < len(data) && plainASCII(data[i]) {
			i++
		}
		if i >= len(data) {
			return -1
		}
		switch c := data[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= len(data) {
				return -1
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(data)-i < 6 || hexValue(data[i+2:i+6]) < 0 {
					return -1
				}
				i += 6
			default:
				return -1
			}
		case c < ' ':
			return -1
		default: // not ASCII
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				s.badUTF8 = true
			}
			i += size
		}
	}
}

// plainASCII reports whether c stands for itself in a JSON string: ASCII,
// not a control character, a quote or a backslash.
func plainASCII(c byte) bool {
	return c >= ' ' && c < utf8.RuneSelf && c != '"' && c != '\\'
}

// plainASCII8 reports whether plainASCII holds for all eight bytes of x.
// A byte's high bit is set in the union when it is not ASCII, below a
// space (the subtraction wraps), a quote or a backslash (the XOR leaves
// zero, and subtracting one wraps). It never passes a byte that needs
// attention; a borrow can flag a byte above one that does, which only
// sends the caller to the byte-wise loop.
func plainASCII8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	return (x|(x-' '*ones)|((x^'"'*ones)-ones)|((x^'\\'*ones)-ones))&highs == 0
}

// literal returns the offset just past lit (true, false or null) at
// data[i], or -1.
func literal(data []byte, i int, lit string) int {
	if len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit {
		return i + len(lit)
	}
	return -1
}

// number returns the offset just past the JSON number at data[i], or -1:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? [RFC 8259 §6].
func number(data []byte, i int) int {
	if data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		return -1
	case data[i] == '0':
		i++
	case '1' <= data[i] && data[i] <= '9':
		i = digits(data, i+1)
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		if i+1 >= len(data) || !isDigit(data[i+1]) {
			return -1
		}
		i = digits(data, i+1)
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || !isDigit(data[i]) {
			return -1
		}
		i = digits(data, i)
	}
	return i
}

func digits(data []byte, i int) int {
	for i < len(data) && isDigit(data[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// hexValue returns the value of four hex digits, or -1.
func hexValue(h []byte) rune {
	var r rune
	for _, c := range h {
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

// stringElement reads a frame element that must be a string, already
// scanned, as encoding/json reads it into a Go string: null leaves it ""
// without an error, anything but a string or null is an error (ok false).
// With intern, a name in knownNames costs no allocation.
func stringElement(raw []byte, intern bool) (s string, ok bool) {
	switch raw[0] {
	case 'n':
		return "", true
	case '"':
		return unquote(raw, intern), true
	}
	return "", false
}

// unquote returns the value of the JSON string raw (quotes included,
// already scanned) exactly as encoding/json decodes it: escapes resolved,
// a valid surrogate pair combined, a lone surrogate and each byte that is
// not UTF-8 replaced by U+FFFD.
func unquote(raw []byte, intern bool) string {
	s := raw[1 : len(raw)-1]
	r := 0
	for r < len(s) {
		c := s[r]
		if c == '\\' {
			break
		}
		if c < utf8.RuneSelf {
			r++
			continue
		}
		rr, size := utf8.DecodeRune(s[r:])
		if rr == utf8.RuneError && size == 1 {
			break
		}
		r += size
	}
	if r == len(s) {
		if intern {
			if name, ok := knownNames[string(s)]; ok {
				return name
			}
		}
		return string(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	b.Write(s[:r])
	for r < len(s) {
		switch c := s[r]; {
		case c == '\\':
			switch e := s[r+1]; e {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				rr := hexValue(s[r+2 : r+6])
				r += 6
				if utf16.IsSurrogate(rr) {
					rr1 := rune(-1)
					if len(s)-r >= 6 && s[r] == '\\' && s[r+1] == 'u' {
						rr1 = hexValue(s[r+2 : r+6])
					}
					if dec := utf16.DecodeRune(rr, rr1); dec != unicode.ReplacementChar {
						r += 6
						b.WriteRune(dec)
						continue
					}
					rr = unicode.ReplacementChar
				}
				b.WriteRune(rr)
				continue
			default: // " \ /
				b.WriteByte(e)
			}
			r += 2
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			b.WriteRune(rr) // RuneError for a byte that is not UTF-8
			r += size
		}
	}
	return b.String()
}

// knownNames interns the action names and error codes of OCPP 1.6 (with
// the security extension) and 2.0.1, so the Action and ErrorCode of a
// frame cost no allocation. It is read-only after initialisation.
var knownNames = func() map[string]string {
	names := strings.Fields(`
		Authorize BootNotification CancelReservation CertificateSigned ChangeAvailability
		ChangeConfiguration ClearCache ClearChargingProfile DataTransfer DeleteCertificate
		DiagnosticsStatusNotification ExtendedTriggerMessage FirmwareStatusNotification
		GetCompositeSchedule GetConfiguration GetDiagnostics GetInstalledCertificateIds
		GetLocalListVersion GetLog Heartbeat InstallCertificate LogStatusNotification MeterValues
		RemoteStartTransaction RemoteStopTransaction ReserveNow Reset SecurityEventNotification
		SendLocalList SetChargingProfile SignCertificate SignedFirmwareStatusNotification
		SignedUpdateFirmware StartTransaction StatusNotification StopTransaction TriggerMessage
		UnlockConnector UpdateFirmware

		ClearDisplayMessage ClearedChargingLimit ClearVariableMonitoring CostUpdated
		CustomerInformation Get15118EVCertificate GetBaseReport GetCertificateStatus
		GetChargingProfiles GetDisplayMessages GetMonitoringReport GetReport GetTransactionStatus
		GetVariables NotifyChargingLimit NotifyCustomerInformation NotifyDisplayMessages
		NotifyEVChargingNeeds NotifyEVChargingSchedule NotifyEvent NotifyMonitoringReport
		NotifyReport PublishFirmware PublishFirmwareStatusNotification ReportChargingProfiles
		RequestStartTransaction RequestStopTransaction ReservationStatusUpdate SetDisplayMessage
		SetMonitoringBase SetMonitoringLevel SetNetworkProfile SetVariableMonitoring SetVariables
		TransactionEvent UnpublishFirmware

		NotImplemented NotSupported InternalError ProtocolError SecurityError FormationViolation
		PropertyConstraintViolation OccurenceConstraintViolation TypeConstraintViolation
		GenericError FormatViolation MessageTypeNotSupported OccurrenceConstraintViolation
		RpcFrameworkError`)
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = n
	}
	return m
}()
