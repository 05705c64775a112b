package sim

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// The payloads below are OCPP 1.6 as the gateway checks it (schemas/defs16.go): a charge point
// that sent anything else would be answered with a CALLERROR and measure nothing. The package's
// tests check every one against the project's schemas.

// The actions the simulated charge points can send on schedule (Options.Action): each is a
// message real chargers send often, so a load test measures what a depot produces.
const (
	// ActionHeartbeat is the smallest call ({}), the default: it measures the gateway's
	// per-message cost.
	ActionHeartbeat = "Heartbeat"
	// ActionStatusNotification cycles a connector through a charging session.
	ActionStatusNotification = "StatusNotification"
	// ActionMeterValues reports an energy register and a power sample, the bulk of a busy
	// depot's traffic.
	ActionMeterValues = "MeterValues"
	// ActionBootNotification is what every charge point sends on connecting: as the scheduled
	// action it measures a reboot storm.
	ActionBootNotification = "BootNotification"
	// ActionDataTransfer carries vendor data; Options.PayloadBytes pads it to a size.
	ActionDataTransfer = "DataTransfer"
)

// vendorID identifies the simulator in DataTransfer (vendorId is at most 255 characters).
const vendorID = "chargemq-sim"

// timestamp formats t as OCPP wants date-times: RFC 3339 UTC with milliseconds.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// connectorStatus returns the connector state of StatusNotification number seq: it cycles
// through a charging session.
func connectorStatus(seq uint64) string {
	switch seq % 4 {
	case 0:
		return "Available"
	case 1:
		return "Preparing"
	case 2:
		return "Charging"
	}
	return "Finishing"
}

// appendString appends s as a JSON string. Strings from the wire (a command's UniqueId) may
// hold anything; strconv.Quote's escapes are not all JSON.
func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// callPayload returns the payload of charge point cid's call number seq of action: the same
// inputs give the same bytes, except for the time. MeterValues reports a register that grows
// by 100 Wh a call; StatusNotification cycles through a charging session. An action it does
// not know gets {} (only Heartbeat's schema takes it; Options.Validate refuses the others).
func callPayload(action, cid string, seq uint64, now time.Time) []byte {
	ts := timestamp(now)
	switch action {
	case ActionBootNotification:
		b := []byte(`{"chargePointVendor":"chargemq","chargePointModel":"sim"`)
		if len(cid) <= 25 { // chargePointSerialNumber is CiString25
			b = append(b, `,"chargePointSerialNumber":`...)
			b = appendString(b, cid)
		}
		return append(b, `,"firmwareVersion":"sim-1"}`...)
	case ActionStatusNotification:
		return []byte(`{"connectorId":1,"errorCode":"NoError","status":"` + connectorStatus(seq) +
			`","timestamp":"` + ts + `"}`)
	case ActionMeterValues:
		wh := strconv.FormatUint(seq*100, 10)
		return []byte(`{"connectorId":1,"meterValue":[{"timestamp":"` + ts + `","sampledValue":[` +
			`{"value":"` + wh + `","context":"Sample.Periodic","measurand":"Energy.Active.Import.Register","unit":"Wh"},` +
			`{"value":"7360","context":"Sample.Periodic","measurand":"Power.Active.Import","unit":"W"}]}]}`)
	case ActionDataTransfer:
		return dataTransferPayload(0)
	}
	return []byte(`{}`)
}

// dataTransferPayload returns a DataTransfer payload of exactly size bytes, padded in "data"
// ('x's need no escaping), or the smallest one when size is smaller than that.
func dataTransferPayload(size int) []byte {
	const head, tail = `{"vendorId":"` + vendorID + `","messageId":"load","data":"`, `"}`
	pad := size - len(head) - len(tail)
	if pad < 0 {
		pad = 0
	}
	b := make([]byte, 0, len(head)+pad+len(tail))
	b = append(b, head...)
	b = append(b, strings.Repeat("x", pad)...)
	return append(b, tail...)
}

// minDataTransferSize is the size of the smallest padded DataTransfer payload.
func minDataTransferSize() int { return len(dataTransferPayload(0)) }

// callFrame returns the OCPP-J CALL [2,"uid","action",payload]. uid and action come from the
// simulator and are plain ASCII, so they need no escaping.
func callFrame(uid, action string, payload []byte) []byte {
	b := make([]byte, 0, len(uid)+len(action)+len(payload)+16)
	b = append(b, `[2,"`...)
	b = append(b, uid...)
	b = append(b, `","`...)
	b = append(b, action...)
	b = append(b, `",`...)
	b = append(b, payload...)
	return append(b, ']')
}

// callResultFrame returns the OCPP-J CALLRESULT [3,"uid",payload].
func callResultFrame(uid string, payload []byte) []byte {
	b := make([]byte, 0, len(uid)+len(payload)+16)
	b = append(b, `[3,`...)
	b = appendString(b, uid)
	b = append(b, ',')
	b = append(b, payload...)
	return append(b, ']')
}

