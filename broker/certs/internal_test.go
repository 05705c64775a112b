package certs

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"testing"
)

// TestKeyType covers the key type names of Summary, including Ed25519,
// which testpki does not make.
func TestKeyType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pub  any
		want string
	}{
		{&rsa.PublicKey{}, "RSA"},
		{&ecdsa.PublicKey{}, "ECDSA"},
		{ed25519.PublicKey{}, "Ed25519"},
		{&ecdh.PublicKey{}, "*ecdh.PublicKey"},
	}
	for _, tt := range tests {
		if got := keyType(tt.pub); got != tt.want {
			t.Errorf("keyType(%T) = %q, want %q", tt.pub, got, tt.want)
		}
	}
}
