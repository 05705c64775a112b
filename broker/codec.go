package broker

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chargemq/chargemq/ocpp"
)

// maxUniqueIDLen is the longest UniqueId OCPP-J allows [OCPP-J 1.6 §4.1.4].
const maxUniqueIDLen = 36

// malformed is why a downstream message could not be read as a frame, with
// the UniqueId when it could be read (for the gateway error).
type malformed struct {
	uniqueID string
	action   string
	why      string
}

func (m *malformed) Error() string { return "broker: malformed command: " + m.why }

// decodeCommand turns the JSON an MQTT client published on a downstream
// topic (the EMQX shape, docs/topics.md) into the command for a charge
// point, in one pass over the bytes. With sv, the validator the charge
// point's commands are checked with (Server.CommandValidator), a CALL's
// Payload is checked in that same pass when its MessageTypeId and Action
// come before it, as every encoder we know writes them; the command then
// carries the verdict for Send (Command.CheckedAs). Payload and
// ErrorDetails stay raw, slices of payload, which the caller must not
// change. An Action on a CALLRESULT or CALLERROR is accepted and ignored
// (the gateway knows which call is answered).
//
// The message is read as encoding/json read it into a struct before
// (FuzzDecodeCommandMatchesReference holds it to that): member names
// match without regard to case, a repeated member overrides an earlier
// one, unknown members are ignored, null leaves a string member unset,
// and a MessageTypeId may be a number or a string holding one.
func decodeCommand(payload []byte, sv ocpp.ScanValidator, p ocpp.Protocol) (ocpp.Command, *malformed) {
	if !utf8.Valid(payload) {
		return ocpp.Command{}, &malformed{why: "payload is not UTF-8 JSON"}
	}
	var (
		d       commandReader
		checked bool // the Payload was scanned by sv: the verdict is in refusal
		refusal *ocpp.CallError
	)
	ok := ocpp.ScanObject(payload, func(key []byte, at int) int {
		switch field := commandField(key); field {
		case fieldPayload:
			if sv != nil && d.typ == '2' && d.action != "" {
				if _, fromCS, known := sv.Sender(d.action); known && fromCS {
					end, ce := ocpp.ScanPayload(payload, at, sv, d.action)
					if end >= 0 {
						d.payload, checked, refusal = payload[at:end], true, ce
					}
					return end
				}
			}
			checked = false
			return d.set(field, payload, at)
		case fieldType, fieldAction:
			checked = false // a later MessageTypeId or Action: the verdict may not be for it
			return d.set(field, payload, at)
		default:
			return d.set(field, payload, at)
		}
	})
	if !ok {
		return ocpp.Command{}, &malformed{why: "payload is not a JSON object"}
	}
	f, why := d.frame()
	if why != "" {
		return ocpp.Command{}, &malformed{uniqueID: d.id, action: d.action, why: why}
	}
	cmd := ocpp.Command{Frame: f}
	if checked { // MessageTypeId and Action have not changed since: they would have reset it
		cmd.CheckedAs, cmd.PayloadRefusal = p, refusal
	}
	return cmd, nil
}

// The members of a command, as commandField names them.
const (
	fieldOther = iota
	fieldType
	fieldID
	fieldAction
	fieldPayload
	fieldErrorCode
	fieldErrorDescription
	fieldErrorDetails
)

// commandFields are the members' names; encoding/json matched them
// without regard to case, so they still are.
var commandFields = [...]string{
	fieldType:             "MessageTypeId",
	fieldID:               "UniqueId",
	fieldAction:           "Action",
	fieldPayload:          "Payload",
	fieldErrorCode:        "ErrorCode",
	fieldErrorDescription: "ErrorDescription",
	fieldErrorDetails:     "ErrorDetails",
}

// commandField returns which member key names: the name as written first
// (comparing string(key) allocates nothing), then without regard to case.
func commandField(key []byte) int {
	for f, name := range commandFields {
		if f != fieldOther && string(key) == name {
			return f
		}
	}
	for f, name := range commandFields {
		// A folded letter is never shorter than the ASCII one it matches.
		if f != fieldOther && len(key) >= len(name) && strings.EqualFold(string(key), name) {
			return f
		}
	}
	return fieldOther
}

