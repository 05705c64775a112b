package broker

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/chargemq/chargemq/ocpp"
)

// maxUniqueIDLen is the longest UniqueId OCPP-J allows [OCPP-J 1.6 §4.1.4].
const maxUniqueIDLen = 36

// command is the EMQX-compatible JSON shape of a message on the downstream
// topic. Pointers tell a missing member from an empty one.
type command struct {
	MessageTypeID    *json.Number    `json:"MessageTypeId"`
	UniqueID         *string         `json:"UniqueId"`
	Action           string          `json:"Action"`
	Payload          json.RawMessage `json:"Payload"`
	ErrorCode        string          `json:"ErrorCode"`
	ErrorDescription string          `json:"ErrorDescription"`
	ErrorDetails     json.RawMessage `json:"ErrorDetails"`
}

// malformed is why a downstream message could not be read as a frame, with
// the UniqueId when it could be read (for the gateway error).
type malformed struct {
	uniqueID string
	action   string
	why      string
}

func (m *malformed) Error() string { return "broker: malformed command: " + m.why }

// decodeCommand turns the JSON an MQTT client published on a downstream
// topic into an OCPP frame. It decodes once; Payload and ErrorDetails stay
// raw. An Action on a CALLRESULT or CALLERROR is accepted and ignored (the
// gateway knows which call is answered).
func decodeCommand(payload []byte) (ocpp.Frame, *malformed) {
	var c command
	if !utf8.Valid(payload) {
		return ocpp.Frame{}, &malformed{why: "payload is not UTF-8 JSON"}
	}
	err := json.Unmarshal(payload, &c)
	m := &malformed{action: c.Action}
	if c.UniqueID != nil {
		m.uniqueID = *c.UniqueID
	}
	if err != nil {
		if _, isType := err.(*json.UnmarshalTypeError); !isType {
			m.why = "payload is not a JSON object"
			return ocpp.Frame{}, m
		}
		m.why = err.Error()
		return ocpp.Frame{}, m
	}
	f := ocpp.Frame{UniqueID: m.uniqueID}
	switch {
	case c.MessageTypeID == nil:
		m.why = "MessageTypeId is missing"
		return f, m
	case c.UniqueID == nil || *c.UniqueID == "":
		m.why = "UniqueId must be a non-empty string"
		return f, m
	case len(*c.UniqueID) > maxUniqueIDLen:
		m.why = "UniqueId is longer than " + strconv.Itoa(maxUniqueIDLen) + " characters"
		return f, m
	}
	switch *c.MessageTypeID {
	case "2":
		f.Type = ocpp.TypeCall
		if c.Action == "" {
			m.why = "a CALL needs an Action"
			return f, m
		}
		f.Action = c.Action
		f.Payload = c.Payload
	case "3":
		f.Type = ocpp.TypeCallResult
		f.Payload = c.Payload
	case "4":
		f.Type = ocpp.TypeCallError
		if c.ErrorCode == "" {
			m.why = "a CALLERROR needs an ErrorCode"
			return f, m
		}
		if len(c.ErrorDetails) != 0 && string(c.ErrorDetails) != "null" && !ocpp.IsObject(c.ErrorDetails) {
			m.why = "ErrorDetails must be a JSON object"
			return f, m
		}
		f.ErrorCode = c.ErrorCode
		f.ErrorDescription = c.ErrorDescription
		if string(c.ErrorDetails) != "null" {
			f.ErrorDetails = c.ErrorDetails
		}
		return f, nil
	default:
		m.why = "MessageTypeId must be 2, 3 or 4"
		return f, m
	}
	if !ocpp.IsObject(c.Payload) {
		m.why = "Payload must be a JSON object"
		return f, m
	}
	return f, nil
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
