package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/chargemq/chargemq/broker/certs"
	"github.com/chargemq/chargemq/ocpp"
)

// TLS listener names, as logged on the "listening" line.
const (
	ListenerOCPPTLS      = "ocpp-tls"
	ListenerOCPPTLSBasic = "ocpp-tls-basic"
	ListenerMQTTTLS      = "mqtt-tls"
	ListenerMQTTWSS      = "mqtt-wss"
	ListenerHTTPTLS      = "http-tls"
)

// How a profile 3 client certificate is bound to the charge point
// (Options.ClientCertIdentity, ocpp.client_cert_identity).
const (
	// IdentityCN: the certificate's Subject CN is the charge point id.
	IdentityCN = "cn"
	// IdentitySerial: the CN is the charge point's serial number, which
	// its BootNotification must report (OCPP 2.0.1 A00.FR.405).
	IdentitySerial = "serial"
	// IdentityNone: any certificate of the client CA is any charge point.
	IdentityNone = "none"
)

// certExpiryWarning is how long before a certificate expires the broker
// starts warning about it, at start and once a day.
const certExpiryWarning = 30 * 24 * time.Hour

// tlsListeners are the TLS listeners configured in o, by name.
func tlsListeners(o Options) map[string]string {
	m := map[string]string{}
	for name, addr := range map[string]string{
		ListenerOCPPTLS: o.OCPPTLSAddr, ListenerOCPPTLSBasic: o.OCPPTLSBasicAddr,
		ListenerMQTTTLS: o.MQTTTLSAddr, ListenerMQTTWSS: o.MQTTWSSAddr, ListenerHTTPTLS: o.HTTPTLSAddr,
	} {
		if addr != "" {
			m[name] = addr
		}
	}
	return m
}

// checkTLS refuses a TLS set-up that cannot work: a TLS listener without
// a certificate, a second OCPP TLS port without the client CA that tells
// the two apart, an unknown identity rule. With loadCerts it also loads
// the files.
func checkTLS(o Options, loadCerts bool) (*certs.Store, error) {
	switch o.ClientCertIdentity {
	case "", IdentityCN, IdentitySerial, IdentityNone:
	default:
		return nil, fmt.Errorf("ocpp.client_cert_identity: want cn, serial or none (got %q)", o.ClientCertIdentity)
	}
	lns := tlsListeners(o)
	if len(lns) == 0 {
		return nil, nil
	}
	if len(o.TLS.Certificates) == 0 {
		for _, name := range []string{ListenerOCPPTLS, ListenerOCPPTLSBasic, ListenerMQTTTLS, ListenerMQTTWSS, ListenerHTTPTLS} {
			if _, ok := lns[name]; ok {
				return nil, fmt.Errorf("tls.certificates: the %s listener needs a certificate (--tls-cert and --tls-key)", name)
			}
		}
	}
	if o.OCPPTLSBasicAddr != "" && o.TLS.ClientCA == "" {
		return nil, fmt.Errorf("listeners.ocpp_tls_basic: serves profile 2 next to a profile 3 port, so it needs tls.client_ca " +
			"(without a client CA, listeners.ocpp_tls serves profile 2 itself)")
	}
	if !loadCerts {
		return nil, nil
	}
	st, err := certs.Load(o.TLS)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return st, nil
}

// tlsConfig is the TLS configuration of listener name: the profile 3
// OCPP port requires a client certificate of the client CA, MQTT ports
// verify one if given (a client may log in with it), the rest ask none.
func (b *Broker) tlsConfig(name string) (*tls.Config, error) {
	auth := tls.NoClientCert
	switch name {
	case ListenerOCPPTLS:
		if b.certs.HasClientCA() {
			auth = tls.RequireAndVerifyClientCert
		}
	case ListenerMQTTTLS, ListenerMQTTWSS:
		if b.certs.HasClientCA() {
			auth = tls.VerifyClientCertIfGiven
		}
	}
	// A WebSocket upgrade needs HTTP/1.1; the admin API over https offers
	// HTTP/2 too, since a browser keeps at most six HTTP/1.1 connections
	// to a server and each open page holds event streams.
	var protos []string
	switch name {
	case ListenerMQTTTLS:
	case ListenerHTTPTLS:
		protos = []string{"h2", "http/1.1"}
	default:
		protos = []string{"http/1.1"}
	}
	return b.certs.Config(auth, protos...)
}

// ReloadTLS reads the certificates and the client CA again (SIGHUP).
// Connections are not dropped: new handshakes see the new files. A file
// that does not load leaves the current ones in place.
func (b *Broker) ReloadTLS() error {
	if b.certs == nil {
		return nil
	}
	if err := b.certs.Reload(); err != nil {
		b.log.Error("certificates not reloaded; the current ones stay", "error", err)
		return err
	}
	b.log.Info("certificates reloaded", "certificates", len(b.certs.Summary()))
	b.warnExpiring(time.Now())
	return nil
}

