package ocpp

import (
	"encoding/json"
	"errors"
)

// ErrorCode is an OCPP-J CALLERROR code as OCPP 1.6 spells it. Protocol.Spell
// turns it into the spelling of another protocol version, so the rest of the
// code base names one set of constants.
type ErrorCode string

// The OCPP-J 1.6 error codes [OCPP-J 1.6 §4.2.3], spelled as the standard
// spells them (including the "Occurence" typo the OCA kept).
const (
	NotImplemented               ErrorCode = "NotImplemented"
	NotSupported                 ErrorCode = "NotSupported"
	InternalError                ErrorCode = "InternalError"
	ProtocolError                ErrorCode = "ProtocolError"
	SecurityError                ErrorCode = "SecurityError"
	FormationViolation           ErrorCode = "FormationViolation"
	PropertyConstraintViolation  ErrorCode = "PropertyConstraintViolation"
	OccurenceConstraintViolation ErrorCode = "OccurenceConstraintViolation"
	TypeConstraintViolation      ErrorCode = "TypeConstraintViolation"
	GenericError                 ErrorCode = "GenericError"
	// MessageTypeNotSupported is the 2.x code for an unknown MessageTypeId;
	// OCPP 1.6 has no such code and spells it ProtocolError.
	MessageTypeNotSupported ErrorCode = "MessageTypeNotSupported"
)

// CallError is an error that carries its OCPP wire code. It converts to a
// CALLERROR frame in one place (Frame), so every refusal the gateway makes is
// shaped the same way.
type CallError struct {
	Code        ErrorCode
	Description string
	// Details is the ErrorDetails object; nil encodes as {}.
	Details json.RawMessage
	// UniqueID is the id of the frame the error answers, "" when unreadable.
	UniqueID string
}

// Error implements error.
func (e *CallError) Error() string {
	if e.Description == "" {
		return "ocpp: " + string(e.Code)
	}
	return "ocpp: " + string(e.Code) + ": " + e.Description
}

// Frame returns the CALLERROR frame answering the frame the error is about,
// with the code spelled for protocol p. An unreadable UniqueId becomes "-1".
func (e *CallError) Frame(p Protocol) Frame {
	id := e.UniqueID
	if id == "" {
		id = "-1"
	}
	return Frame{
		Type:             TypeCallError,
		UniqueID:         id,
		ErrorCode:        p.Spell(e.Code),
		ErrorDescription: e.Description,
		ErrorDetails:     e.Details,
	}
}

// AsCallError returns err as a *CallError, wrapping any other error as an
// InternalError so that a caller always has a code to send.
func AsCallError(err error) *CallError {
	var ce *CallError
	if errors.As(err, &ce) {
		return ce
	}
	return &CallError{Code: InternalError, Description: err.Error()}
}

// Protocol is a negotiated OCPP-J WebSocket subprotocol, e.g. "ocpp1.6".
type Protocol string

// The protocols the gateway speaks.
const (
	OCPP16 Protocol = "ocpp1.6"
)

// Spell returns code as protocol p spells it: OCPP 2.x renamed
// FormationViolation to FormatViolation and reports an unknown message type
// as MessageTypeNotSupported, where 1.6 says ProtocolError.
func (p Protocol) Spell(code ErrorCode) string {
	switch p {
	case OCPP16, "":
		if code == MessageTypeNotSupported {
			return string(ProtocolError)
		}
		return string(code)
	default:
		if code == FormationViolation {
			return "FormatViolation"
		}
		return string(code)
	}
}
