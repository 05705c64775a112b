// Package testpki makes the certificates the TLS tests need, with
// crypto/x509, at test time: a CA, server certificates (RSA and ECDSA) for
// loopback, and charge point or MQTT client certificates with a chosen
// Subject CN and Organization. Nothing here is for production; keys are
// written with mode 0600 only because the broker warns about anything else.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// KeyType is the kind of key a certificate is made with.
type KeyType int

const (
	// ECDSA is a P-256 key: what the ECDHE_ECDSA suites of OCPP need.
	ECDSA KeyType = iota
	// RSA is a 2048-bit key: what the TLS_RSA suites of OCPP need.
	RSA
)

// CA is a certificate authority the test trusts.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// PEM is the CA certificate, PEM-encoded.
	PEM []byte
	// Pool holds just this CA, for a client's RootCAs or a server's ClientCAs.
	Pool *x509.CertPool
}

// NewCA makes a self-signed ECDSA CA named name.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	key := newKey(tb, ECDSA)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"chargemq tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatalf("testpki: CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("testpki: CA: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Pool: pool}
}

// LeafOptions describe a certificate the CA issues.
type LeafOptions struct {
	CN string
	// O is the Subject Organization (OCPP A00.FR.404); empty for none.
	O   string
	Key KeyType
	// DNS and IPs are the subject alternative names of a server certificate.
	DNS []string
	IPs []net.IP
	// Client makes a client certificate (ExtKeyUsageClientAuth) instead of
	// a server one.
	Client bool
	// NotAfter defaults to a day from now.
	NotAfter time.Time
}

// Leaf is an issued certificate with its key.
type Leaf struct {
	Cert *x509.Certificate
	// TLS is the certificate and key for a tls.Config.
	TLS             tls.Certificate
	CertPEM, KeyPEM []byte
}

// Issue makes a certificate signed by the CA.
func (ca *CA) Issue(tb testing.TB, o LeafOptions) *Leaf {
	tb.Helper()
	key := newKey(tb, o.Key)
	notAfter := o.NotAfter
	if notAfter.IsZero() {
		notAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: o.CN},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     o.DNS,
		IPAddresses:  o.IPs,
	}
	if o.O != "" {
		tmpl.Subject.Organization = []string{o.O}
	}
	if o.Key == RSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment // the TLS_RSA key exchange
	}
	if o.Client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		tb.Fatalf("testpki: issue %q: %v", o.CN, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("testpki: issue %q: %v", o.CN, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("testpki: key of %q: %v", o.CN, err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatalf("testpki: pair of %q: %v", o.CN, err)
	}
	return &Leaf{Cert: cert, TLS: pair, CertPEM: certPEM, KeyPEM: keyPEM}
}

// Server issues a server certificate for localhost and 127.0.0.1.
func (ca *CA) Server(tb testing.TB, key KeyType) *Leaf {
	tb.Helper()
	return ca.Issue(tb, LeafOptions{CN: "localhost", Key: key, DNS: []string{"localhost"},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}})
}

// Client issues a client certificate with Subject CN cn and, unless empty,
// Organization org.
func (ca *CA) Client(tb testing.TB, cn, org string, key KeyType) *Leaf {
	tb.Helper()
	return ca.Issue(tb, LeafOptions{CN: cn, O: org, Key: key, Client: true})
}

// WriteFile writes the CA certificate as dir/name.pem and returns the path.
func (ca *CA) WriteFile(tb testing.TB, dir, name string) string {
	tb.Helper()
	p := filepath.Join(dir, name+".pem")
	write(tb, p, ca.PEM)
	return p
}

// WriteFiles writes the certificate and key as dir/name.crt and
// dir/name.key and returns their paths.
func (l *Leaf) WriteFiles(tb testing.TB, dir, name string) (certFile, keyFile string) {
	tb.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	write(tb, certFile, l.CertPEM)
	write(tb, keyFile, l.KeyPEM)
	return certFile, keyFile
}

func write(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatalf("testpki: %v", err)
	}
}

func newKey(tb testing.TB, t KeyType) crypto.Signer {
	tb.Helper()
	var (
		k   crypto.Signer
		err error
	)
	if t == RSA {
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		tb.Fatalf("testpki: key: %v", err)
	}
	return k
}

func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		tb.Fatalf("testpki: serial: %v", err)
	}
	return n
}
