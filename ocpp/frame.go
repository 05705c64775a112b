package ocpp

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// MessageType is the first element of every OCPP-J frame [OCPP-J 1.6 §4.1.3].
type MessageType uint8

// The three OCPP-J message types.
const (
	TypeCall       MessageType = 2
	TypeCallResult MessageType = 3
	TypeCallError  MessageType = 4
)

// String names the type as logs and counters do.
func (t MessageType) String() string {
	switch t {
	case TypeCall:
		return "call"
	case TypeCallResult:
		return "callresult"
	case TypeCallError:
		return "callerror"
	}
	return "unknown"
}

// Frame is one OCPP-J message split into its parts. Payload and ErrorDetails
// stay raw JSON: the gateway forwards them and never needs their Go shape,
// so a frame is decoded exactly once.
type Frame struct {
	Type     MessageType
	UniqueID string
	// Action is set on a CALL only.
	Action string
	// Payload is the JSON object of a CALL or CALLRESULT. ParseFrame
	// copies it out of the frame: the reader's buffer is recycled as soon
	// as the frame is handled, and a Handler may keep the Inbound it is
	// given.
	Payload json.RawMessage
	// ErrorCode, ErrorDescription and ErrorDetails are set on a CALLERROR.
	ErrorCode        string
	ErrorDescription string
	ErrorDetails     json.RawMessage
}

// ParseFrame decodes an OCPP-J text frame. On failure it returns a
// *CallError carrying the code the charge point must be answered with and
// the UniqueId when it could be read [OCPP-J 1.6 §4.2.3]:
// FormationViolation for anything that is not a well-formed frame, and
// MessageTypeNotSupported (ProtocolError in 1.6) for an unknown type.
//
// A CALLERROR with four elements (no ErrorDetails) is accepted: real charge
// points send it, and nothing is lost by tolerating it. A frame that is not
// valid UTF-8 is refused (RFC 6455 would even fail the connection; a
// CALLERROR is the gentler, specified answer).
//
// The frame is read in one pass, without encoding/json, and the result is
// exactly what decoding it with encoding/json into []json.RawMessage gave
// (FuzzParseFrameMatchesReference holds the two equal). The frame keeps no
// reference to data: Payload and ErrorDetails are copies, the strings are
// new or interned, so the caller may reuse data at once.
func ParseFrame(data []byte) (Frame, error) {
	f, _, err := parseFrame(data, nil)
	return f, err
}

// ParseCall is ParseFrame with the schema check of a charge point's CALL in
// the same pass, as the gateway's reader runs it: refusal is the CALLERROR
// that answers a well-formed CALL whose action or payload sv refuses. It is
// exported for products that embed the parser and for benchmarks.
func ParseCall(data []byte, sv ScanValidator) (f Frame, refusal *CallError, err error) {
	return parseFrame(data, sv)
}

// parseFrame is ParseFrame with a schema check in the same pass. When sv
// is not nil, the payload of a CALL is checked as checkCall checks it:
// an action sv does not define, or one only the central system sends, is
// refused (and its payload skipped); any other payload is read by
// sv.ScanCall instead of being skipped. The refusal comes back as refusal,
// its UniqueID set, only when the frame itself is well formed (err nil);
// a frame-level error takes precedence and is the same as ParseFrame's.
// err, when not nil, is a *CallError.
func parseFrame(data []byte, sv ScanValidator) (f Frame, refusal *CallError, err error) {
	s := scanner{data: data}
	var el [5][]byte // the first five elements, as they are in data
	n := 0           // elements
	var action string
	actionRead := false // action holds element 2, read for sv: a non-empty string
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '[' {
		return Frame{}, nil, notArray()
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		i++
	} else {
		for {
			var end int
			if n == 3 && sv != nil && isCall(el[0]) {
				action, actionRead = stringElement(el[2], true)
				actionRead = actionRead && action != ""
			}
			if n == 3 && actionRead {
				end, refusal = s.callPayload(i, sv, action)
			} else {
				end = s.value(i, 1)
			}
			if end < 0 {
				return Frame{}, nil, notArray()
			}
			if n < len(el) {
				el[n] = data[i:end]
			}
			n++
			i = skipSpace(data, end)
			if i == len(data) {
				return Frame{}, nil, notArray()
			}
			if data[i] == ']' {
				i++
				break
			}
			if data[i] != ',' {
				return Frame{}, nil, notArray()
			}
			i = skipSpace(data, i+1)
		}
	}
	if skipSpace(data, i) != len(data) {
		return Frame{}, nil, notArray()
	}

	// The checks, in the order the frame was always checked in.
	if n >= 2 {
		// Read the id first so every later refusal can echo it.
		id, ok := stringElement(el[1], false)
		if !ok || id == "" {
			return Frame{}, nil, &CallError{Code: FormationViolation, Description: "UniqueId must be a non-empty string"}
		}
		f.UniqueID = id
	}
	if s.badUTF8 {
		// JSON is UTF-8 [RFC 8259 §8.1]; what is published must be too.
		return f, nil, f.violation(FormationViolation, "frame is not valid UTF-8")
	}
	if n < 3 {
		return f, nil, f.violation(FormationViolation, "frame has "+strconv.Itoa(n)+" elements")
	}
	typ, ok := messageType(el[0])
	if !ok {
		return f, nil, f.violation(FormationViolation, "MessageTypeId must be a number")
	}
	switch typ {
	case 2:
		f.Type = TypeCall
		if n != 4 {
			return f, nil, f.violation(FormationViolation, "CALL must have 4 elements")
		}
		if !actionRead {
			if action, ok = stringElement(el[2], true); !ok || action == "" {
				return f, nil, f.violation(FormationViolation, "Action must be a non-empty string")
			}
		}
		f.Action = action
		f.Payload = bytes.Clone(el[3])
	case 3:
		f.Type = TypeCallResult
		if n != 3 {
			return f, nil, f.violation(FormationViolation, "CALLRESULT must have 3 elements")
		}
		f.Payload = bytes.Clone(el[2])
	case 4:
		f.Type = TypeCallError
		if n != 4 && n != 5 {
			return f, nil, f.violation(FormationViolation, "CALLERROR must have 5 elements")
		}
		if f.ErrorCode, ok = stringElement(el[2], true); !ok || f.ErrorCode == "" {
			return f, nil, f.violation(FormationViolation, "ErrorCode must be a non-empty string")
		}
		if f.ErrorDescription, ok = stringElement(el[3], false); !ok {
			return f, nil, f.violation(FormationViolation, "ErrorDescription must be a string")
		}
		if n == 5 {
			f.ErrorDetails = bytes.Clone(el[4])
		}
		if len(f.ErrorDetails) != 0 && !IsObject(f.ErrorDetails) {
			return f, nil, f.violation(FormationViolation, "ErrorDetails must be an object")
		}
		return f, nil, nil
	default:
		return f, nil, f.violation(MessageTypeNotSupported, "unknown MessageTypeId "+string(el[0]))
	}
	if !IsObject(f.Payload) {
		return f, nil, f.violation(FormationViolation, "Payload must be a JSON object")
	}
	if refusal != nil {
		refusal.UniqueID = f.UniqueID
	}
	return f, refusal, nil
}