// callErrorFrame returns the OCPP-J CALLERROR [4,"uid","code","description",{}].
func callErrorFrame(uid, code, description string) []byte {
	b := []byte(`[4,`)
	b = appendString(b, uid)
	b = append(b, ',')
	b = appendString(b, code)
	b = append(b, ',')
	b = appendString(b, description)
	return append(b, `,{}]`...)
}

// upstreamAnswer is the CALLRESULT payload the responder sends for a charge point's CALL of
// action: what a permissive central system answers (BootNotification Accepted with interval
// seconds, Authorize Accepted, StartTransaction with transaction txID). It reports false for an
// action a charge point may not send, which the responder answers with NotImplemented.
func upstreamAnswer(action string, now time.Time, interval int, txID int64) ([]byte, bool) {
	switch action {
	case "BootNotification":
		return []byte(`{"status":"Accepted","currentTime":"` + timestamp(now) + `","interval":` +
			strconv.Itoa(interval) + `}`), true
	case "Heartbeat":
		return []byte(`{"currentTime":"` + timestamp(now) + `"}`), true
	case "Authorize":
		return []byte(`{"idTagInfo":{"status":"Accepted"}}`), true
	case "StartTransaction":
		return []byte(`{"idTagInfo":{"status":"Accepted"},"transactionId":` + strconv.FormatInt(txID, 10) + `}`), true
	case "StopTransaction":
		return []byte(`{"idTagInfo":{"status":"Accepted"}}`), true
	case "DataTransfer", "SignCertificate":
		return []byte(`{"status":"Accepted"}`), true
	case "MeterValues", "StatusNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
		"LogStatusNotification", "SecurityEventNotification", "SignedFirmwareStatusNotification":
		return []byte(`{}`), true
	}
	return nil, false
}

// commandAnswers are the simulated charge point's answers to the central system's CALLs: it
// accepts what costs a real charger nothing to accept (Reset, ChangeAvailability,
// ChangeConfiguration, RemoteStart/StopTransaction, ClearCache, DataTransfer) without doing it,
// and declines what it cannot pretend (reservations, local lists, charging profiles,
// certificates, logs, triggered messages). It is a function so the package holds no mutable
// table.
func commandAnswers(action string) (string, bool) {
	switch action {
	case "Reset", "ChangeAvailability", "ChangeConfiguration", "ClearCache", "RemoteStartTransaction",
		"RemoteStopTransaction", "DataTransfer":
		return `{"status":"Accepted"}`, true
	case "UnlockConnector":
		return `{"status":"Unlocked"}`, true
	case "GetConfiguration":
		return `{"configurationKey":[{"key":"HeartbeatInterval","readonly":false,"value":"60"}]}`, true
	case "GetDiagnostics", "UpdateFirmware":
		return `{}`, true
	case "GetLocalListVersion":
		return `{"listVersion":0}`, true
	case "SendLocalList", "SetChargingProfile":
		return `{"status":"NotSupported"}`, true
	case "ClearChargingProfile":
		return `{"status":"Unknown"}`, true
	case "GetInstalledCertificateIds", "DeleteCertificate":
		return `{"status":"NotFound"}`, true
	case "CancelReservation", "ReserveNow", "GetCompositeSchedule", "TriggerMessage", "ExtendedTriggerMessage",
		"CertificateSigned", "InstallCertificate", "GetLog", "SignedUpdateFirmware":
		return `{"status":"Rejected"}`, true
	}
	return "", false
}

// commandAnswer returns the frame a simulated charge point answers a command with: the
// CALLRESULT of commandAnswers, or a CALLERROR NotImplemented for an action it does not know
// [OCPP-J 1.6 §4.2.3].
func commandAnswer(uid, action string) []byte {
	if p, ok := commandAnswers(action); ok {
		return callResultFrame(uid, []byte(p))
	}
	return callErrorFrame(uid, "NotImplemented", "the simulated charge point does not implement "+action)
}

// heartbeatIntervalSetting returns the interval a ChangeConfiguration payload sets, when it
// sets HeartbeatInterval to a whole number of seconds above zero: the gateway follows an
// accepted change, so the simulated charge point must too.
func heartbeatIntervalSetting(payload []byte) (time.Duration, bool) {
	var p struct{ Key, Value string }
	if json.Unmarshal(payload, &p) != nil || p.Key != "HeartbeatInterval" {
		return 0, false
	}
	n, err := strconv.Atoi(p.Value)
	if err != nil || n <= 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// bootResult reads a BootNotification answer: whether it was Accepted and the interval it
// gives (for heartbeats when accepted, before the next attempt otherwise).
func bootResult(payload []byte) (accepted bool, interval time.Duration) {
	var p struct {
		Status   string
		Interval int64
	}
	if json.Unmarshal(payload, &p) != nil {
		return false, 0
	}
	if p.Interval > 0 {
		interval = time.Duration(p.Interval) * time.Second
	}
	return p.Status == "Accepted", interval
}
