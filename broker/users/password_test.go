package users

import (
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHashPassword(t *testing.T) {
	t.Parallel()
	sha := regexp.MustCompile(`^sha256:[0-9a-f]{32}:[0-9a-f]{64}$`)
	tests := []struct {
		name     string
		role     Role
		password string
		cost     int
		want     *regexp.Regexp // nil: an error
		wantErr  string
	}{
		{"charge point", RoleChargePoint, "0123456789abcdef", 0, sha, ""},
		{"charge point ignores cost", RoleChargePoint, "k", 99, sha, ""},
		{"charge point 100-byte key", RoleChargePoint, strings.Repeat("k", 100), 0, sha, ""},
		{"mqtt", RoleMQTT, "secret", bcrypt.MinCost, regexp.MustCompile(`^bcrypt:\$2a\$04\$.{53}$`), ""},
		{"admin", RoleAdmin, "secret", bcrypt.MinCost + 1, regexp.MustCompile(`^bcrypt:\$2a\$05\$`), ""},
		{"72 bytes", RoleMQTT, strings.Repeat("p", 72), bcrypt.MinCost, regexp.MustCompile(`^bcrypt:`), ""},
		{"73 bytes", RoleMQTT, strings.Repeat("p", 73), bcrypt.MinCost, nil, "72 bytes"},
		{"cost too low", RoleMQTT, "p", 3, nil, "cost 3"},
		{"cost too high", RoleAdmin, "p", 32, nil, "cost 32"},
		{"empty", RoleChargePoint, "", 0, nil, "empty"},
		{"unknown role", Role("root"), "p", 0, nil, "unknown role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := HashPassword(tt.role, tt.password, tt.cost)
			if tt.want == nil {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("HashPassword = %q, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.want.MatchString(got) {
				t.Fatalf("HashPassword = %q, %v; want %v", got, err, tt.want)
			}
			if strings.Contains(got, tt.password) {
				t.Errorf("stored form %q contains the password", got)
			}
			c, err := parseCredential(got)
			if err != nil {
				t.Fatalf("parseCredential(%q): %v", got, err)
			}
			if c.kind != tt.role.storedKind() {
				t.Errorf("kind = %v, want %v", c.kind, tt.role.storedKind())
			}
			if !c.verify(tt.password) || c.verify(tt.password+"x") || c.verify("") {
				t.Error("verify does not tell the password from others")
			}
		})
	}
}

// TestHashPasswordSalted: the same key twice gives two stored forms.
func TestHashPasswordSalted(t *testing.T) {
	t.Parallel()
	for _, role := range []Role{RoleChargePoint, RoleMQTT} {
		a, errA := HashPassword(role, "same", bcrypt.MinCost)
		b, errB := HashPassword(role, "same", bcrypt.MinCost)
		if errA != nil || errB != nil || a == b {
			t.Errorf("%s: %q and %q (%v, %v): want two different salted forms", role, a, b, errA, errB)
		}
	}
}

// TestSaltedSum pins the SHA-256 form, so a stored key can be made or checked
// with other tools: hex(SHA-256(salt bytes || key)), as in
//
//	printf 0123456789abcdef0123456789abcdef | xxd -r -p > s; printf key >> s; sha256sum s
func TestSaltedSum(t *testing.T) {
	t.Parallel()
	c, err := parseCredential("sha256:0123456789abcdef0123456789abcdef:" +
		"77bbecf5b936caf8cf989afbd77d77a87b4573e4ba13ec614f93df6acddfec3a")
	if err != nil {
		t.Fatal(err)
	}
	if !c.verify("key") || c.verify("Key") {
		t.Error("the pinned stored form does not verify key (and only key)")
	}
}

func TestParseCredentialUppercaseHex(t *testing.T) {
	t.Parallel()
	s, err := HashPassword(RoleChargePoint, "key", 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCredential(strings.ToUpper(s[:7]) + strings.ToUpper(s[7:]))
	if err == nil {
		t.Errorf("SHA256: prefix accepted: %+v", c)
	}
	c, err = parseCredential(s[:7] + strings.ToUpper(s[7:]))
	if err != nil || !c.verify("key") {
		t.Errorf("upper-case hex: %v", err)
	}
}
