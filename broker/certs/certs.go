// Package certs owns the TLS server side of every TLS listener of the broker
// (wss for OCPP, mqtts, MQTT over wss, https admin): it loads the server
// certificates and the client CA pool from PEM files, reloads them without
// dropping connections, and builds the one tls.Config policy all listeners
// share, so that OCPP's TLS rules (TLS 1.2 or later, its four cipher suites,
// RSA and ECDSA certificates side by side) are written down in one place.
//
// No TLS compression is ever negotiated: Go's crypto/tls does not implement
// it (it only offers the null compression method), which is what OCPP
// profile 2 asks for.
//
// The package imports only the standard library.
package certs

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrNoPair is returned by Load when Options has no certificate pair:
	// a TLS listener cannot serve without one.
	ErrNoPair = errors.New("certs: no certificate pair configured")
	// ErrNoCertificate is wrapped, after the file's path, when a
	// certificate file or the client CA file holds no PEM CERTIFICATE block.
	ErrNoCertificate = errors.New("no certificate in PEM data")
	// ErrNoClientCA is returned by Config when client certificates are to
	// be verified but no client CA is loaded: with a nil ClientCAs,
	// crypto/tls verifies against the system roots, so any publicly
	// trusted certificate would pass.
	ErrNoClientCA = errors.New("certs: client certificate verification needs a client CA")
	// ErrClientAuth is returned by Config for tls.RequestClientCert and
	// tls.RequireAnyClientCert, which accept client certificates without
	// verifying them: nothing in the broker may trust such a certificate.
	ErrClientAuth = errors.New("certs: client authentication mode accepts unverified certificates")
)

// Pair is one certificate chain file and its private key file (PEM). The
// chain file starts with the leaf; intermediates may follow it.
type Pair struct{ Cert, Key string }

// Options names the files a Store loads. They are kept so that Reload reads
// the same files again.
type Options struct {
	// Certificates holds one or more pairs. An RSA and an ECDSA pair may be
	// served together: the TLS stack picks, per ClientHello, the first one
	// the client supports (OCPP's TLS_RSA suites need the RSA one, its
	// ECDHE_ECDSA suites the ECDSA one); ECDSA pairs are tried first
	// whatever the order here, so a client that can do both gets forward
	// secrecy.
	Certificates []Pair
	// ClientCA is the PEM file of the CA(s) whose client certificates are
	// accepted; "" for none.
	ClientCA string
}

// Store holds the loaded certificates and client CA pool. It is safe for
// concurrent use: Reload swaps the whole set atomically, and each handshake
// of a config made by Config sees one consistent set.
type Store struct {
	opts   Options
	reload sync.Mutex // serialises Reload; readers never take it
	cur    atomic.Pointer[loaded]
}

// loaded is one immutable generation of the files' contents.
type loaded struct {
	certs     []tls.Certificate // Leaf set
	certFiles []string          // certs[i] came from certFiles[i]
	caPool    *x509.CertPool    // nil when Options.ClientCA is ""
	caCerts   []*x509.Certificate
}

// Load reads and parses every file named in o. An error names the file and
// what is wrong with it; the caller adds which setting named the file.
func Load(o Options) (*Store, error) {
	o.Certificates = slices.Clone(o.Certificates)
	l, err := load(o)
	if err != nil {
		return nil, err
	}
	s := &Store{opts: o}
	s.cur.Store(l)
	return s, nil
}

// Reload re-reads the files Load read. On any error the current
// certificates and CA pool stay in place and the error is returned.
// Connections are never dropped: established ones keep their state, and only
// handshakes that start after Reload returns see the new files.
func (s *Store) Reload() error {
	s.reload.Lock()
	defer s.reload.Unlock()
	l, err := load(s.opts)
	if err != nil {
		return err
	}
	s.cur.Store(l)
	return nil
}

// HasClientCA reports whether a client CA is loaded, that is whether
// listeners can verify client certificates.
func (s *Store) HasClientCA() bool { return s.cur.Load().caPool != nil }

