// Package schemas validates OCPP-J payloads against the JSON schemas of their action.
//
// The schemas are our own: each protocol version has a Go table of message definitions
// (defs16.go for OCPP 1.6 and its Security extension, 39 actions) from which `go generate`
// writes draft-04 JSON schema files (ocpp16/<Action>Request.json, …Response.json, ids
// "urn:OCPP:1.6:2019:12:<Action>Request"). Those files are committed and embedded; Load compiles
// them once, optionally replacing some with a vendor's files by id (Options.Dir).
//
// Load compiles every schema twice: into the compiled validator of this package, which checks a
// payload in one scan of its bytes without decoding it and without allocating when it is valid
// (Check, and Scan for the frame parser, which also finds where the payload ends), and with
// gojsonschema, the reference engine the compiled validator is tested against and the engine for
// the schemas it cannot compile (a vendor schema using, say, "pattern"; see Set.Fallbacks).
//
// Check maps schema violations to the OCPP-J error codes in the order docs/topics.md ("Schema violations") fixes: missing
// required field (OccurenceConstraintViolation), wrong type (TypeConstraintViolation), enum,
// length, range, format or multipleOf (PropertyConstraintViolation), unexpected property
// (FormationViolation).
//
// Formats, stricter or more tolerant than gojsonschema's defaults, on purpose:
//   - date-time is RFC 3339 with a required offset ("Z" or "±hh:mm"). A date-time without an
//     offset ("2024-01-01T10:00:00") is rejected although ajv accepts it: RFC 3339 forbids it and
//     the instant it names is unknown. A date alone ("2024-01-01") is rejected.
//   - uri is an absolute RFC 3986 URI: scheme required, no spaces or non-ASCII unless
//     percent-encoded.
//   - multipleOf allows a 1e-6 tolerance on value/multiple, as ajv (ocpp-rpc) does, so
//     0.30000000000000004 is a multiple of 0.1 as a charge point computing in floats means it.
//
// The date-time and uri checkers are registered in gojsonschema's process-wide format table,
// once (sync.Once), by the first Load.
package schemas

//go:generate go test -run=TestGeneratedSchemas -count=1 . -args -update
