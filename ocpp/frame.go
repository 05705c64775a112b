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
	// Payload is the JSON object of a CALL or CALLRESULT.
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
func ParseFrame(data []byte) (Frame, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(data, &parts); err != nil || parts == nil {
		return Frame{}, &CallError{Code: FormationViolation, Description: "frame is not a JSON array"}
	}
	var f Frame
	if len(parts) >= 2 {
		// Read the id first so every later refusal can echo it.
		if err := decodeString(parts[1], &f.UniqueID); err != nil || f.UniqueID == "" {
			f.UniqueID = ""
			return f, &CallError{Code: FormationViolation, Description: "UniqueId must be a non-empty string"}
		}
	}
	if !utf8.Valid(data) {
		// JSON is UTF-8 [RFC 8259 §8.1]; what is published must be too.
		return f, f.violation(FormationViolation, "frame is not valid UTF-8")
	}
	if len(parts) < 3 {
		return f, f.violation(FormationViolation, "frame has "+strconv.Itoa(len(parts))+" elements")
	}
	typ, err := messageType(parts[0])
	if err != nil {
		return f, f.violation(FormationViolation, "MessageTypeId must be a number")
	}
	switch typ {
	case 2:
		f.Type = TypeCall
		if len(parts) != 4 {
			return f, f.violation(FormationViolation, "CALL must have 4 elements")
		}
		if err := decodeString(parts[2], &f.Action); err != nil || f.Action == "" {
			return f, f.violation(FormationViolation, "Action must be a non-empty string")
		}
		f.Payload = parts[3]
	case 3:
		f.Type = TypeCallResult
		if len(parts) != 3 {
			return f, f.violation(FormationViolation, "CALLRESULT must have 3 elements")
		}
		f.Payload = parts[2]
	case 4:
		f.Type = TypeCallError
		if len(parts) != 4 && len(parts) != 5 {
			return f, f.violation(FormationViolation, "CALLERROR must have 5 elements")
		}
		if err := decodeString(parts[2], &f.ErrorCode); err != nil || f.ErrorCode == "" {
			return f, f.violation(FormationViolation, "ErrorCode must be a non-empty string")
		}
		if err := decodeString(parts[3], &f.ErrorDescription); err != nil {
			return f, f.violation(FormationViolation, "ErrorDescription must be a string")
		}
		if len(parts) == 5 {
			f.ErrorDetails = parts[4]
		}
		if len(f.ErrorDetails) != 0 && !IsObject(f.ErrorDetails) {
			return f, f.violation(FormationViolation, "ErrorDetails must be an object")
		}
		return f, nil
	default:
		return f, f.violation(MessageTypeNotSupported, "unknown MessageTypeId "+string(parts[0]))
	}
	if !IsObject(f.Payload) {
		return f, f.violation(FormationViolation, "Payload must be a JSON object")
	}
	return f, nil
}

// messageType reads the MessageTypeId. The usual one-digit forms are
// recognised directly; anything else (2.0, 2e0) takes the JSON decoder.
func messageType(raw json.RawMessage) (float64, error) {
	if len(raw) == 1 && raw[0] >= '0' && raw[0] <= '9' {
		return float64(raw[0] - '0'), nil
	}
	var typ float64
	err := json.Unmarshal(raw, &typ)
	return typ, err
}

// decodeString reads a JSON string element. Plain strings (no escapes, no
// control characters, as UniqueIds, actions and codes are) are taken as
// they are, without setting up a decoder per element; the rest, and
// anything that is not a string, take encoding/json.
func decodeString(raw json.RawMessage, s *string) error {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		inner := raw[1 : n-1]
		plain := true
		for _, c := range inner {
			if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				plain = false
				break
			}
		}
		if plain {
			*s = string(inner)
			return nil
		}
	}
	return json.Unmarshal(raw, s)
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
