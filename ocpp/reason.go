package ocpp

// Reason names why a connection ended or why a downstream command failed.
// The strings are part of the wire contract: they appear in presence
// messages, in gateway errors' ErrorDetails.reason and in metrics labels.
type Reason string

// Why a connection ended.
const (
	ReasonClosed           Reason = "closed"            // the charge point closed it
	ReasonReplaced         Reason = "replaced"          // a new connection with the same id took over
	ReasonShutdown         Reason = "shutdown"          // the gateway is stopping
	ReasonNetworkError     Reason = "network_error"     // the socket failed
	ReasonSlowConsumer     Reason = "slow_consumer"     // the charge point stopped reading
	ReasonBinaryFrame      Reason = "binary_frame"      // OCPP-J is text only (closed 1003)
	ReasonFrameTooLarge    Reason = "frame_too_large"   // over max_frame_size (closed 1009)
	ReasonIdleTimeout      Reason = "idle_timeout"      // no OCPP frame within idle_timeout
	ReasonHeartbeatTimeout Reason = "heartbeat_timeout" // silent for the heartbeat window
	ReasonKicked           Reason = "kicked"            // closed by an operator
	// ReasonAuthRevoked: the charge point's credentials were revoked or
	// changed while it was connected (Server.Revoke, Server.RevokeWhere),
	// closed 1008. It must authenticate again to come back.
	ReasonAuthRevoked Reason = "auth_revoked"
	// ReasonAuthFailed: a charge point whose certificate is bound to its
	// serial number (AuthResult.BootSerial) did not prove it: its
	// BootNotification named another serial or none, or it sent none
	// within idle_timeout. Closed 1008.
	ReasonAuthFailed Reason = "auth_failed"
)

// Why a downstream command got a gateway error instead of an answer.
const (
	ReasonOffline        Reason = "offline"
	ReasonQueueFull      Reason = "queue_full"
	ReasonTimeout        Reason = "timeout"
	ReasonInvalidPayload Reason = "invalid_payload"
	ReasonMalformed      Reason = "malformed"
	ReasonUnknownCall    Reason = "unknown_call"
	ReasonDuplicateID    Reason = "duplicate_id"
	ReasonTooLarge       Reason = "too_large"
)

// GatewayError is the gateway's refusal of a downstream command: why, and the
// OCPP code and text the error message carries so consumers that parse
// CALLERRORs understand it.
type GatewayError struct {
	Reason      Reason
	Code        ErrorCode
	Description string
	// Violations is a JSON array of schema violations (invalid_payload
	// only), published in ErrorDetails.violations.
	Violations []byte
}

// Error implements error.
func (e *GatewayError) Error() string {
	return "ocpp: command refused: " + string(e.Reason) + ": " + e.Description
}

func gatewayError(r Reason, desc string) *GatewayError {
	return &GatewayError{Reason: r, Code: GenericError, Description: desc}
}