// CipherSuites returns the TLS 1.2 cipher suites every listener accepts: the
// four OCPP requires (A00.FR.317) and Go's modern ECDHE defaults, nothing
// weaker (no CBC, 3DES or RC4). TLS 1.3 suites are not configurable in Go
// and all three of them are fine.
//
// The TLS_RSA suites have no forward secrecy (crypto/tls lists them in
// InsecureCipherSuites), but OCPP requires them and some charge points offer
// nothing else. They must be listed explicitly: Go ≥ 1.22 leaves them out of
// its defaults (golang/go#63413). When CipherSuites is set, crypto/tls does
// not consult GODEBUG tlsrsakex, so they are negotiated without it. Under
// GODEBUG fips140=on crypto/tls drops the TLS_RSA and CHACHA20 suites
// whatever is listed.
//
// All of these suites are TLS 1.2 only, so even without MinVersion no TLS
// 1.0 or 1.1 handshake could complete.
func CipherSuites() []uint16 {
	return []uint16{
		// OCPP 1.6 security whitepaper and 2.0.1 A00.FR.317.
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
		// Go's modern defaults.
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// Config returns the tls.Config of a listener that authenticates clients
// with clientAuth and offers the ALPN protocols nextProtos:
// tls.NoClientCert (OCPP profile 2, https admin),
// tls.RequireAndVerifyClientCert (OCPP profile 3) or
// tls.VerifyClientCertIfGiven (mqtts and MQTT over wss with a client CA).
// Verifying modes need a client CA (ErrNoClientCA); modes that accept
// unverified certificates are refused (ErrClientAuth).
//
// The config follows Reload without being rebuilt: its GetConfigForClient
// builds each handshake's config from the store's current files. Hazard:
// that per-handshake config is made from the arguments of Config only, so
// fields set later on the returned config, or on a Clone of it, do not reach
// handshakes. http.Server.ServeTLS is such a case (it adds "h2" and
// "http/1.1" to a clone's NextProtos): pass those as nextProtos, or serve
// with tls.NewListener and http.Server.Serve.
func (s *Store) Config(clientAuth tls.ClientAuthType, nextProtos ...string) (*tls.Config, error) {
	switch clientAuth {
	case tls.NoClientCert:
	case tls.VerifyClientCertIfGiven, tls.RequireAndVerifyClientCert:
		if !s.HasClientCA() {
			return nil, ErrNoClientCA
		}
	default:
		return nil, fmt.Errorf("%w: %v", ErrClientAuth, clientAuth)
	}
	nextProtos = slices.Clone(nextProtos)
	base := policy(clientAuth, nextProtos)
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		l := s.cur.Load()
		c := policy(clientAuth, nextProtos)
		// Several certificates: crypto/tls takes the first one the
		// ClientHello supports (key type, suites, signature schemes).
		c.Certificates = l.certs
		if clientAuth != tls.NoClientCert {
			c.ClientCAs = l.caPool
		}
		return c, nil
	}
	return base, nil
}

// policy is the part of a listener's config that never changes. Session
// tickets of the per-handshake configs are sealed with the keys of the
// config Config returns, so resumption works across handshakes; crypto/tls
// re-verifies a resumed session's client chain against the current
// ClientCAs, so a Reload that drops a CA also ends its resumptions.
func policy(clientAuth tls.ClientAuthType, nextProtos []string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12, // OCPP security profiles 2 and 3: TLS 1.0/1.1 refused
		CipherSuites: CipherSuites(),
		ClientAuth:   clientAuth,
		NextProtos:   nextProtos,
	}
}

// Expiry is a certificate that expires soon or has expired, for a warning
// that names the file to replace.
type Expiry struct {
	File     string
	Subject  string
	NotAfter time.Time
	// Expired is NotAfter before now: clients already refuse it.
	Expired bool
}

// Expiring returns every loaded server certificate (the leaf of each pair)
// and client CA certificate whose NotAfter is before now+within, oldest
// first, so that an operator is warned before charge points start failing
// their handshakes.
func (s *Store) Expiring(now time.Time, within time.Duration) []Expiry {
	l := s.cur.Load()
	var out []Expiry
	add := func(file string, c *x509.Certificate) {
		if c.NotAfter.Before(now.Add(within)) {
			out = append(out, Expiry{File: file, Subject: subject(c), NotAfter: c.NotAfter, Expired: c.NotAfter.Before(now)})
		}
	}
	for i, c := range l.certs {
		add(l.certFiles[i], c.Leaf)
	}
	for _, c := range l.caCerts {
		add(s.opts.ClientCA, c)
	}
	slices.SortStableFunc(out, func(a, b Expiry) int { return a.NotAfter.Compare(b.NotAfter) })
	return out
}