// commandReader collects the members of a command as decodeCommand reads
// them. hasType and hasID tell a missing (or null) member from an empty
// one; typeErr is the first member of the wrong JSON type.
type commandReader struct {
	typ                  byte // '2', '3' or '4'; 0 for any other MessageTypeId
	hasType, hasID       bool
	id, action           string
	payload, details     []byte
	errorCode, errorDesc string
	typeErr              string
}

// set reads the value at data[at] into field and returns the offset past
// it (-1: not well-formed).
func (d *commandReader) set(field int, data []byte, at int) int {
	end := ocpp.SkipValue(data, at)
	if end < 0 {
		return -1
	}
	raw := data[at:end]
	switch field {
	case fieldType:
		switch c := raw[0]; {
		case c == 'n':
			d.typ, d.hasType = 0, false
		case c == '"' || c == '-' || '0' <= c && c <= '9':
			// A string holding a number was a json.Number too. Only 2, 3
			// and 4 are kept; anything else is refused in frame.
			if c == '"' {
				raw = []byte(ocpp.Unquote(raw))
			}
			d.typ, d.hasType = 0, true
			if len(raw) == 1 {
				d.typ = raw[0]
			}
		default:
			d.wrongType("MessageTypeId must be a number")
		}
	case fieldID:
		switch raw[0] {
		case 'n':
			d.id, d.hasID = "", false
		case '"':
			d.id, d.hasID = ocpp.Unquote(raw), true
		default:
			d.wrongType("UniqueId must be a string")
		}
	case fieldAction:
		d.action = d.str(raw, "Action", d.action)
	case fieldErrorCode:
		d.errorCode = d.str(raw, "ErrorCode", d.errorCode)
	case fieldErrorDescription:
		d.errorDesc = d.str(raw, "ErrorDescription", d.errorDesc)
	case fieldPayload:
		d.payload = raw
	case fieldErrorDetails:
		d.details = raw
	}
	return end
}

// str returns the string member raw, or old when it is null (or, noted as
// the type error, not a string).
func (d *commandReader) str(raw []byte, name, old string) string {
	switch raw[0] {
	case 'n':
		return old
	case '"':
		return ocpp.Unquote(raw)
	}
	d.wrongType(name + " must be a string")
	return old
}

func (d *commandReader) wrongType(why string) {
	if d.typeErr == "" {
		d.typeErr = why
	}
}

// frame checks the members read and returns the frame they make, or why
// they make none.
func (d *commandReader) frame() (f ocpp.Frame, why string) {
	switch {
	case d.typeErr != "":
		return f, d.typeErr
	case !d.hasType:
		return f, "MessageTypeId is missing"
	case !d.hasID || d.id == "":
		return f, "UniqueId must be a non-empty string"
	case len(d.id) > maxUniqueIDLen:
		return f, "UniqueId is longer than " + strconv.Itoa(maxUniqueIDLen) + " characters"
	}
	f.UniqueID = d.id
	switch d.typ {
	case '2':
		f.Type = ocpp.TypeCall
		if d.action == "" {
			return f, "a CALL needs an Action"
		}
		f.Action = d.action
		f.Payload = d.payload
	case '3':
		f.Type = ocpp.TypeCallResult
		f.Payload = d.payload
	case '4':
		f.Type = ocpp.TypeCallError
		if d.errorCode == "" {
			return f, "a CALLERROR needs an ErrorCode"
		}
		if len(d.details) != 0 && string(d.details) != "null" && !ocpp.IsObject(d.details) {
			return f, "ErrorDetails must be a JSON object"
		}
		f.ErrorCode = d.errorCode
		f.ErrorDescription = d.errorDesc
		if string(d.details) != "null" {
			f.ErrorDetails = d.details
		}
		return f, ""
	default:
		return f, "MessageTypeId must be 2, 3 or 4"
	}
	if !ocpp.IsObject(f.Payload) {
		return f, "Payload must be a JSON object"
	}
	return f, ""
}

