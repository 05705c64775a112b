package ocpp

import (
	"context"
	"encoding/json"
	"time"

	"github.com/coder/websocket"
)

// Proving a certificate's serial number. With ocpp.client_cert_identity
// serial, the rule is the one OCPP words (2.0.1 A00.FR.405): the client
// certificate's CN is the charge point's serial number, which the charge
// point reports in its BootNotification. Until that BootNotification has
// matched, the connection is not attached: it takes over no earlier
// connection, gets no presence and no commands, and nothing it sends is
// forwarded. It keeps the handshake slot it was admitted with, so
// ocpp.max_handshakes bounds the connections still proving and
// ocpp.max_connections counts them.

// awaitProof registers a connection that must prove its serial and arms
// its deadline: idle_timeout from the upgrade (call_timeout when
// idle_timeout is off), whatever the charge point sends meanwhile.
func (s *Server) awaitProof(c *conn) {
	c.unproven.Store(true)
	s.mu.Lock()
	s.live[c] = struct{}{}
	s.mu.Unlock()
	d := s.opts.IdleTimeout
	if d <= 0 {
		d = s.opts.CallTimeout
	}
	c.proveTimer = time.AfterFunc(d, func() {
		if !s.gate.enter() {
			return
		}
		defer s.gate.leave()
		if c.unproven.Load() {
			c.log.Info("charge point refused: no BootNotification proving the certificate's serial number in time",
				"certificate_serial", c.bootSerial, "within", d)
			s.stats.refused(refusedSerialMismatch)
			c.shut(ReasonAuthFailed, websocket.StatusPolicyViolation)
		}
	})
	// As in attach: either Shutdown saw c in live, or this sees the gate
	// closed.
	if s.gate.isClosed() {
		c.shut(ReasonShutdown, websocket.StatusGoingAway)
	}
}

// prove handles a CALL, already checked, of a connection that has not
// proven its serial. It reports whether the call goes on as usual: only
// the BootNotification that proves the serial does, once the connection
// is attached. Reader goroutine only.
func (c *conn) prove(f *Frame) bool {
	s := c.srv
	if f.Action != "BootNotification" {
		s.stats.in(inBeforeBoot)
		c.logRefused("call refused before BootNotification", "action", f.Action, "unique_id", f.UniqueID)
		c.reply(&CallError{Code: SecurityError, UniqueID: f.UniqueID,
			Description: "send BootNotification first: this connection's certificate is bound to the charge point's serial number"})
		return false
	}
	var boot struct {
		Serial *string `json:"chargePointSerialNumber"`
	}
	_ = json.Unmarshal(f.Payload, &boot) // checkCall has parsed it already when checking is on
	if boot.Serial == nil || *boot.Serial != c.bootSerial {
		reported := "(none)"
		if boot.Serial != nil {
			reported = *boot.Serial
		}
		c.log.Warn("charge point refused: BootNotification serial number does not match its certificate",
			"certificate_serial", c.bootSerial, "reported_serial", reported)
		s.stats.refused(refusedSerialMismatch)
		c.rejectBoot(f.UniqueID)
		c.shut(ReasonAuthFailed, websocket.StatusPolicyViolation)
		return false
	}
	c.unproven.Store(false)
	c.proveTimer.Stop()
	s.attach(c)
	s.handshakes.Add(-1)
	if s.revokedSince(c.revocationsBefore, c.info) {
		c.shut(ReasonAuthRevoked, websocket.StatusPolicyViolation)
		return false
	}
	return true
}

// rejectBoot answers a BootNotification Rejected on the gateway's own
// authority, written before the connection is closed so the charge point
// learns why [OCPP 1.6 §4.2: Rejected means "not accepted by the central
// system"]. The interval is the heartbeat interval, as a Rejected answer
// asks the charge point to wait that long before trying again.
func (c *conn) rejectBoot(uniqueID string) {
	payload, _ := json.Marshal(struct {
		Status      string `json:"status"`
		CurrentTime string `json:"currentTime"`
		Interval    int    `json:"interval"`
	}{"Rejected", time.Now().UTC().Format(time.RFC3339), int(c.srv.opts.HeartbeatInterval / time.Second)})
	f := Frame{Type: TypeCallResult, UniqueID: uniqueID, Action: "BootNotification", Payload: payload}
	raw := f.AppendJSON(nil)
	ctx, cancel := context.WithTimeout(context.Background(), c.srv.opts.WriteTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, raw); err == nil {
		c.countOut(&f, raw)
	}
}

// dropUnproven ends a connection that never proved its serial: it gives
// back the handshake slot and, when it was refused for its serial and no
// other connection of the charge point is online, publishes the charge
// point offline with reason auth_failed, so the operator sees why it did
// not come online. Called by finish instead of detach.
func (s *Server) dropUnproven(c *conn, reason Reason) {
	c.proveTimer.Stop()
	s.handshakes.Add(-1)
	s.stats.disconnected(reason)
	c.log.Info("charge point disconnected before proving its certificate's serial number", "reason", reason)
	if reason != ReasonAuthFailed {
		return
	}
	st := s.acquire(c.cid)
	defer st.events.Unlock()
	st.mu.Lock()
	online := st.conn != nil
	st.mu.Unlock()
	if !online {
		s.opts.Handler.Disconnected(c.info, reason, false)
	}
	s.forgetIfIdle(st)
}
