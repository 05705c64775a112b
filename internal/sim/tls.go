package sim

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
)

// ErrClientCertificate is matched (errors.Is) by the error of a client certificate or key
// file that cannot be read or does not hold a valid pair.
var ErrClientCertificate = errors.New("sim: client certificate")

// cidPlaceholder in a certificate or key path is replaced by the charge point's id.
const cidPlaceholder = "{cid}"

// setupTLS reads what the run's TLS needs that does not depend on a charge point: the CA
// file, a client certificate every charge point shares, the MQTT client certificate. A bad
// file there stops the run before anything dials; files named after the charge point are read
// on its dial (certCache). o is valid.
func (r *runner) setupTLS() error {
	o := &r.opts
	var roots *x509.CertPool // nil: the system's
	if o.TLSCA != "" {
		pem, err := os.ReadFile(o.TLSCA)
		if err != nil {
			return fmt.Errorf("tls-ca: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls-ca: %s: no PEM certificate in it", o.TLSCA)
		}
	}
	base := func(serverName string) *tls.Config {
		return &tls.Config{
			MinVersion:         tls.VersionTLS12,
			RootCAs:            roots,
			ServerName:         serverName, // empty: the host dialled, as http.Transport and tls.Dialer fill in
			InsecureSkipVerify: o.TLSInsecureSkipVerify,
		}
	}
	if o.ocppTLS() {
		r.ocppTLS = base(o.TLSServerName)
		switch {
		case o.TLSCert == "":
		case strings.Contains(o.TLSCert, cidPlaceholder) || strings.Contains(o.TLSKey, cidPlaceholder):
			var err error
			if r.certs, err = newCertCache(o.TLSCert, o.TLSKey); err != nil {
				return fmt.Errorf("tls-cert, tls-key: %w", err)
			}
		default:
			cert, err := loadKeyPair(o.TLSCert, o.TLSKey, nil)
			if err != nil {
				return fmt.Errorf("tls-cert, tls-key: %w", err)
			}
			r.ocppTLS.GetClientCertificate = presenting(cert)
		}
	}
	if (o.Respond || o.CommandRate > 0) && o.mqttTLS() {
		r.mqttTLS = base("")
		if o.MQTTTLSCert != "" {
			cert, err := loadKeyPair(o.MQTTTLSCert, o.MQTTTLSKey, nil)
			if err != nil {
				return fmt.Errorf("mqtt-tls-cert, mqtt-tls-key: %w", err)
			}
			r.mqttTLS.GetClientCertificate = presenting(cert)
		}
	}
	if o.TLSInsecureSkipVerify {
		r.m.warn("--tls-insecure-skip-verify: server certificates were not verified (lab use only)")
	}
	return nil
}

// presenting returns a GetClientCertificate that always presents cert. With
// tls.Config.Certificates instead, Go sends no certificate at all when the CAs the server
// names in its request do not match the chain, and the server only says "certificate
// required"; a simulator presents what it was given, and a mismatch fails with the
// server's own reason.
func presenting(cert *tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
}

// httpClient returns the client cp's handshake goes through, and what to call after the
// dial: the run's shared client, or, when charge points have certificates of their own, a
// client whose transport presents cp's. A transport pools connections by host, not by
// certificate, so one transport per certificate is what keeps a connection set up with one
// charge point's certificate from ever carrying another's handshake; once the dial is over it
// holds nothing (the WebSocket took its connection), and done closes what a refused handshake
// left idle in it.
func (r *runner) httpClient(cid string) (client *http.Client, done func(), err error) {
	if r.certs == nil {
		return r.client, func() {}, nil
	}
	cert, err := r.certs.get(cid)
	if err != nil {
		return nil, nil, err
	}
	cfg := r.ocppTLS.Clone()
	cfg.GetClientCertificate = presenting(cert)
	t := r.transport(cfg)
	return &http.Client{Transport: t}, t.CloseIdleConnections, nil
}

