package users

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

const cost = bcrypt.MinCost

// usersPath is a users file path in a fresh directory (the file does not
// exist yet).
func usersPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "users.yaml")
}

// load loads path or fails the test.
func load(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// readFile returns the file's content or fails the test.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAddUser(t *testing.T) {
	t.Parallel()
	path := usersPath(t)
	key := "0123456789abcdef0123456789abcdef01234567"
	if w, err := AddUser(path, User{Name: "CP001", Role: RoleChargePoint}, key, cost); err != nil || w != "" {
		t.Fatalf("AddUser = %q, %v", w, err)
	}
	csms := User{Name: "csms", Role: RoleMQTT, Pub: []string{"ocpp/cs/#"}, Sub: []string{"ocpp/#", "csms/%u/#"}}
	if w, err := AddUser(path, csms, "csms-secret", cost); err != nil || w != "" {
		t.Fatalf("AddUser = %q, %v", w, err)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	content := readFile(t, path)
	for _, secret := range []string{key, "csms-secret"} {
		if strings.Contains(content, secret) {
			t.Errorf("file holds the plain-text password %q:\n%s", secret, content)
		}
	}
	if !strings.HasPrefix(content, "# chargemq users file") {
		t.Errorf("a new file has no header comment:\n%s", content)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the users file (temp files left?)", len(entries))
	}

	db := load(t, path)
	if _, ok := db.CheckRole("CP001", key, RoleChargePoint); !ok {
		t.Error("the added charge point cannot log in")
	}
	u, ok := db.Check("csms", "csms-secret")
	if !ok || strings.Join(u.Pub, " ") != "ocpp/cs/#" || strings.Join(u.Sub, " ") != "ocpp/# csms/%u/#" {
		t.Errorf("Check(csms) = %+v, %v", u, ok)
	}

	// A second add of the same name is refused and leaves the file alone.
	if _, err := AddUser(path, User{Name: "CP001", Role: RoleChargePoint}, "another key 1234567", cost); !errors.Is(err, ErrExists) {
		t.Errorf("AddUser(existing) = %v, want ErrExists", err)
	}
	if readFile(t, path) != content {
		t.Error("a refused add changed the file")
	}
}

func TestAddUserErrorsAndWarnings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		u        User
		password string
		wantErr  string // substring; "" for success
		wantWarn string // substring; "" for no warning
	}{
		{"good key", User{Name: "CP1", Role: RoleChargePoint}, "0123456789abcdef", "", ""},
		{"short key", User{Name: "CP1", Role: RoleChargePoint}, "0123456789abcde", "", "shorter than 16"},
		{"mqtt without rules", User{Name: "u", Role: RoleMQTT}, "pw", "", "neither publish nor subscribe"},
		{"name with / and %u", User{Name: "a/b", Role: RoleMQTT, Sub: []string{"u/%u/#"}}, "pw", "", "%u never match"},
		{"space around password", User{Name: "u", Role: RoleAdmin}, " pw", "", "password starts or ends with a space"},
		{"space around name", User{Name: "CP1 ", Role: RoleChargePoint}, "0123456789abcdef", "", "name starts or ends"},
		{"two warnings", User{Name: "CP1 ", Role: RoleChargePoint}, "short", "", "; "},
		{"empty name", User{Role: RoleChargePoint}, "0123456789abcdef", "name: empty", ""},
		{"colon", User{Name: "a:b", Role: RoleChargePoint}, "0123456789abcdef", "name: name contains ':'", ""},
		{"no role", User{Name: "a"}, "0123456789abcdef", `role: unknown role ""`, ""},
		{"bad role", User{Name: "a", Role: "Admin"}, "0123456789abcdef", `role: unknown role "Admin"`, ""},
		{"empty password", User{Name: "a", Role: RoleMQTT}, "", "password: empty", ""},
		{"73-byte password", User{Name: "a", Role: RoleMQTT}, strings.Repeat("x", 73), "72 bytes", ""},
		{"long key is fine", User{Name: "a", Role: RoleChargePoint}, strings.Repeat("x", 73), "", ""},
		{"bad filter", User{Name: "a", Role: RoleMQTT, Pub: []string{"ok", "a/#/b"}}, "pw", "pub[1]: topic filter", ""},
		{"rules on a charge point", User{Name: "a", Role: RoleChargePoint, Sub: []string{"#"}}, "0123456789abcdef", "sub: charge points", ""},
		{"rules on an admin", User{Name: "a", Role: RoleAdmin, Pub: []string{"#"}}, "pw", "pub: admins", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := usersPath(t)
			w, err := AddUser(path, tt.u, tt.password, cost)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("AddUser = %q, %v; want an error with %q", w, err, tt.wantErr)
				}
				if _, serr := os.Stat(path); !errors.Is(serr, os.ErrNotExist) {
					t.Error("a refused add created the file")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (w == "") != (tt.wantWarn == "") || !strings.Contains(w, tt.wantWarn) {
				t.Errorf("warning = %q, want %q", w, tt.wantWarn)
			}
			if _, ok := load(t, path).Check(tt.u.Name, tt.password); !ok {
				t.Error("the added user cannot log in")
			}
		})
	}
}

