package importrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// module is the project's module path.
const module = "github.com/chargemq/chargemq"

// mochi is the MQTT broker library's module path.
const mochi = "github.com/mochi-mqtt/server/v2"

// rule forbids packages under from from depending, directly or not, on
// anything under one of the forbidden prefixes. A package "under" a prefix is
// the prefix itself or a path below it.
type rule struct {
	from      string
	forbidden []string
	// allowOwn exempts dependencies under from itself (a leaf may have
	// internal subpackages).
	allowOwn bool
}

// rules is docs/architecture.md's "Imports flow one way" table.
func rules() []rule {
	m := func(p string) string { return module + "/" + p }
	return []rule{
		{from: m("hooks"), forbidden: []string{m("broker"), m("ocpp"), m("schemas"), m("cmd")}},
		{from: m("ocpp"), forbidden: []string{mochi, m("broker"), m("hooks"), m("schemas"), m("cmd")}},
		{from: m("schemas"), forbidden: []string{module}, allowOwn: true},
		{from: m("broker/topic"), forbidden: []string{module}, allowOwn: true},
		{from: m("broker/users"), forbidden: []string{module}, allowOwn: true},
		{from: m("broker/certs"), forbidden: []string{module}, allowOwn: true},
		{from: m("broker/web"), forbidden: []string{module}, allowOwn: true},
		{from: m("internal/testpki"), forbidden: []string{module}, allowOwn: true},
		{from: m("broker"), forbidden: []string{m("cmd")}},
	}
}

// under reports whether path is prefix or below it.
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// pkg is the part of `go list -json` output the rules need.
type pkg struct {
	ImportPath string
	Deps       []string // transitive, non-test
}

// violations returns one line per forbidden dependency, sorted.
func violations(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		for _, r := range rules() {
			if !under(p.ImportPath, r.from) {
				continue
			}
			for _, d := range p.Deps {
				if r.allowOwn && under(d, r.from) {
					continue
				}
				for _, f := range r.forbidden {
					if under(d, f) && d != p.ImportPath {
						out = append(out, fmt.Sprintf("%s depends on %s (forbidden for %s/...)", p.ImportPath, d, r.from))
						break
					}
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// listPackages runs `go list -e -json` over the whole module. -e keeps
// packages that do not build yet (their imports are still reported), and an
// empty directory simply yields no package, so rules about packages not yet
// written hold trivially.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	goBin, err := exec.LookPath("go") // go test puts GOROOT/bin on PATH
	if err != nil {
		t.Fatalf("go command not found: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-e", "-json=ImportPath,Deps", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestImportRules holds the project's import direction.
func TestImportRules(t *testing.T) {
	t.Parallel()
	pkgs := listPackages(t)
	seen := false
	for _, p := range pkgs {
		if p.ImportPath == module+"/internal/importrules" {
			seen = true
		}
	}
	if !seen {
		t.Fatalf("go list did not report this package; got %d packages", len(pkgs))
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
	var names []string
	for _, p := range pkgs {
		names = append(names, strings.TrimPrefix(p.ImportPath, module+"/"))
	}
	t.Logf("checked %d packages: %s", len(pkgs), strings.Join(names, " "))
}

// TestViolations checks that each rule really fails when broken, and that
// allowed edges pass, on made-up dependency lists.
func TestViolations(t *testing.T) {
	t.Parallel()
	m := func(p string) string { return module + "/" + p }
	tests := []struct {
		name string
		pkg  pkg
		bad  bool
	}{
		{"hooks imports broker", pkg{m("hooks/access"), []string{m("broker")}}, true},
		{"hooks imports broker/topic", pkg{m("hooks/route"), []string{m("broker/topic")}}, true},
		{"hooks imports ocpp", pkg{m("hooks/route"), []string{m("ocpp")}}, true},
		{"hooks imports schemas", pkg{m("hooks"), []string{m("schemas")}}, true},
		{"hooks imports mochi", pkg{m("hooks/access"), []string{mochi, mochi + "/packets"}}, false},
		{"ocpp imports mochi", pkg{m("ocpp"), []string{mochi + "/packets"}}, true},
		{"ocpp imports broker", pkg{m("ocpp"), []string{m("broker")}}, true},
		{"ocpp imports hooks", pkg{m("ocpp"), []string{m("hooks/route")}}, true},
		{"ocpp imports schemas", pkg{m("ocpp"), []string{m("schemas")}}, true},
		{"ocpp imports websocket", pkg{m("ocpp"), []string{"github.com/coder/websocket"}}, false},
		{"schemas imports ocpp", pkg{m("schemas"), []string{m("ocpp")}}, true},
		{"schemas imports own subpackage", pkg{m("schemas"), []string{m("schemas/v16")}}, false},
		{"schemas imports gojsonschema", pkg{m("schemas"), []string{"github.com/xeipuuv/gojsonschema"}}, false},
		{"topic imports ocpp", pkg{m("broker/topic"), []string{m("ocpp")}}, true},
		{"topic imports broker", pkg{m("broker/topic"), []string{m("broker")}}, true},
		{"broker imports cmd", pkg{m("broker"), []string{m("cmd/chargemq")}}, true},
		{"broker imports its leaves", pkg{m("broker"), []string{m("broker/topic"), m("hooks/route"), m("ocpp"), mochi}}, false},
		{"cmd imports everything", pkg{m("cmd/chargemq"), []string{m("broker"), m("ocpp"), m("schemas"), m("hooks/access")}}, false},
		{"a name that only shares a prefix", pkg{m("ocppx"), []string{mochi}}, false},
		{"brokerage is not broker", pkg{m("hooks/a"), []string{m("brokerage")}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := violations([]pkg{tt.pkg})
			if got := len(v) > 0; got != tt.bad {
				t.Errorf("violations(%v) = %q, want violation: %v", tt.pkg, v, tt.bad)
			}
		})
	}
}
