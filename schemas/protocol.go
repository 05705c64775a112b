package schemas

import (
	"embed"
	"io/fs"
)

//go:embed ocpp16
var ocpp16Files embed.FS // read-only: the generated schema files (embed.FS cannot be modified)

// codes are the OCPP-J error codes a protocol version spells for validation failures. They live
// here, once per version, because 1.6 spells "FormationViolation" where 2.x spells
// "FormatViolation" (and 2.1 also fixes "Occurrence").
type codes struct {
	formation      string // not JSON, not an object, unexpected property
	occurrence     string // missing required field
	typ            string // wrong JSON type
	property       string // enum, length, range, format, multipleOf
	notImplemented string // action not defined by the protocol
}

// protocol is everything Load needs to build a Set for one OCPP version. Adding 2.0.1 means one
// more embedded directory, one more table and one more case in lookupProtocol.
type protocol struct {
	name          string
	defaultPrefix string             // schema id prefix of the generated files
	dir           string             // directory in files holding <Action>Request.json …
	files         fs.FS              // embedded schema files
	defs          func() []actionDef // message table
	codes         codes
}

// lookupProtocol returns the description of a protocol by its WebSocket subprotocol name.
func lookupProtocol(name string) (protocol, bool) {
	switch name {
	case "ocpp1.6":
		return protocol{
			name:          "ocpp1.6",
			defaultPrefix: "urn:OCPP:1.6:2019:12:",
			dir:           "ocpp16",
			files:         ocpp16Files,
			defs:          defs16,
			codes: codes{
				formation:      "FormationViolation",
				occurrence:     "OccurenceConstraintViolation", // sic: the 1.6 spelling [OCPP-J 1.6 §4.2.3]
				typ:            "TypeConstraintViolation",
				property:       "PropertyConstraintViolation",
				notImplemented: "NotImplemented",
			},
		}, true
	}
	return protocol{}, false
}

// protocolNames lists the protocols lookupProtocol knows, for tests and error messages.
func protocolNames() []string { return []string{"ocpp1.6"} }
