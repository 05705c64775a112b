// Package importrules holds no code, only a test that enforces the import
// direction of docs/ARCHITECTURE ("Imports flow one way"): leaves such as
// broker/topic and schemas import no project package, hooks know nothing of
// the broker or OCPP, ocpp knows nothing of MQTT, and nothing imports cmd.
// Breaking a rule fails `go test ./...`, so the layering cannot erode
// unnoticed.
package importrules