func notArray() *CallError {
	return &CallError{Code: FormationViolation, Description: "frame is not a JSON array"}
}

// isCall reports whether the MessageTypeId element raw is that of a CALL.
func isCall(raw []byte) bool {
	typ, ok := messageType(raw)
	return ok && typ == 2
}

// messageType reads the MessageTypeId element, already scanned, as
// encoding/json reads it into a float64: 2.0 and 2e0 are 2, "2" is an
// error, and null leaves it 0 (an unknown type, not an error).
func messageType(raw []byte) (float64, bool) {
	if len(raw) == 1 && raw[0] >= '0' && raw[0] <= '9' {
		return float64(raw[0] - '0'), true
	}
	switch c := raw[0]; {
	case c == 'n':
		return 0, true
	case c == '-' || isDigit(c):
		typ, err := strconv.ParseFloat(string(raw), 64)
		return typ, err == nil
	}
	return 0, false
}

// callPayload reads the payload of a CALL of action at data[i] as
// checkCall would check it: an action sv does not let the charge point
// send is refused and its payload skipped; any other payload is read by
// ScanPayload. It returns the offset past the payload (-1: not JSON) and
// the refusal. UTF-8 is checked here, not by the validator.
func (s *scanner) callPayload(i int, sv ScanValidator, action string) (end int, refusal *CallError) {
	if refusal = senderRefusal(sv, action); refusal != nil {
		return s.value(i, 1), refusal
	}
	end, refusal = ScanPayload(s.data, i, sv, action)
	if end > 0 && !s.badUTF8 && !utf8.Valid(s.data[i:end]) {
		s.badUTF8 = true
	}
	return end, refusal
}

func (f Frame) violation(code ErrorCode, desc string) *CallError {
	return &CallError{Code: code, Description: desc, UniqueID: f.UniqueID}
}

// IsObject reports whether raw, already known to be valid JSON, is an object.
func IsObject(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '{'
}

// AppendJSON appends the OCPP-J encoding of f to b. It writes Payload and
// ErrorDetails as they are, so they must be valid JSON (as ParseFrame and a
// JSON decoder guarantee); empty ones are written as {}.
func (f *Frame) AppendJSON(b []byte) []byte {
	if b == nil {
		// One allocation of about the right size, not the three or four
		// of growing from nil; frameOverhead leaves room for a few escapes.
		const frameOverhead = 32
		b = make([]byte, 0, frameOverhead+len(f.UniqueID)+len(f.Action)+len(f.Payload)+
			len(f.ErrorCode)+len(f.ErrorDescription)+len(f.ErrorDetails))
	}
	b = append(b, '[')
	b = strconv.AppendUint(b, uint64(f.Type), 10)
	b = append(b, ',')
	b = AppendString(b, f.UniqueID)
	switch f.Type {
	case TypeCall:
		b = append(b, ',')
		b = AppendString(b, f.Action)
		b = append(b, ',')
		b = appendObject(b, f.Payload)
	case TypeCallResult:
		b = append(b, ',')
		b = appendObject(b, f.Payload)
	case TypeCallError:
		b = append(b, ',')
		b = AppendString(b, f.ErrorCode)
		b = append(b, ',')
		b = AppendString(b, f.ErrorDescription)
		b = append(b, ',')
		b = appendObject(b, f.ErrorDetails)
	}
	return append(b, ']')
}

func appendObject(b []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return append(b, '{', '}')
	}
	return append(b, raw...)
}

const hex = "0123456789abcdef"

// AppendString appends s as a JSON string. It escapes what RFC 8259 requires
// and replaces invalid UTF-8 with U+FFFD, as encoding/json does, without the
// allocation of json.Marshal.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