// warnExpiring logs each certificate that expires within 30 days, or has.
func (b *Broker) warnExpiring(now time.Time) {
	for _, e := range b.certs.Expiring(now, certExpiryWarning) {
		if e.Expired {
			b.log.Error("certificate has expired", "file", e.File, "subject", e.Subject, "not_after", e.NotAfter)
			continue
		}
		b.log.Warn("certificate expires soon", "file", e.File, "subject", e.Subject, "not_after", e.NotAfter,
			"days_left", int(e.NotAfter.Sub(now).Hours()/24))
	}
}

// watchExpiry warns about expiring certificates once a day until ctx ends.
func (b *Broker) watchExpiry(ctx context.Context) {
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			b.warnExpiring(now)
		}
	}
}

// chargePointAuth decides a charge point's handshake: the certificate
// rules on profile 3, then the users file's credentials (when it has
// any, or sent some). A charge point admitted by its certificate needs
// no users-file entry, but credentials it sends must be right.
func (b *Broker) chargePointAuth(r ocpp.AuthRequest) ocpp.AuthResult {
	byCert := ocpp.AuthResult{OK: true}
	if r.Certificate != nil {
		if byCert = b.certificateRules(r.CID, r.Certificate); !byCert.OK {
			return byCert
		}
	}
	if b.auth == nil || r.Certificate != nil && !r.HasCredentials {
		return byCert
	}
	res := b.auth.chargePoint(r)
	res.BootSerial = byCert.BootSerial
	return res
}

// certificateRules binds a verified client certificate to the charge
// point it claims to be (ocpp.client_cert_identity) and to the operator
// (ocpp.client_cert_organization, A00.FR.404). A verified certificate that
// breaks them is refused 403: the TLS stack knows who it is, and it may
// not be this charge point.
func (b *Broker) certificateRules(cid string, cert *x509.Certificate) ocpp.AuthResult {
	if org := b.opts.ClientCertOrganization; org != "" && !slices.Contains(cert.Subject.Organization, org) {
		return ocpp.AuthResult{Forbidden: true, Reason: "certificate_organization"}
	}
	cn := cert.Subject.CommonName
	switch b.opts.ClientCertIdentity {
	case IdentityNone:
		return ocpp.AuthResult{OK: true}
	case IdentitySerial:
		if cn == "" {
			return ocpp.AuthResult{Forbidden: true, Reason: "certificate_without_cn"}
		}
		return ocpp.AuthResult{OK: true, BootSerial: cn}
	default:
		if cn != cid {
			return ocpp.AuthResult{Forbidden: true, Reason: "certificate_cn_mismatch"}
		}
		return ocpp.AuthResult{OK: true}
	}
}

// tlsConn is a connection that knows its TLS state: *tls.Conn, and the
// broker's wrappers of it.
type tlsConn interface {
	ConnectionState() tls.ConnectionState
}

// verifiedCN is the Subject CN of the client certificate c's TLS stack
// verified, if any.
func verifiedCN(c net.Conn) (string, bool) {
	tc, ok := c.(tlsConn)
	if !ok {
		return "", false
	}
	cs := tc.ConnectionState()
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", false
	}
	return cs.VerifiedChains[0][0].Subject.CommonName, true
}

// tlsFailed counts and logs, sampled, a TLS handshake that failed: a
// charger with an expired certificate or one of another CA leaves no
// other trace, since it never reaches the OCPP or MQTT layer.
func (b *Broker) tlsFailed(listener, remote string, err error) {
	n := b.counts.refused(refusedTLSHandshake)
	level := slog.LevelDebug
	if n <= logFirst || n%logEvery == 0 {
		level = slog.LevelInfo
	}
	b.log.Log(context.Background(), level, "TLS handshake failed", "listener", listener, "remote", remote,
		"error", err, "refused_so_far", n)
}

// httpErrorLog is the error log of an HTTP server: net/http reports a
// failed TLS handshake only there ("http: TLS handshake error from ADDR:
// ERR"), so those lines are counted and logged as tlsFailed; the rest go
// to the debug log.
func (b *Broker) httpErrorLog(listener string) *log.Logger {
	debug := slog.NewLogLogger(b.log.Handler(), slog.LevelDebug)
	return log.New(logFunc(func(line string) {
		const prefix = "http: TLS handshake error from "
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			remote, msg, _ := strings.Cut(rest, ": ")
			b.tlsFailed(listener, remote, handshakeError(strings.TrimSpace(msg)))
			return
		}
		debug.Print(line)
	}), "", 0)
}

// logFunc adapts a function to the io.Writer of a log.Logger, which
// writes each line in one call.
type logFunc func(line string)

func (f logFunc) Write(p []byte) (int, error) {
	f(string(p))
	return len(p), nil
}

// handshakeError is a TLS handshake failure net/http reported as text.
type handshakeError string

func (e handshakeError) Error() string { return string(e) }

// handshakeMQTT completes the TLS handshake of an mqtts connection before
// mochi reads it, within the connect timeout already set on it, so that a
// failure is reported as one rather than as a connection that ended.
func (b *Broker) handshakeMQTT(listener string, tc *tls.Conn) bool {
	if err := tc.Handshake(); err != nil {
		b.tlsFailed(listener, tc.RemoteAddr().String(), err)
		return false
	}
	return true
}
