package ocpp

import (
	"sort"
	"sync"
)

// Validator checks payloads against the schemas of one OCPP version. The
// ocpp package declares what it needs; the schemas package provides it
// (through an adapter in the broker), so this package never depends on a
// schema library.
type Validator interface {
	// Sender reports who may send CALLs of action: the charge point, the
	// central system, or both. ok is false when the version does not
	// define the action.
	Sender(action string) (fromChargePoint, fromCentralSystem, ok bool)
	// Check validates the request (response false) or response payload of
	// action. It returns nil when valid, else a CallError whose code is the
	// first violation's [OCPP-J 1.6 §4.2.3], whose Description names the
	// fields and whose Details lists the violations.
	Check(action string, response bool, payload []byte) *CallError
}

// ScanValidator is a Validator that can check a CALL's payload while the
// frame is split (one pass over the bytes). The gateway uses it, when the
// connection's Validator has it, for the CALLs of a charge point whose
// upstream is checked, and a command's decoder for the CALLs sent to one
// (Server.CommandValidator); CALLRESULTs are still checked with Check,
// once their action is known.
type ScanValidator interface {
	Validator
	// ScanCall validates the JSON value at the start of data (the rest of
	// the frame follows it) as the request payload of action, which
	// Sender defines as sent in that direction, and returns the offset
	// just past it. end < 0 means the bytes do not start with a valid
	// JSON value, decided as encoding/json's syntax check decides it; the
	// gateway itself checks UTF-8 (bytes that are not UTF-8 inside a
	// string are valid JSON there) and nesting depth (encoding/json's
	// limit), so ScanCall need not. ce is nil when the payload is valid,
	// else what Check would return for it. ScanCall must not keep data.
	ScanCall(action string, data []byte) (end int, ce *CallError)
}

// Checking says which directions are checked against the schemas.
type Checking uint8

// Checking modes, as the ocpp.message_format_checking values name them.
const (
	CheckUpstream   Checking = 1 << iota // frames from charge points
	CheckDownstream                      // commands for charge points
	CheckNone       Checking = 0
	CheckAll                 = CheckUpstream | CheckDownstream
)

// schemaFailures counts schema failures by direction, action and code.
type schemaFailures struct {
	mu sync.Mutex
	m  map[SchemaFailure]uint64
}

// SchemaFailure names one kind of schema failure; Count is filled in Stats.
type SchemaFailure struct {
	// Direction is "upstream" (from the charge point) or "downstream".
	Direction string `json:"direction"`
	Action    string `json:"action"`
	Code      string `json:"code"`
	Count     uint64 `json:"count"`
}

// unknownAction is the key that counts failures of actions the protocol
// does not define: a charge point or an MQTT client can invent any number
// of them, and a counter per invented name would grow without bound.
const unknownAction = "unknown"

// add counts one failure. Only actions v defines are keys of their own.
func (f *schemaFailures) add(v Validator, direction, action string, code ErrorCode) {
	if _, _, ok := v.Sender(action); !ok {
		action = unknownAction
	}
	f.mu.Lock()
	if f.m == nil {
		f.m = make(map[SchemaFailure]uint64)
	}
	f.m[SchemaFailure{Direction: direction, Action: action, Code: string(code)}]++
	f.mu.Unlock()
}

func (f *schemaFailures) snapshot() []SchemaFailure {
	f.mu.Lock()
	out := make([]SchemaFailure, 0, len(f.m))
	for k, n := range f.m {
		k.Count = n
		out = append(out, k)
	}
	f.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Direction != b.Direction {
			return a.Direction < b.Direction
		}
		if a.Action != b.Action {
			return a.Action < b.Action
		}
		return a.Code < b.Code
	})
	return out
}

// validator returns the validator for protocol p and the checking mode of
// charge point cid.
func (s *Server) validator(cid string, p Protocol) (Validator, Checking, string) {
	v := s.opts.Validators[p]
	if v == nil {
		return nil, CheckNone, ""
	}
	if s.opts.Checking == nil {
		return v, CheckAll, ""
	}
	mode, rule := s.opts.Checking(cid)
	return v, mode, rule
}

// checkCall checks a CALL from the charge point: an action the protocol
// does not define is NotImplemented, one only the central system may send
// is NotSupported, a payload that fails its schema gets the schema's code.
func (c *conn) checkCall(f *Frame) *CallError {
	if c.checks&CheckUpstream == 0 {
		return nil
	}
	if ce := senderRefusal(c.validator, f.Action); ce != nil {
		ce.UniqueID = f.UniqueID
		return ce
	}
	if ce := c.validator.Check(f.Action, false, f.Payload); ce != nil {
		ce.UniqueID = f.UniqueID
		return ce
	}
	return nil
}

// senderRefusal is checkCall's answer to a CALL of action from the charge
// point when v does not let the charge point send it, nil when it does.
// parseFrame asks it before a ScanValidator reads the payload.
func senderRefusal(v Validator, action string) *CallError {
	fromCP, _, ok := v.Sender(action)
	if !ok {
		return &CallError{Code: NotImplemented, Description: "unknown action " + action}
	}
	if !fromCP {
		return &CallError{Code: NotSupported, Description: action + " is sent by the central system, not by a charge point"}
	}
	return nil
}

// checkCommand checks a downstream command before it is queued or sent.
// An answer is checked once its action is known (checkAnswer).
func (s *Server) checkCommand(cid string, p Protocol, cmd *Command) *GatewayError {
	if cmd.Frame.Type != TypeCall {
		return nil
	}
	v, mode, _ := s.validator(cid, p)
	if mode&CheckDownstream == 0 {
		return nil
	}
	f := &cmd.Frame
	_, fromCS, ok := v.Sender(f.Action)
	var ce *CallError
	switch {
	case !ok:
		ce = &CallError{Code: NotImplemented, Description: "unknown action " + f.Action}
	case !fromCS:
		ce = &CallError{Code: NotSupported, Description: f.Action + " is sent by a charge point, not by the central system"}
	case cmd.CheckedAs == p:
		ce = cmd.PayloadRefusal // checked while it was decoded
	default:
		ce = v.Check(f.Action, false, f.Payload)
	}
	return s.invalid(v, f.Action, ce)
}

// checkAnswer checks a downstream CALLRESULT against the response schema
// of the charge point's call it answers.
func (s *Server) checkAnswer(c *conn, cmd *Command) *GatewayError {
	if cmd.Frame.Type != TypeCallResult || c.checks&CheckDownstream == 0 {
		return nil
	}
	return s.invalid(c.validator, cmd.Frame.Action, c.validator.Check(cmd.Frame.Action, true, cmd.Frame.Payload))
}

func (s *Server) invalid(v Validator, action string, ce *CallError) *GatewayError {
	if ce == nil {
		return nil
	}
	s.failures.add(v, "downstream", action, ce.Code)
	return &GatewayError{Reason: ReasonInvalidPayload, Code: ce.Code, Description: ce.Description, Violations: violations(ce.Details)}
}

// violations extracts the violations array from ErrorDetails
// {"violations":[…]} without decoding it.
func violations(details []byte) []byte {
	const key = `{"violations":`
	if len(details) > len(key)+1 && string(details[:len(key)]) == key {
		return details[len(key) : len(details)-1]
	}
	return nil
}