// TestAddUserQuotesNames: names YAML would read as numbers, booleans, nulls or
// comments come back as the same strings.
func TestAddUserQuotesNames(t *testing.T) {
	t.Parallel()
	path := usersPath(t)
	names := []string{"1234", "0x10", "1e3", "yes", "true", "null", "~", "#x", "- a", "a #b", "'q'", `"dq"`, "&a", "*a", "!x", "%u", "Ladesäule 7"}
	for _, n := range names {
		if _, err := AddUser(path, User{Name: n, Role: RoleChargePoint}, "0123456789abcdef", cost); err != nil {
			t.Fatalf("AddUser(%q): %v", n, err)
		}
	}
	users, err := List(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != len(names) {
		t.Fatalf("List gave %d users, want %d", len(users), len(names))
	}
	for i, u := range users {
		if u.Name != names[i] {
			t.Errorf("user %d = %q, want %q", i, u.Name, names[i])
		}
	}
}

func TestSetUser(t *testing.T) {
	t.Parallel()
	path := usersPath(t)
	hand := "# depot A\nusers:\n  # the first charger\n  - name: CP1\n    role: chargepoint\n    password: \"" +
		stored(t, RoleChargePoint, "old-key-0123456789") + "\" # rotated yearly\n  - name: CP2\n    role: chargepoint\n    password: \"" +
		stored(t, RoleChargePoint, "cp2-key-0123456789") + "\"\n"
	if err := os.WriteFile(path, []byte(hand), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := SetUser(path, User{Name: "CP1", Role: RoleChargePoint}, "new-key-0123456789", cost); err != nil {
		t.Fatal(err)
	}
	db := load(t, path)
	if _, ok := db.Check("CP1", "old-key-0123456789"); ok {
		t.Error("the old key still works")
	}
	if _, ok := db.Check("CP1", "new-key-0123456789"); !ok {
		t.Error("the new key does not work")
	}
	if _, ok := db.Check("CP2", "cp2-key-0123456789"); !ok {
		t.Error("CP2 was changed")
	}
	users, _ := List(path)
	if len(users) != 2 || users[0].Name != "CP1" {
		t.Errorf("SetUser moved or duplicated the entry: %+v", users)
	}
	content := readFile(t, path)
	for _, c := range []string{"# depot A", "# the first charger", "# rotated yearly"} {
		if !strings.Contains(content, c) {
			t.Errorf("comment %q lost:\n%s", c, content)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v after rewrite, want 0600", fi.Mode().Perm())
	}
	// SetUser of a new name adds it; a role change is allowed.
	if _, err := SetUser(path, User{Name: "CP2", Role: RoleMQTT, Sub: []string{"x"}}, "pw", cost); err != nil {
		t.Fatal(err)
	}
	if u, ok := load(t, path).Check("CP2", "pw"); !ok || u.Role != RoleMQTT {
		t.Errorf("role change: %+v, %v", u, ok)
	}
}

func TestRemoveUser(t *testing.T) {
	t.Parallel()
	path := usersPath(t)
	for _, n := range []string{"a", "b", "c"} {
		if _, err := AddUser(path, User{Name: n, Role: RoleChargePoint}, "0123456789abcdef", cost); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveUser(path, "b"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveUser(path, "b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RemoveUser(gone) = %v, want ErrNotFound", err)
	}
	users, err := List(path)
	if err != nil || len(users) != 2 || users[0].Name != "a" || users[1].Name != "c" {
		t.Errorf("List = %+v, %v", users, err)
	}
	for _, n := range []string{"a", "c"} {
		if err := RemoveUser(path, n); err != nil {
			t.Fatal(err)
		}
	}
	if db := load(t, path); db.Len() != 0 {
		t.Errorf("%d users left", db.Len())
	}
	if err := RemoveUser(usersPath(t), "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RemoveUser on a missing file = %v, want ErrNotFound", err)
	}
}

func TestEditRefusesInvalidFile(t *testing.T) {
	t.Parallel()
	path := usersPath(t)
	bad := "users:\n  - name: CP1\n    role: chargepoint\n    password: plain-text-key\n"
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := AddUser(path, User{Name: "CP2", Role: RoleChargePoint}, "0123456789abcdef", cost)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "users[0].password") {
		t.Errorf("AddUser on an invalid file = %v", err)
	}
	if err := RemoveUser(path, "CP1"); !errors.Is(err, ErrInvalid) {
		t.Errorf("RemoveUser on an invalid file = %v", err)
	}
	if _, err := List(path); !errors.Is(err, ErrInvalid) {
		t.Errorf("List on an invalid file = %v", err)
	}
	if readFile(t, path) != bad {
		t.Error("an invalid file was changed")
	}
	if _, err := List(usersPath(t)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("List on a missing file = %v, want ErrNotExist", err)
	}
}

func TestEditEmptyForms(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "users:\n", "users: []\n", "# just a comment\n"} {
		path := usersPath(t)
		if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := AddUser(path, User{Name: "CP1", Role: RoleChargePoint}, "0123456789abcdef", cost); err != nil {
			t.Errorf("AddUser to %q: %v", in, err)
			continue
		}
		if db := load(t, path); db.Len() != 1 {
			t.Errorf("AddUser to %q: %d users", in, db.Len())
		}
	}
}

func TestEditFollowsSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	real := filepath.Join(dir, "real.yaml")
	link := filepath.Join(dir, "users.yaml")
	if err := os.WriteFile(real, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Skip("no symlinks here:", err)
	}
	if _, err := AddUser(link, User{Name: "CP1", Role: RoleChargePoint}, "0123456789abcdef", cost); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the link was replaced by a file")
	}
	if db := load(t, real); db.Len() != 1 {
		t.Error("the link's target was not written")
	}
}

