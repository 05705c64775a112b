package users

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// DefaultCost is the bcrypt cost HashPassword uses for people's passwords when
// given cost 0: bcrypt.DefaultCost (10), about 82 ms per check on a small
// 2-core server. Tests pass bcrypt.MinCost.
const DefaultCost = bcrypt.DefaultCost

// MinKeyLength is the shortest charge point key that AddUser and Import take
// without a warning: OCPP 1.6 (security whitepaper, AuthorizationKey) and 2.0.1
// (A00.FR.205) want at least 16 characters.
const MinKeyLength = 16

// Prefixes of the stored forms of a password in the users file.
const (
	prefixSHA256 = "sha256:"
	prefixBcrypt = "bcrypt:"
	saltLen      = 16

	maxBcryptPassword = 72 // bytes bcrypt reads
)

// kind is a stored form.
type kind uint8

const (
	kindSHA256 kind = iota + 1
	kindBcrypt
)

// credential is a parsed stored form.
type credential struct {
	kind kind
	salt []byte   // sha256
	sum  [32]byte // sha256
	hash []byte   // bcrypt, without the "bcrypt:" prefix
	cost int      // bcrypt
}

// HashPassword returns the stored form of password for a user of role, the
// value of the users file's password field. The role decides the form:
//
// People's passwords (roles mqtt and admin) are stored as bcrypt, with cost
// (0 means DefaultCost). People choose guessable passwords and reuse them, so
// if the file leaks, each guess must cost the attacker real time; bcrypt at
// cost 10 costs about 82 ms per guess here. Logging in pays that once: a
// successful check is cached by the DB (see DB.Check), so an MQTT client
// reconnecting or an admin API poll does not pay it again. bcrypt reads at
// most 72 bytes, so a longer password is refused rather than silently cut.
//
// Charge point keys (role chargepoint) are stored as "sha256:<salt>:<hash>":
// SHA-256 over a random 16-byte salt followed by the key, both in hex. A key
// is a machine-made secret (OCPP 1.6 security whitepaper: an AuthorizationKey
// of 16 to 20 random bytes, sent as up to 40 hex characters), and guessing a
// 16+ character random key is hopeless however fast the hash is, so a slow
// KDF buys nothing. What it would cost is real: after a power cut all the
// chargers of a depot reconnect at once, and 2,000 of them must be admitted
// within 10 s on a 2-core box. At 82 ms per bcrypt check that takes over 80 s,
// and the chargers time out and retry, making it worse; a salted SHA-256
// verifies in a microsecond. The salt keeps equal keys from having equal
// hashes and defeats precomputed tables.
//
// Both forms are compared in constant time. A plain-text password is not a
// stored form, so it can never be loaded by accident.
func HashPassword(role Role, password string, cost int) (string, error) {
	if password == "" {
		return "", errors.New("users: empty password")
	}
	switch role {
	case RoleChargePoint:
		salt := make([]byte, saltLen)
		if _, err := rand.Read(salt); err != nil {
			return "", fmt.Errorf("users: salt: %w", err)
		}
		sum := saltedSum(salt, password)
		return prefixSHA256 + hex.EncodeToString(salt) + ":" + hex.EncodeToString(sum[:]), nil
	case RoleMQTT, RoleAdmin:
		if cost == 0 {
			cost = DefaultCost
		}
		if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
			return "", fmt.Errorf("users: bcrypt cost %d out of range %d..%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
		}
		if len(password) > maxBcryptPassword {
			return "", errors.New("users: password longer than 72 bytes (bcrypt reads no more)")
		}
		h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
		if err != nil {
			return "", fmt.Errorf("users: bcrypt: %w", err)
		}
		return prefixBcrypt + string(h), nil
	default:
		return "", fmt.Errorf("users: unknown role %q", role)
	}
}

// saltedSum is SHA-256(salt || password).
func saltedSum(salt []byte, password string) [32]byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(password))
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// parseCredential parses a stored form. Its errors say what is wrong without
// repeating the value, which may be a plain-text password.
func parseCredential(s string) (credential, error) {
	switch {
	case strings.HasPrefix(s, prefixSHA256):
		saltHex, sumHex, ok := strings.Cut(s[len(prefixSHA256):], ":")
		if !ok {
			return credential{}, errors.New(`want "sha256:<salt>:<hash>"`)
		}
		salt, err := hex.DecodeString(saltHex)
		if err != nil || len(salt) != saltLen {
			return credential{}, fmt.Errorf("sha256 salt: want %d hex digits", 2*saltLen)
		}
		sum, err := hex.DecodeString(sumHex)
		if err != nil || len(sum) != sha256.Size {
			return credential{}, fmt.Errorf("sha256 hash: want %d hex digits", 2*sha256.Size)
		}
		c := credential{kind: kindSHA256, salt: salt}
		copy(c.sum[:], sum)
		return c, nil
	case strings.HasPrefix(s, prefixBcrypt):
		h := []byte(s[len(prefixBcrypt):])
		cost, err := bcrypt.Cost(h)
		if err != nil {
			return credential{}, errors.New(`bcrypt: not a bcrypt hash ("bcrypt:$2a$10$...")`)
		}
		// bcrypt.Cost checks the prefix only; a truncated hash would fail
		// every check, so catch it here. 60 is the length of every bcrypt hash.
		if len(h) != 60 {
			return credential{}, errors.New("bcrypt: hash must be 60 characters")
		}
		return credential{kind: kindBcrypt, hash: h, cost: cost}, nil
	default:
		return credential{}, errors.New(`not a stored password: want "sha256:<salt>:<hash>" or "bcrypt:<hash>" ` +
			`(plain text is never accepted; chargemq users add writes the right form)`)
	}
}

// verify reports whether password matches c, in time that depends only on c
// (its kind and bcrypt cost), never on where the password differs.
func (c *credential) verify(password string) bool {
	switch c.kind {
	case kindSHA256:
		sum := saltedSum(c.salt, password)
		return subtle.ConstantTimeCompare(sum[:], c.sum[:]) == 1
	case kindBcrypt:
		// bcrypt.CompareHashAndPassword compares in constant time itself,
		// but reads only 72 bytes: "72 bytes + anything" would match a
		// 72-byte password. No stored password is longer (HashPassword
		// refuses them), so a longer one fails, after the same work.
		ok := bcrypt.CompareHashAndPassword(c.hash, []byte(password)) == nil
		return ok && len(password) <= maxBcryptPassword
	}
	return false
}

// dummyCredential makes a credential of kind k that no password matches in
// practice (its secret is random and thrown away), to verify against when the
// name is unknown so that the failure costs what a wrong password costs.
func dummyCredential(k kind, cost int) (credential, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return credential{}, err
	}
	role := RoleChargePoint
	if k == kindBcrypt {
		role = RoleMQTT
	}
	s, err := HashPassword(role, hex.EncodeToString(secret), cost)
	if err != nil {
		return credential{}, err
	}
	return parseCredential(s)
}