// appendUpstream appends the EMQX-compatible JSON of a frame from a charge
// point. Action is always written: on an answer it is the action of the
// call answered (beyond EMQX), "" when the gateway knows no such call;
// Late, Unsolicited and Violations only when set.
func appendUpstream(b []byte, in *ocpp.Inbound) []byte {
	if b == nil {
		// One allocation of about the right size instead of the four or
		// five an append from nil takes to grow to a MeterValues frame.
		b = make([]byte, 0, upstreamOverhead+len(in.UniqueID)+len(in.Action)+len(in.Payload)+
			len(in.ErrorCode)+len(in.ErrorDescription)+len(in.ErrorDetails)+len(in.Violations))
	}
	b = append(b, `{"MessageTypeId":`...)
	b = strconv.AppendUint(b, uint64(in.Type), 10)
	b = append(b, `,"UniqueId":`...)
	b = ocpp.AppendString(b, in.UniqueID)
	b = append(b, `,"Action":`...)
	b = ocpp.AppendString(b, in.Action) // "" on an answer to a call the gateway does not know
	if in.Type == ocpp.TypeCallError {
		b = appendErrorFields(b, in.ErrorCode, in.ErrorDescription)
		b = append(b, `,"ErrorDetails":`...)
		b = appendRaw(b, in.ErrorDetails)
	} else {
		b = append(b, `,"Payload":`...)
		b = appendRaw(b, in.Payload)
	}
	if len(in.Violations) != 0 {
		b = append(b, `,"Violations":`...)
		b = append(b, in.Violations...)
	}
	if in.Late {
		b = append(b, `,"Late":true`...)
	}
	if in.Unsolicited {
		b = append(b, `,"Unsolicited":true`...)
	}
	return append(b, '}')
}

// upstreamOverhead is what appendUpstream writes besides the frame's
// parts (field names, quotes, flags), with room for a few escapes.
const upstreamOverhead = 128

// appendGatewayError appends the CALLERROR-shaped message the gateway
// publishes when it cannot deliver a command, so consumers that parse the
// charge point's CALLERRORs parse it too.
func appendGatewayError(b []byte, id, action, code string, err *ocpp.GatewayError) []byte {
	b = append(b, `{"MessageTypeId":4,"UniqueId":`...)
	b = ocpp.AppendString(b, id)
	b = append(b, `,"Action":`...)
	b = ocpp.AppendString(b, action)
	b = appendErrorFields(b, code, err.Description)
	b = append(b, `,"ErrorDetails":{"origin":"gateway","reason":`...)
	b = ocpp.AppendString(b, string(err.Reason))
	if len(err.Violations) != 0 {
		b = append(b, `,"violations":`...)
		b = append(b, err.Violations...)
	}
	return append(b, "}}"...)
}

func appendErrorFields(b []byte, code, desc string) []byte {
	b = append(b, `,"ErrorCode":`...)
	b = ocpp.AppendString(b, code)
	b = append(b, `,"ErrorDescription":`...)
	return ocpp.AppendString(b, desc)
}

func appendRaw(b []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return append(b, '{', '}')
	}
	return append(b, raw...)
}

// appendPresence appends a presence message: the charge point's state, not
// a log of sockets. at is RFC 3339 UTC with milliseconds.
func appendPresence(b []byte, s ocpp.SessionInfo, online bool, reason ocpp.Reason, at time.Time) []byte {
	b = append(b, `{"cid":`...)
	b = ocpp.AppendString(b, s.CID)
	if online {
		b = append(b, `,"state":"online"`...)
	} else {
		b = append(b, `,"state":"offline"`...)
	}
	b = append(b, `,"at":"`...)
	b = at.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","protocol":`...)
	b = ocpp.AppendString(b, string(s.Protocol))
	b = append(b, `,"remote":`...)
	b = ocpp.AppendString(b, s.Remote)
	if !online {
		b = append(b, `,"reason":`...)
		b = ocpp.AppendString(b, string(reason))
	}
	return append(b, '}')
}