// CertInfo describes one loaded certificate, for the log line at start and
// after a reload.
type CertInfo struct {
	File, Subject string
	// KeyType is "RSA", "ECDSA" or "Ed25519".
	KeyType  string
	NotAfter time.Time
}

// Summary describes the loaded certificates: each pair's leaf, in the order
// they are served (ECDSA ones first, otherwise as in Options.Certificates),
// then the client CA certificates.
func (s *Store) Summary() []CertInfo {
	l := s.cur.Load()
	out := make([]CertInfo, 0, len(l.certs)+len(l.caCerts))
	info := func(file string, c *x509.Certificate) CertInfo {
		return CertInfo{File: file, Subject: subject(c), KeyType: keyType(c.PublicKey), NotAfter: c.NotAfter}
	}
	for i, c := range l.certs {
		out = append(out, info(l.certFiles[i], c.Leaf))
	}
	for _, c := range l.caCerts {
		out = append(out, info(s.opts.ClientCA, c))
	}
	return out
}

// subject is the certificate's CN, or its whole subject when it has no CN.
func subject(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

func keyType(pub any) string {
	switch pub.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "ECDSA"
	case ed25519.PublicKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", pub)
	}
}

// load reads one generation of files.
func load(o Options) (*loaded, error) {
	if len(o.Certificates) == 0 {
		return nil, ErrNoPair
	}
	l := &loaded{}
	for _, p := range o.Certificates {
		c, err := loadPair(p)
		if err != nil {
			return nil, err
		}
		l.certs = append(l.certs, c)
		l.certFiles = append(l.certFiles, p.Cert)
	}
	preferForwardSecrecy(l)
	if o.ClientCA != "" {
		certs, err := readCerts(o.ClientCA)
		if err != nil {
			return nil, err
		}
		l.caPool = x509.NewCertPool()
		for _, c := range certs {
			l.caPool.AddCert(c)
		}
		l.caCerts = certs
	}
	return l, nil
}

// preferForwardSecrecy puts the ECDSA certificates first, keeping the
// order otherwise. crypto/tls serves the first certificate a client
// supports, so with an RSA one first a client that offers both
// TLS_RSA_WITH_* and ECDHE_ECDSA suites would get TLS_RSA, which has no
// forward secrecy; the RSA certificate is for clients that can do only
// TLS_RSA (OCPP requires those suites to be offered, not preferred).
func preferForwardSecrecy(l *loaded) {
	idx := make([]int, len(l.certs))
	for i := range idx {
		idx[i] = i
	}
	isECDSA := func(i int) bool { _, ok := l.certs[i].PrivateKey.(*ecdsa.PrivateKey); return ok }
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case isECDSA(a) && !isECDSA(b):
			return -1
		case !isECDSA(a) && isECDSA(b):
			return 1
		}
		return 0
	})
	certs, files := make([]tls.Certificate, len(idx)), make([]string, len(idx))
	for i, j := range idx {
		certs[i], files[i] = l.certs[j], l.certFiles[j]
	}
	l.certs, l.certFiles = certs, files
}

// loadPair reads each file once and parses the chain itself first, so that
// any error tls.X509KeyPair returns afterwards is the key file's.
func loadPair(p Pair) (tls.Certificate, error) {
	certPEM, err := readFile(p.Cert)
	if err != nil {
		return tls.Certificate{}, err
	}
	chain, err := parseCerts(p.Cert, certPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := readFile(p.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", p.Key, err)
	}
	c.Leaf = chain[0]
	return c, nil
}

// readCerts reads and parses a PEM file of certificates.
func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return parseCerts(path, data)
}

// parseCerts parses every CERTIFICATE block of data, read from path; other
// blocks are skipped.
func parseCerts(path string, data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: %w", path, ErrNoCertificate)
	}
	return certs, nil
}

// readFile reads path; its error reads "path: reason" and still matches
// fs.ErrNotExist and friends.
func readFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("%s: %w", path, pe.Err)
	}
	return data, err
}