func TestImport(t *testing.T) {
	t.Parallel()
	path := usersPath(t)
	csv := "\uFEFFname,password,role\n" +
		"CP001,0123456789abcdef0001,chargepoint\n" +
		"# a comment\n" +
		"CP002,0123456789abcdef0002\n" +
		"CP003,short,\n" +
		"ops,\"pw,with,commas\",MQTT\n" +
		"root,rootpw,admin\n"
	added, warnings, err := Import(path, strings.NewReader(csv), cost)
	if err != nil {
		t.Fatal(err)
	}
	if added != 5 {
		t.Errorf("added = %d, want 5", added)
	}
	want := []string{"line 5: CP003: charge point key shorter than 16", "line 6: ops: mqtt user without pub or sub rules"}
	if len(warnings) != len(want) {
		t.Errorf("warnings = %q, want %q…", warnings, want)
	}
	for i, w := range want {
		if i < len(warnings) && !strings.HasPrefix(warnings[i], w) {
			t.Errorf("warning %d = %q, want %q…", i, warnings[i], w)
		}
	}
	db := load(t, path)
	for name, pw := range map[string]string{"CP001": "0123456789abcdef0001", "CP002": "0123456789abcdef0002",
		"CP003": "short", "ops": "pw,with,commas", "root": "rootpw"} {
		if _, ok := db.Check(name, pw); !ok {
			t.Errorf("%s cannot log in", name)
		}
	}
	if u, _ := db.Lookup("ops"); u.Role != RoleMQTT {
		t.Errorf("ops role = %q, want mqtt", u.Role)
	}
	if u, _ := db.Lookup("CP002"); u.Role != RoleChargePoint {
		t.Errorf("CP002 role = %q, want the default chargepoint", u.Role)
	}
	content := readFile(t, path)
	for _, s := range []string{"0123456789abcdef0001", "rootpw", "pw,with,commas"} {
		if strings.Contains(content, s) {
			t.Errorf("file holds plain text %q", s)
		}
	}

	// Importing again: every line is a name already there, nothing written.
	_, _, err = Import(path, strings.NewReader("CP001,0123456789abcdef0009\nCP004,0123456789abcdef0004\nroot,x,admin\n"), cost)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "line 1") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("re-import = %v, want ErrExists naming lines 1 and 3", err)
	}
	if readFile(t, path) != content {
		t.Error("a failed import changed the file")
	}
}

func TestImportErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		csv  string
		want []string
	}{
		{"one field", "CP1\n", []string{"line 1: want name,password[,role], got 1 fields"}},
		{"four fields", "CP1,k,chargepoint,x\n", []string{"line 1: want name,password[,role], got 4"}},
		{"bad role", "CP1,0123456789abcdef,owner\n", []string{`line 1: role: unknown role "owner"`}},
		{"empty password", "CP1,,chargepoint\n", []string{"line 1: password: empty"}},
		{"bad name", "a:b,0123456789abcdef\n", []string{"line 1: name: name contains ':'"}},
		{"duplicate", "CP1,0123456789abcdef\nCP2,0123456789abcdef\nCP1,0123456789abcdef\n", []string{`line 3: "CP1" is also on line 1`}},
		{"every bad line", "CP1,0123456789abcdef,x\nCP2\nCP3,0123456789abcdef\n", []string{"line 1: role", "line 2: want"}},
		{"header later is data", "CP1,0123456789abcdef\nname,password,role\n", []string{`line 2: role: unknown role "role"`}},
		{"broken quoting", "CP1,\"abc\n", []string{"CSV"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := usersPath(t)
			added, _, err := Import(path, strings.NewReader(tt.csv), cost)
			if err == nil {
				t.Fatalf("Import added %d, want an error", added)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if _, serr := os.Stat(path); !errors.Is(serr, os.ErrNotExist) {
				t.Error("a failed import created the file")
			}
		})
	}
}

func TestImportEmpty(t *testing.T) {
	t.Parallel()
	path := usersPath(t)
	added, warnings, err := Import(path, strings.NewReader("name,password,role\n"), cost)
	if err != nil || added != 0 || len(warnings) != 0 {
		t.Fatalf("Import = %d, %q, %v", added, warnings, err)
	}
	if db := load(t, path); db.Len() != 0 {
		t.Error("users appeared")
	}
}
