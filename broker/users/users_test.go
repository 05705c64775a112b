package users

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// stored returns the stored form of password for role at bcrypt.MinCost.
func stored(t testing.TB, role Role, password string) string {
	t.Helper()
	s, err := HashPassword(role, password, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testFile is a users file with one user of each role and rules for the mqtt
// user.
func testFile(t testing.TB) string {
	return fmt.Sprintf(`users:
  - name: CP001
    role: chargepoint
    password: %q
  - name: csms
    role: mqtt
    password: %q
    pub: ["ocpp/cs/#"]
    sub: ["ocpp/#", "csms/%%u/#"]
  - name: root
    role: admin
    password: %q
`, stored(t, RoleChargePoint, "0123456789abcdef0123"), stored(t, RoleMQTT, "csms-secret"), stored(t, RoleAdmin, "root-secret"))
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	db, err := Parse([]byte(testFile(t)))
	if err != nil {
		t.Fatal(err)
	}
	if db.Len() != 3 {
		t.Errorf("Len = %d, want 3", db.Len())
	}
	u, ok := db.Lookup("csms")
	if !ok || u.Role != RoleMQTT || strings.Join(u.Pub, ",") != "ocpp/cs/#" || strings.Join(u.Sub, ",") != "ocpp/#,csms/%u/#" {
		t.Errorf("Lookup(csms) = %+v, %v", u, ok)
	}
	if _, ok := db.Lookup("nobody"); ok {
		t.Error("Lookup(nobody) found a user")
	}
	// The DB hands out copies: changing one changes nothing inside.
	u.Pub[0] = "#"
	if again, _ := db.Lookup("csms"); again.Pub[0] != "ocpp/cs/#" {
		t.Errorf("Lookup result shares memory with the DB: %v", again.Pub)
	}
	names := []string{}
	for _, u := range db.Users() {
		names = append(names, u.Name)
	}
	if got := strings.Join(names, ","); got != "CP001,csms,root" {
		t.Errorf("Users() = %s, want file order", got)
	}
}

func TestParseEmpty(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "# nothing yet\n", "users:\n", "users: []\n", "---\n"} {
		db, err := Parse([]byte(in))
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if db.Len() != 0 {
			t.Errorf("Parse(%q).Len() = %d", in, db.Len())
		}
		if _, ok := db.Check("x", "y"); ok {
			t.Errorf("Parse(%q): Check succeeded on an empty DB", in)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	cp := stored(t, RoleChargePoint, "0123456789abcdef")
	bc := stored(t, RoleMQTT, "password")
	entry := func(fields string) string { return "users:\n  - " + fields + "\n" }
	tests := []struct {
		name string
		in   string
		want []string // substrings of the error
	}{
		{"not yaml", "users: [", []string{"(file)"}},
		{"top level list", "- a\n", []string{"(top level)", "want a mapping"}},
		{"unknown top-level key", "user:\n  - name: x\n", []string{"user: unknown key (line 1)"}},
		{"users not a list", "users: CP1\n", []string{"users: want a list"}},
		{"entry not a mapping", "users:\n  - CP1\n", []string{"users[0]: want a mapping"}},
		{"unknown key", entry("name: CP1\n    role: chargepoint\n    password: \"" + cp + "\"\n    pasword: x"),
			[]string{"users[0].pasword: unknown key; known keys here: name, role, password, pub, sub, min_profile (line 5)"}},
		{"key twice", entry("name: CP1\n    name: CP2\n    role: chargepoint\n    password: \"" + cp + "\""),
			[]string{"users[0].name: given twice (line 3)"}},
		{"missing name", entry("role: chargepoint\n    password: \"" + cp + "\""), []string{"users[0].name: missing"}},
		{"missing role", entry("name: CP1\n    password: \"" + cp + "\""), []string{"users[0].role: missing"}},
		{"missing password", entry("name: CP1\n    role: chargepoint"), []string{"users[0].password: missing"}},
		{"null name", entry("name: ~\n    role: chargepoint\n    password: \"" + cp + "\""), []string{"users[0].name: want a string"}},
		{"list as name", entry("name: [a]\n    role: chargepoint\n    password: \"" + cp + "\""), []string{"users[0].name: want a string"}},
		{"empty name", entry("name: \"\"\n    role: chargepoint\n    password: \"" + cp + "\""), []string{"users[0].name: empty name"}},
		{"colon in name", entry("name: \"a:b\"\n    role: chargepoint\n    password: \"" + cp + "\""), []string{"users[0].name: name contains ':'"}},
		{"control char in name", entry("name: \"a\\tb\"\n    role: chargepoint\n    password: \"" + cp + "\""), []string{"users[0].name: name contains a control character"}},
		{"min_profile out of range", entry("name: CP1\n    role: chargepoint\n    password: \"" + cp + "\"\n    min_profile: 4"),
			[]string{"users[0].min_profile: want 1, 2 or 3 (the OCPP security profile) (line 5)"}},
		{"min_profile not a number", entry("name: CP1\n    role: chargepoint\n    password: \"" + cp + "\"\n    min_profile: tls"),
			[]string{"users[0].min_profile: want 1, 2 or 3"}},
		{"min_profile on an mqtt user", entry("name: u\n    role: mqtt\n    password: \"" + bc + "\"\n    min_profile: 2"),
			[]string{"users[0].min_profile: only a chargepoint user has a security profile"}},
		{"unknown role", entry("name: CP1\n    role: charger\n    password: \"" + cp + "\""),
			[]string{`users[0].role: unknown role "charger"; want chargepoint, mqtt or admin (line 3)`}},
		{"plain-text password", entry("name: CP1\n    role: chargepoint\n    password: hunter2hunter2hunter2"),
			[]string{"users[0].password: not a stored password"}},
		{"sha256 without hash", entry("name: CP1\n    role: chargepoint\n    password: \"sha256:00\""), []string{"users[0].password", "sha256:<salt>:<hash>"}},
		{"sha256 short salt", entry("name: CP1\n    role: chargepoint\n    password: \"sha256:00:" + strings.Repeat("0", 64) + "\""),
			[]string{"users[0].password: sha256 salt: want 32 hex digits"}},
		{"sha256 bad hash", entry("name: CP1\n    role: chargepoint\n    password: \"sha256:" + strings.Repeat("0", 32) + ":xyz\""),
			[]string{"users[0].password: sha256 hash: want 64 hex digits"}},
		{"bcrypt garbage", entry("name: u\n    role: mqtt\n    password: \"bcrypt:nothash\""), []string{"users[0].password: bcrypt: not a bcrypt hash"}},
		{"bcrypt truncated", entry("name: u\n    role: mqtt\n    password: \"" + bc[:len(bc)-1] + "\""), []string{"users[0].password: bcrypt: hash must be 60"}},
		{"bcrypt too short", entry("name: u\n    role: mqtt\n    password: \"" + bc[:len(bc)-9] + "\""), []string{"users[0].password: bcrypt: not a bcrypt hash"}},
		{"bcrypt with extra", entry("name: u\n    role: mqtt\n    password: \"" + bc + "x\""), []string{"users[0].password: bcrypt: hash must be 60"}},
		{"bcrypt for a charge point", entry("name: CP1\n    role: chargepoint\n    password: \"" + bc + "\""),
			[]string{`users[0].password: a charge point key must be stored as "sha256:..."`}},
		{"sha256 for a person", entry("name: u\n    role: admin\n    password: \"" + cp + "\""),
			[]string{`users[0].password: a admin user's password must be stored as "bcrypt:..."`}},
		{"pub for a charge point", entry("name: CP1\n    role: chargepoint\n    password: \"" + cp + "\"\n    pub: [a]"),
			[]string{"users[0].pub: charge points have no MQTT access"}},
		{"sub for an admin", entry("name: u\n    role: admin\n    password: \"" + bc + "\"\n    sub: [a]"),
			[]string{"users[0].sub: admins pass every ACL"}},
		{"pub not a list", entry("name: u\n    role: mqtt\n    password: \"" + bc + "\"\n    pub: a/#"), []string{"users[0].pub: want a list"}},
		{"bad filter", entry("name: u\n    role: mqtt\n    password: \"" + bc + "\"\n    sub: [\"ok/#\", \"a/#/b\"]"),
			[]string{`users[0].sub[1]: topic filter "a/#/b": '#' must be the last level (line 5)`}},
		{"plus inside a level", entry("name: u\n    role: mqtt\n    password: \"" + bc + "\"\n    pub: [\"a+\"]"), []string{`users[0].pub[0]: topic filter "a+": '+' must be a whole level`}},
		{"empty filter", entry("name: u\n    role: mqtt\n    password: \"" + bc + "\"\n    pub: [\"\"]"), []string{`users[0].pub[0]: topic filter "": empty`}},
		{"shared filter", entry("name: u\n    role: mqtt\n    password: \"" + bc + "\"\n    sub: [\"$share/g/a\"]"), []string{"users[0].sub[0]", "without $share"}},
		{"filter not a string", entry("name: u\n    role: mqtt\n    password: \"" + bc + "\"\n    sub: [[a]]"), []string{"users[0].sub[0]: want a topic filter"}},
		{"duplicate names",
			"users:\n  - {name: CP1, role: chargepoint, password: \"" + cp + "\"}\n  - {name: CP2, role: chargepoint, password: \"" + cp + "\"}\n  - {name: CP1, role: chargepoint, password: \"" + cp + "\"}\n",
			[]string{`users[2].name: "CP1" is also users[0] (line 4)`}},
		{"two documents", "users: []\n---\nusers: []\n", []string{"more than one YAML document"}},
		{"every error at once",
			"users:\n  - {name: CP1, role: nope, password: \"" + cp + "\"}\n  - {name: CP2, role: chargepoint, password: plain}\n",
			[]string{"users[0].role: unknown role", "users[1].password: not a stored password"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded (%d users), want an error", db.Len())
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

// TestParseNeverEchoesPassword: an error about a password field must not
// print its value, which may be someone's plain-text password.
func TestParseNeverEchoesPassword(t *testing.T) {
	t.Parallel()
	for _, pw := range []string{"hunter2", "sha256:hunter2", "sha256:hunter2:hunter2", "bcrypt:hunter2"} {
		_, err := Parse([]byte("users:\n  - name: u\n    role: mqtt\n    password: \"" + pw + "\"\n"))
		if err == nil {
			t.Fatalf("Parse accepted password %q", pw)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error repeats the password: %v", err)
		}
	}
}

func TestCheckName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want string // substring of the complaint; "" for a good name
	}{
		{"CP001", ""},
		{"Ladesäule-7", ""},
		{"with space", ""},
		{"a/b", ""}, // legal; rules with %u just never match it
		{"", "empty"},
		{"a:b", "':'"},
		{":", "':'"},
		{"a\x00b", "control"},
		{"a\nb", "control"},
		{"a\u0085b", "control"},
		{"a\xffb", "UTF-8"},
		{strings.Repeat("x", 65536), "65535"},
	}
	for _, tt := range tests {
		got := checkName(tt.name)
		if (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) {
			t.Errorf("checkName(%.20q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "users.yaml")
	if err := os.WriteFile(path, []byte(testFile(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Load(path)
	if err != nil || db.Len() != 3 {
		t.Fatalf("Load = %v, %v", db, err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("users:\n  - name: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad) || !errors.Is(err, ErrInvalid) {
		t.Errorf("Load(bad) = %v, want an ErrInvalid naming the file", err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	db, err := Parse([]byte(testFile(t)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user, password string
		roles                []Role
		want                 bool
	}{
		{"charge point key", "CP001", "0123456789abcdef0123", nil, true},
		{"charge point wrong key", "CP001", "0123456789abcdef0124", nil, false},
		{"charge point key prefix", "CP001", "0123456789abcdef012", nil, false},
		{"charge point key longer", "CP001", "0123456789abcdef01234", nil, false},
		{"charge point key case differs", "CP001", "0123456789ABCDEF0123", nil, false},
		{"charge point empty key", "CP001", "", nil, false},
		{"mqtt password", "csms", "csms-secret", nil, true},
		{"mqtt wrong password", "csms", "csms-secreT", nil, false},
		{"admin password", "root", "root-secret", nil, true},
		{"name case differs", "cp001", "0123456789abcdef0123", nil, false},
		{"unknown name", "CP002", "0123456789abcdef0123", nil, false},
		{"another user's password", "csms", "root-secret", nil, false},
		{"role allowed", "CP001", "0123456789abcdef0123", []Role{RoleChargePoint}, true},
		{"role not allowed", "CP001", "0123456789abcdef0123", []Role{RoleMQTT, RoleAdmin}, false},
		{"one of the roles", "root", "root-secret", []Role{RoleMQTT, RoleAdmin}, true},
		{"mqtt user on the OCPP port", "csms", "csms-secret", []Role{RoleChargePoint}, false},
		{"unknown with roles", "nobody", "x", []Role{RoleChargePoint}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, ok := db.CheckRole(tt.user, tt.password, tt.roles...)
			if ok != tt.want {
				t.Fatalf("CheckRole(%q, %q, %v) ok = %v, want %v", tt.user, tt.password, tt.roles, ok, tt.want)
			}
			if ok && u.Name != tt.user {
				t.Errorf("user = %+v", u)
			}
			if !ok && (u.Name != "" || u.Role != "") {
				t.Errorf("failed check returned user %+v", u)
			}
			if len(tt.roles) == 0 {
				if _, ok2 := db.Check(tt.user, tt.password); ok2 != ok {
					t.Errorf("Check and CheckRole without roles disagree")
				}
			}
		})
	}
}

// TestDummies: a failure for an unknown name verifies against a dummy of the
// kind a wrong password would cost, at the cost most users have.
func TestSameAs(t *testing.T) {
	t.Parallel()
	cp := stored(t, RoleChargePoint, "0123456789abcdef")
	bc := stored(t, RoleMQTT, "pw")
	parse := func(entries ...string) *DB {
		t.Helper()
		db, err := Parse([]byte("users:\n" + strings.Join(entries, "")))
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	cp1 := "  - {name: CP1, role: chargepoint, password: \"" + cp + "\"}\n"
	mq := func(pub string) string {
		return "  - {name: u, role: mqtt, password: \"" + bc + "\", pub: [" + pub + "]}\n"
	}
	base := parse(cp1, mq("a"))
	tests := []struct {
		name string
		old  *DB
		new  *DB
		user string
		want bool
	}{
		{"unchanged", base, parse(mq("a"), cp1), "CP1", true},
		{"unchanged mqtt", base, parse(cp1, mq("a")), "u", true},
		{"removed", base, parse(mq("a")), "CP1", false},
		{"added", parse(mq("a")), base, "CP1", false},
		{"in neither", base, base, "nobody", true},
		{"rules changed", base, parse(cp1, mq("a, b")), "u", false},
		{"key rewritten", base, parse("  - {name: CP1, role: chargepoint, password: \""+stored(t, RoleChargePoint, "0123456789abcdef")+"\"}\n", mq("a")), "CP1", false},
		{"min_profile raised", base, parse("  - {name: CP1, role: chargepoint, min_profile: 3, password: \""+cp+"\"}\n", mq("a")), "CP1", false},
		{"nil old", nil, base, "CP1", false},
		{"nil old, absent", nil, base, "nobody", true},
	}
	for _, tt := range tests {
		if got := tt.new.SameAs(tt.old, tt.user); got != tt.want {
			t.Errorf("%s: SameAs(%q) = %v, want %v", tt.name, tt.user, got, tt.want)
		}
	}
}

func TestDummies(t *testing.T) {
	t.Parallel()
	cpOnly, err := Parse([]byte("users:\n  - {name: CP1, role: chargepoint, password: \"" + stored(t, RoleChargePoint, "k") + "\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cpOnly.dummyBcrypt != nil || cpOnly.dummySHA.kind != kindSHA256 {
		t.Errorf("charge-point-only DB: dummies %+v, %+v; want SHA-256 only", cpOnly.dummyBcrypt, cpOnly.dummySHA)
	}
	h5, err := HashPassword(RoleMQTT, "p", bcrypt.MinCost+1)
	if err != nil {
		t.Fatal(err)
	}
	mixed, err := Parse([]byte(fmt.Sprintf(`users:
  - {name: a, role: mqtt, password: %q}
  - {name: b, role: mqtt, password: %q}
  - {name: c, role: admin, password: %q}
`, h5, h5, stored(t, RoleAdmin, "p"))))
	if err != nil {
		t.Fatal(err)
	}
	if mixed.dummyBcrypt == nil || mixed.dummyBcrypt.cost != bcrypt.MinCost+1 {
		t.Fatalf("dummy bcrypt = %+v, want cost %d (the most common)", mixed.dummyBcrypt, bcrypt.MinCost+1)
	}
	tests := []struct {
		db    *DB
		roles []Role
		want  kind
	}{
		{cpOnly, nil, kindSHA256},
		{cpOnly, []Role{RoleMQTT}, kindSHA256}, // no bcrypt users: no account name to hide
		{mixed, nil, kindBcrypt},
		{mixed, []Role{RoleChargePoint}, kindSHA256}, // the OCPP port never pays bcrypt for a stranger
		{mixed, []Role{RoleMQTT, RoleAdmin}, kindBcrypt},
		{mixed, []Role{RoleAdmin}, kindBcrypt},
		{mixed, []Role{RoleChargePoint, RoleMQTT}, kindBcrypt},
	}
	for _, tt := range tests {
		if got := tt.db.dummyFor(tt.roles).kind; got != tt.want {
			t.Errorf("dummyFor(%v) kind = %v, want %v (DB with %d users)", tt.roles, got, tt.want, tt.db.Len())
		}
	}
}

func TestCheckCache(t *testing.T) {
	t.Parallel()
	db, err := Parse([]byte(testFile(t)))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := db.Check("csms", "wrong"); ok || db.cacheLen() != 0 {
		t.Fatalf("a failed check was cached (%d entries)", db.cacheLen())
	}
	if _, ok := db.Check("CP001", "0123456789abcdef0123"); !ok || db.cacheLen() != 0 {
		t.Fatalf("a SHA-256 check was cached (%d entries)", db.cacheLen())
	}
	for range 3 {
		if _, ok := db.Check("csms", "csms-secret"); !ok {
			t.Fatal("Check(csms) failed")
		}
	}
	if db.cacheLen() != 1 {
		t.Errorf("cache holds %d entries after three good checks, want 1", db.cacheLen())
	}
	// A cached success for one name is not a success for another with the
	// same password, nor for the same name with another password.
	if _, ok := db.Check("root", "csms-secret"); ok {
		t.Error("cache let another user in")
	}
	if _, ok := db.Check("csms", "csms-secret2"); ok {
		t.Error("cache let another password in")
	}
	// A new DB from the same file starts with an empty cache.
	db2, err := Parse([]byte(testFile(t)))
	if err != nil {
		t.Fatal(err)
	}
	if db2.cacheLen() != 0 || db2.cacheKey == db.cacheKey {
		t.Error("a reloaded DB shares the cache or its key")
	}
}

func TestCacheBound(t *testing.T) {
	t.Parallel()
	db, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	key := func(i int) (k [32]byte) { // cheap distinct keys (HMAC is slow under -race)
		k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
		return k
	}
	for i := range cacheSize + 10 {
		db.remember(key(i))
		db.remember(key(i)) // remembering twice takes one slot
	}
	if db.cacheLen() != cacheSize {
		t.Errorf("cache holds %d, want %d", db.cacheLen(), cacheSize)
	}
	for i := range 10 {
		if db.cached(key(i)) {
			t.Errorf("entry %d, among the oldest, was not dropped", i)
		}
	}
	if !db.cached(key(10)) || !db.cached(key(cacheSize+9)) {
		t.Error("a recent entry is missing")
	}
}

// TestCheckConcurrent is for -race: many goroutines checking at once, with
// the cache being filled and read.
func TestCheckConcurrent(t *testing.T) {
	t.Parallel()
	db, err := Parse([]byte(testFile(t)))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 6 {
				pw := "csms-secret"
				if (i+j)%3 == 0 {
					pw = "wrong"
				}
				if _, ok := db.Check("csms", pw); ok != (pw == "csms-secret") {
					t.Errorf("Check(csms, %q) = %v", pw, ok)
				}
				if _, ok := db.CheckRole("CP001", "0123456789abcdef0123", RoleChargePoint); !ok {
					t.Error("Check(CP001) failed")
				}
				db.Lookup("root")
			}
		}()
	}
	wg.Wait()
}

func BenchmarkCheckChargePoint(b *testing.B) {
	db, err := Parse([]byte(testFile(b)))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, ok := db.CheckRole("CP001", "0123456789abcdef0123", RoleChargePoint); !ok {
			b.Fatal("check failed")
		}
	}
}

func BenchmarkCheckCachedBcrypt(b *testing.B) {
	db, err := Parse([]byte(testFile(b)))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, ok := db.Check("csms", "csms-secret"); !ok {
			b.Fatal("check failed")
		}
	}
}

// TestMinProfile: a chargepoint user's minimum security profile is read
// from the file and written back by AddUser, so `users add --min-profile`
// and a hand-edited file agree.
func TestMinProfile(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "users.yaml")
	if _, err := AddUser(f, User{Name: "CP3", Role: RoleChargePoint, MinProfile: 3}, "0123456789abcdef", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	if _, err := AddUser(f, User{Name: "CP0", Role: RoleChargePoint}, "0123456789abcdef", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	if _, err := AddUser(f, User{Name: "u", Role: RoleMQTT, MinProfile: 2, Sub: []string{"#"}}, "pw", bcrypt.MinCost); err == nil {
		t.Error("AddUser accepted min_profile on an mqtt user")
	}
	db, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"CP3": 3, "CP0": 0} {
		if u, _ := db.Lookup(name); u.MinProfile != want {
			t.Errorf("%s: MinProfile %d, want %d", name, u.MinProfile, want)
		}
	}
}
