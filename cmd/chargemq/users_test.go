package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/chargemq/chargemq/broker/users"
)

// Like main_test.go, these tests are not parallel: urfave/cli keeps package state.

// usersRun runs `chargemq users args...` with stdin and the environment env, and returns
// stdout, stderr and the error.
func usersRun(t *testing.T, stdin string, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	p := &program{stdin: strings.NewReader(stdin), stdout: &stdout, stderr: &stderr,
		lookupEnv: envOf(env), serve: failServe(t), exit: failExit(t)}
	err := p.run(context.Background(), append([]string{"chargemq", "users"}, args...))
	return stdout.String(), stderr.String(), err
}

// TestUsersAddThroughRun drives the real run, with the real os.Stdin replaced by a pipe, as
// the process would be.
func TestUsersAddThroughRun(t *testing.T) {
	f := filepath.Join(t.TempDir(), "users.yaml")
	const key = "0123456789abcdef0123456789abcdef01234567"
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString(key + "\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	old := os.Stdin
	os.Stdin = r
	t.Cleanup(func() { os.Stdin = old; r.Close() })

	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"chargemq", "users", "add", "CP1", "--users-file", f, "--role", "chargepoint", "--password-stdin"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	if stdout.Len() != 0 || stderr.Len() != 0 {
		t.Errorf("stdout %q, stderr %q; want both empty", stdout.String(), stderr.String())
	}
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	content, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(content, []byte(key)) {
		t.Errorf("the file holds the plain-text key:\n%s", content)
	}
	if !regexp.MustCompile(`password: "sha256:[0-9a-f]{32}:[0-9a-f]{64}"`).Match(content) {
		t.Errorf("no salted SHA-256 in the file:\n%s", content)
	}
	db, err := users.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := db.CheckRole("CP1", key, users.RoleChargePoint); !ok {
		t.Error("CP1 cannot log in with its key")
	}
}

func TestUsersAdd(t *testing.T) {
	const key = "0123456789abcdef0123"
	tests := []struct {
		name       string
		stdin      string
		env        map[string]string
		args       []string // after "users"; FILE is replaced by the users file
		wantErr    string   // substring of stderr on error
		wantStderr string   // substring of stderr on success
		login      string   // name that must then log in with the password from stdin
		wantRole   users.Role
		wantPub    []string
		wantSub    []string
	}{
		{name: "flags after the name", stdin: key + "\n",
			args:  []string{"add", "CP1", "--users-file", "FILE", "--password-stdin"},
			login: "CP1", wantRole: users.RoleChargePoint},
		{name: "flags before the name", stdin: key + "\n",
			args:  []string{"add", "--users-file", "FILE", "--password-stdin", "CP1"},
			login: "CP1", wantRole: users.RoleChargePoint},
		{name: "flags on both sides, = form", stdin: key + "\r\n",
			args:  []string{"add", "--role=chargepoint", "CP1", "--users-file=FILE"},
			login: "CP1", wantRole: users.RoleChargePoint},
		{name: "file from the environment", stdin: key, env: map[string]string{"CHARGEMQ_USERS_FILE": "FILE"},
			args:  []string{"add", "CP1", "--password-stdin"},
			login: "CP1", wantRole: users.RoleChargePoint},
		{name: "mqtt user with rules", stdin: "pw\n",
			args: []string{"add", "csms", "--users-file", "FILE", "--role", "mqtt", "--pub", "ocpp/cs/#",
				"--sub", "ocpp/#", "--sub", "csms/%u/a,b", "--bcrypt-cost", "4"},
			login: "csms", wantRole: users.RoleMQTT, wantPub: []string{"ocpp/cs/#"}, wantSub: []string{"ocpp/#", "csms/%u/a,b"}},
		{name: "admin", stdin: "pw\n", args: []string{"add", "root", "--role", "admin", "--users-file", "FILE", "--bcrypt-cost", "4"},
			login: "root", wantRole: users.RoleAdmin},
		{name: "name starting with a dash after --", stdin: key + "\n",
			args:  []string{"add", "--users-file", "FILE", "--", "-CP1"},
			login: "-CP1", wantRole: users.RoleChargePoint},
		{name: "short key warns", stdin: "short\n", args: []string{"add", "CP1", "--users-file", "FILE"},
			wantStderr: "warning: CP1: charge point key shorter than 16", login: "CP1", wantRole: users.RoleChargePoint},
		{name: "mqtt without rules warns", stdin: "pw\n", args: []string{"add", "u", "--role", "mqtt", "--users-file", "FILE", "--bcrypt-cost", "4"},
			wantStderr: "neither publish nor subscribe", login: "u", wantRole: users.RoleMQTT},

		{name: "no users file", stdin: key, args: []string{"add", "CP1"}, wantErr: "--users-file (or $CHARGEMQ_USERS_FILE) is required"},
		{name: "no name", stdin: key, args: []string{"add", "--users-file", "FILE"}, wantErr: "want one NAME argument, got 0"},
		{name: "two names", stdin: key, args: []string{"add", "CP1", "CP2", "--users-file", "FILE"}, wantErr: "want one NAME argument, got 2"},
		{name: "no password", args: []string{"add", "CP1", "--users-file", "FILE"}, wantErr: "no password on stdin"},
		{name: "empty line", stdin: "\n", args: []string{"add", "CP1", "--users-file", "FILE", "--password-stdin"}, wantErr: "no password on stdin"},
		{name: "bad role", stdin: key, args: []string{"add", "CP1", "--users-file", "FILE", "--role", "owner"}, wantErr: `unknown role "owner"`},
		{name: "colon in name", stdin: key, args: []string{"add", "a:b", "--users-file", "FILE"}, wantErr: "contains ':'"},
		{name: "rules on a charge point", stdin: key, args: []string{"add", "CP1", "--users-file", "FILE", "--sub", "#"}, wantErr: "charge points have no MQTT access"},
		{name: "bad filter", stdin: "pw", args: []string{"add", "u", "--role", "mqtt", "--users-file", "FILE", "--pub", "a/#/b"}, wantErr: "pub[0]: topic filter"},
		{name: "unknown flag", stdin: key, args: []string{"add", "CP1", "--users-file", "FILE", "--rol", "mqtt"}, wantErr: "flag provided but not defined: -rol"},
		{name: "generate and stdin", args: []string{"add", "CP1", "--users-file", "FILE", "--generate", "--password-stdin"}, wantErr: "exclude each other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "users.yaml")
			args := slices.Clone(tt.args)
			for i, a := range args {
				args[i] = strings.ReplaceAll(a, "FILE", f)
			}
			env := map[string]string{}
			for k, v := range tt.env {
				env[k] = strings.ReplaceAll(v, "FILE", f)
			}
			_, stderr, err := usersRun(t, tt.stdin, env, args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(stderr, tt.wantErr) {
					t.Fatalf("err = %v, stderr %q; want an error with %q", err, stderr, tt.wantErr)
				}
				if _, serr := os.Stat(f); serr == nil {
					t.Error("a failed add wrote the file")
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, stderr %q", err, stderr)
			}
			if !strings.Contains(stderr, tt.wantStderr) || tt.wantStderr == "" && stderr != "" {
				t.Errorf("stderr = %q, want %q", stderr, tt.wantStderr)
			}
			db, err := users.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			password := strings.TrimRight(tt.stdin, "\r\n")
			u, ok := db.Check(tt.login, password)
			if !ok {
				t.Fatalf("%s cannot log in with %q", tt.login, password)
			}
			if u.Role != tt.wantRole || !slices.Equal(u.Pub, tt.wantPub) || !slices.Equal(u.Sub, tt.wantSub) {
				t.Errorf("user = %+v, want role %s pub %q sub %q", u, tt.wantRole, tt.wantPub, tt.wantSub)
			}
		})
	}
}

func TestUsersAddReplaceAndGenerate(t *testing.T) {
	f := filepath.Join(t.TempDir(), "users.yaml")
	if _, stderr, err := usersRun(t, "old-key-0123456789\n", nil, "add", "CP1", "--users-file", f); err != nil {
		t.Fatalf("add: %v %s", err, stderr)
	}
	_, stderr, err := usersRun(t, "new-key-0123456789\n", nil, "add", "CP1", "--users-file", f)
	if err == nil || !strings.Contains(stderr, "already exists") || !strings.Contains(stderr, "--replace") {
		t.Fatalf("second add: %v, stderr %q; want an error pointing at --replace", err, stderr)
	}
	stdout, stderr, err := usersRun(t, "", nil, "add", "CP1", "--users-file", f, "--replace", "--generate")
	if err != nil {
		t.Fatalf("replace: %v %s", err, stderr)
	}
	key := strings.TrimSuffix(stdout, "\n")
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(key) {
		t.Fatalf("--generate printed %q, want 40 hex digits", stdout)
	}
	db, err := users.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := db.Check("CP1", key); !ok {
		t.Error("the generated key does not log in")
	}
	if _, ok := db.Check("CP1", "old-key-0123456789"); ok {
		t.Error("the replaced key still logs in")
	}
	if db.Len() != 1 {
		t.Errorf("%d users, want 1", db.Len())
	}
}

func TestUsersRemoveAndList(t *testing.T) {
	f := filepath.Join(t.TempDir(), "users.yaml")
	for _, args := range [][]string{
		{"add", "CP1", "--users-file", f, "--min-profile", "3"},
		{"add", "CP2", "--users-file", f},
		{"add", "csms", "--users-file", f, "--role", "mqtt", "--pub", "ocpp/cs/#", "--sub", "ocpp/#", "--sub", "csms/%u/#", "--bcrypt-cost", "4"},
	} {
		if _, stderr, err := usersRun(t, "secret-0123456789\n", nil, args...); err != nil {
			t.Fatalf("%v: %v %s", args, err, stderr)
		}
	}
	if _, stderr, err := usersRun(t, "", nil, "remove", "CP2", "--users-file", f); err != nil {
		t.Fatalf("remove: %v %s", err, stderr)
	}
	_, stderr, err := usersRun(t, "", nil, "remove", "CP2", "--users-file", f)
	if err == nil || !strings.Contains(stderr, "no such user") {
		t.Errorf("remove again: %v, stderr %q", err, stderr)
	}

	stdout, stderr, err := usersRun(t, "", map[string]string{"CHARGEMQ_USERS_FILE": f}, "list")
	if err != nil {
		t.Fatalf("list: %v %s", err, stderr)
	}
	want := "NAME  ROLE         PUB        SUB               MIN_PROFILE\n" +
		"CP1   chargepoint  -          -                 3\n" +
		"csms  mqtt         ocpp/cs/#  ocpp/# csms/%u/#  -\n"
	if stdout != want {
		t.Errorf("list printed\n%s\nwant\n%s", stdout, want)
	}
	for _, s := range []string{"sha256", "bcrypt", "$2a$", "secret"} {
		if strings.Contains(stdout, s) {
			t.Errorf("list shows %q", s)
		}
	}

	if _, stderr, err := usersRun(t, "", nil, "list", "--users-file", filepath.Join(t.TempDir(), "none.yaml")); err == nil ||
		!strings.Contains(stderr, "no such file") {
		t.Errorf("list of a missing file: %v, stderr %q", err, stderr)
	}
	if _, stderr, err := usersRun(t, "", nil, "list", "extra", "--users-file", f); err == nil || !strings.Contains(stderr, `unexpected argument "extra"`) {
		t.Errorf("list extra: %v, stderr %q", err, stderr)
	}
}

func TestUsersImport(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "users.yaml")
	csvFile := filepath.Join(dir, "depot.csv")
	if err := os.WriteFile(csvFile, []byte("name,password,role\nCP001,0123456789abcdef0001,chargepoint\nCP002,short\nops,pw,mqtt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := usersRun(t, "", nil, "import", csvFile, "--users-file", f, "--bcrypt-cost", "4")
	if err != nil {
		t.Fatalf("import: %v %s", err, stderr)
	}
	if stdout != "added 3 users to "+f+"\n" {
		t.Errorf("stdout = %q", stdout)
	}
	if !strings.Contains(stderr, "warning: line 3: CP002: charge point key shorter than 16") || !strings.Contains(stderr, "line 4: ops: mqtt user without") {
		t.Errorf("stderr = %q, want the warnings", stderr)
	}
	// From stdin; a name already there fails the whole import.
	_, stderr, err = usersRun(t, "CP003,0123456789abcdef0003\nCP001,0123456789abcdef0001\n", nil, "import", "-", "--users-file", f)
	if err == nil || !strings.Contains(stderr, `line 2: users: user already exists: "CP001"`) {
		t.Errorf("import of an existing name: %v, stderr %q", err, stderr)
	}
	stdout, stderr, err = usersRun(t, "CP003,0123456789abcdef0003\n", nil, "import", "--users-file", f, "-")
	if err != nil || stdout != "added 1 users to "+f+"\n" {
		t.Fatalf("import from stdin: %v, %q %q", err, stdout, stderr)
	}
	db, err := users.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	for name, pw := range map[string]string{"CP001": "0123456789abcdef0001", "CP002": "short", "ops": "pw", "CP003": "0123456789abcdef0003"} {
		if _, ok := db.Check(name, pw); !ok {
			t.Errorf("%s cannot log in", name)
		}
	}
	if _, stderr, err := usersRun(t, "", nil, "import", filepath.Join(dir, "none.csv"), "--users-file", f); err == nil || !strings.Contains(stderr, "none.csv") {
		t.Errorf("import of a missing CSV: %v, stderr %q", err, stderr)
	}
	_, stderr, err = usersRun(t, "CP9\n", nil, "import", "-", "--users-file", f)
	if err == nil || !strings.Contains(stderr, "line 1: want name,password[,role]") {
		t.Errorf("bad CSV: %v, stderr %q", err, stderr)
	}
}

func TestUsersHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"add", "remove", "list", "import"}},
		{[]string{}, []string{"add", "import"}},
		{[]string{"help", "add"}, []string{"--users-file", "--password-stdin", "--pub", "--replace"}},
		{[]string{"add", "--help"}, []string{"--users-file", "--generate"}},
		{[]string{"import", "CSV", "-h"}, []string{"name,password,role"}},
	}
	for _, tt := range tests {
		stdout, stderr, err := usersRun(t, "", nil, tt.args...)
		if err != nil {
			t.Errorf("users %v: %v %s", tt.args, err, stderr)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("users %v: help does not mention %q:\n%s", tt.args, w, stdout)
			}
		}
	}
	var stdout, stderr bytes.Buffer
	p := &program{stdout: &stdout, stderr: &stderr, lookupEnv: envOf(nil), serve: failServe(t), exit: failExit(t)}
	if err := p.run(context.Background(), []string{"chargemq", "--help"}); err != nil || !strings.Contains(stdout.String(), "users") {
		t.Errorf("chargemq --help does not list users: %v\n%s", err, stdout.String())
	}
}