// transport returns an HTTP transport for the charge points' handshakes: its TCP dials go
// through the source pool (so spreading over 127.0.0.x works with TLS too: the TLS server
// name stays the host of the URL), then TLS with cfg for wss:// (nil for ws://).
func (r *runner) transport(cfg *tls.Config) *http.Transport {
	return &http.Transport{DialContext: r.pool.DialContext, TLSHandshakeTimeout: r.opts.Timeout, TLSClientConfig: cfg}
}

// certCache holds a run's per-charge-point client certificates. Each file is read once: one
// whose template has no {cid} (a key shared by per-id certificates) when the cache is made,
// the others on the first dial that needs them; each pair is parsed once and kept for the
// run, failures included (a connection keeps its certificate anyway).
type certCache struct {
	certTmpl, keyTmpl string
	fixed             map[string][]byte // contents of the templates without {cid}

	mu    sync.Mutex
	pairs map[[2]string]*certEntry
}

// certEntry is one pair of paths, loaded once.
type certEntry struct {
	once sync.Once
	cert *tls.Certificate
	err  error
}

// newCertCache returns a cache for the two templates, one of which at least has {cid}, and
// reads the other when it has none.
func newCertCache(certTmpl, keyTmpl string) (*certCache, error) {
	c := &certCache{certTmpl: certTmpl, keyTmpl: keyTmpl, fixed: map[string][]byte{}, pairs: map[[2]string]*certEntry{}}
	for _, path := range []string{certTmpl, keyTmpl} {
		if !strings.Contains(path, cidPlaceholder) {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, &certError{certFile: certTmpl, keyFile: keyTmpl, err: err}
			}
			c.fixed[path] = b
		}
	}
	return c, nil
}

// get returns the certificate of charge point cid. Concurrent dials of the same pair wait for
// one load; the lock is not held while files are read.
func (c *certCache) get(cid string) (*tls.Certificate, error) {
	certFile := strings.ReplaceAll(c.certTmpl, cidPlaceholder, cid)
	keyFile := strings.ReplaceAll(c.keyTmpl, cidPlaceholder, cid)
	k := [2]string{certFile, keyFile}
	c.mu.Lock()
	e := c.pairs[k]
	if e == nil {
		e = &certEntry{}
		c.pairs[k] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.cert, e.err = loadKeyPair(certFile, keyFile, c.fixed) })
	return e.cert, e.err
}

// loadKeyPair reads and parses a PEM certificate (chain) and its key, taking the contents of
// a path in fixed from there.
func loadKeyPair(certFile, keyFile string, fixed map[string][]byte) (*tls.Certificate, error) {
	read := func(path string) ([]byte, error) {
		if b, ok := fixed[path]; ok {
			return b, nil
		}
		return os.ReadFile(path)
	}
	certPEM, err := read(certFile)
	var keyPEM []byte
	if err == nil {
		keyPEM, err = read(keyFile)
	}
	var cert tls.Certificate
	if err == nil {
		cert, err = tls.X509KeyPair(certPEM, keyPEM)
	}
	if err != nil {
		return nil, &certError{certFile: certFile, keyFile: keyFile, err: err}
	}
	return &cert, nil
}

// certError is a client certificate that could not be loaded: which files, and why.
type certError struct {
	certFile, keyFile string
	err               error // an *fs.PathError, or why the pair is not valid
}

func (e *certError) Error() string {
	return fmt.Sprintf("client certificate %s, key %s: %v", e.certFile, e.keyFile, e.err)
}

// Is makes the error match ErrClientCertificate.
func (e *certError) Is(target error) bool { return target == ErrClientCertificate }

// Unwrap gives errors.Is/As the cause (fs.ErrNotExist, …).
func (e *certError) Unwrap() error { return e.err }

// class is the cause without the paths, which every charge point whose files fail the same
// way shares: "client certificate: no such file or directory".
func (e *certError) class() string {
	var pe *fs.PathError
	if errors.As(e.err, &pe) {
		return "client certificate: " + pe.Err.Error()
	}
	return "client certificate: " + e.err.Error()
}
