package ocpp

import "bytes"

// This file lends ParseFrame's scanner to a caller that reads a JSON
// object of its own in one pass: the broker's decoder of the EMQX-shaped
// command an MQTT client publishes. The object is read as encoding/json
// reads it (the same syntax, depth limit and string decoding); what the
// members mean is the caller's.

// ScanObject reads data as one JSON object (white space around it allowed,
// nothing else) and calls member for each member in order, with its key
// decoded and the offset in data where its value starts. member returns
// the offset just past that value, from SkipValue or ScanPayload, or -1 to
// stop. ScanObject reports whether data was one well-formed object and
// every member call went on. It does not check UTF-8; the caller does, as
// the gateway does for a frame. key is only valid during the call.
func ScanObject(data []byte, member func(key []byte, at int) (end int)) bool {
	s := scanner{data: data}
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	for {
		k := i
		if i = s.key(i); i < 0 {
			return false
		}
		raw := data[k:i]
		raw = raw[:bytes.LastIndexByte(raw, '"')+1] // the quoted key without its colon
		key := raw[1 : len(raw)-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			key = []byte(unquote(raw, false))
		}
		if i = member(key, i); i < 0 {
			return false
		}
		i = skipSpace(data, i)
		if i == len(data) {
			return false
		}
		switch data[i] {
		case '}':
			return skipSpace(data, i+1) == len(data)
		case ',':
			i = skipSpace(data, i+1)
		default:
			return false
		}
	}
}

// SkipValue returns the offset just past the JSON value at data[at], a
// member of a ScanObject object, or -1 when no well-formed value starts
// there.
func SkipValue(data []byte, at int) int {
	s := scanner{data: data}
	return s.value(at, 1)
}

// ScanPayload reads the member value at data[at], the payload of a CALL
// of action, with sv.ScanCall: one pass both finds its end and checks it.
// It returns the offset past it (-1: not well-formed JSON, or nested
// deeper than encoding/json allows) and ScanCall's verdict. Like the frame
// parser, it checks nesting depth itself for a payload long enough to
// exceed it, so that the verdict on the syntax does not depend on the
// validator; UTF-8 is the caller's.
func ScanPayload(data []byte, at int, sv ScanValidator, action string) (end int, ce *CallError) {
	n, ce := sv.ScanCall(action, data[at:])
	switch {
	case n <= 0 || n > len(data)-at:
		return -1, nil
	case n >= 2*(maxNestingDepth-1):
		if SkipValue(data, at) < 0 {
			return -1, nil
		}
	}
	return at + n, ce
}

// Unquote returns the value of a JSON string already scanned (raw holds
// its quotes), decoded as encoding/json decodes it into a Go string. A
// known action name or error code costs no allocation.
func Unquote(raw []byte) string {
	return unquote(raw, true)
}