func TestFlagsFirst(t *testing.T) {
	cmds := []*cli.Command{{Name: "add", Flags: []cli.Flag{
		&cli.StringFlag{Name: "users-file", Aliases: []string{"f"}},
		&cli.GenericFlag{Name: "pub", Value: &filterList{}},
		&cli.BoolFlag{Name: "replace"},
	}}}
	tests := []struct {
		in, want []string
	}{
		{[]string{"add", "CP1", "--users-file", "F"}, []string{"add", "--users-file", "F", "--", "CP1"}},
		{[]string{"add", "--users-file", "F", "CP1"}, []string{"add", "--users-file", "F", "--", "CP1"}},
		{[]string{"add", "CP1", "-f", "F", "--replace", "--pub", "-x"}, []string{"add", "-f", "F", "--replace", "--pub", "-x", "--", "CP1"}},
		{[]string{"add", "CP1", "--replace", "X"}, []string{"add", "--replace", "--", "CP1", "X"}},
		{[]string{"add", "CP1", "--users-file=F"}, []string{"add", "--users-file=F", "--", "CP1"}},
		{[]string{"add", "--", "-CP1", "--replace"}, []string{"add", "--", "-CP1", "--replace"}},
		{[]string{"add", "CP1", "--users-file"}, []string{"add", "--users-file", "--", "CP1"}}, // missing value: urfave reports it
		{[]string{"add", "-"}, []string{"add", "--", "-"}},
		{[]string{"add"}, []string{"add"}},
		{[]string{"--help"}, []string{"--help"}},
		{[]string{"help", "add"}, []string{"help", "add"}},
		{[]string{"add", "CP1", "--help"}, []string{"add", "--help"}},
		{[]string{"add", "-h", "CP1", "--users-file", "F"}, []string{"add", "--help"}},
		{[]string{"other", "x", "--y"}, []string{"other", "x", "--y"}},
		{[]string{}, []string{}},
	}
	for _, tt := range tests {
		if got := flagsFirst(tt.in, cmds); !slices.Equal(got, tt.want) {
			t.Errorf("flagsFirst(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
