// Package users holds the accounts that may connect to chargemq and decides
// who they are and what they may do: charge points (OCPP security profile 1,
// HTTP Basic auth), MQTT users with topic ACLs, and admins.
//
// The users file is YAML:
//
//	users:
//	  - name: CP001
//	    role: chargepoint
//	    password: "sha256:<salt>:<hash>"
//	  - name: csms
//	    role: mqtt
//	    password: "bcrypt:$2a$10$..."
//	    pub: ["ocpp/cs/#"]
//	    sub: ["ocpp/#", "csms/%u/#"]
//
// A *DB is what the servers hold: it is loaded once, never changed, and safe
// for concurrent use, so a reload builds a new DB and swaps the pointer. The
// file functions (AddUser, SetUser, RemoveUser, Import, List) are for the
// `chargemq users` CLI; they rewrite the file atomically and refuse to write
// anything that Parse would not load.
//
// Backoff slows down guessing: the caller asks it before checking a password
// and tells it the outcome.
//
// This package is a leaf: it imports no project package, only the standard
// library, golang.org/x/crypto/bcrypt and go.yaml.in/yaml/v3.
package users
