package mqtttest

import (
	"go/build"
	"slices"
	"strings"
	"testing"
)

// TestImports holds this package's own rule: it imports only the standard library, mochi and
// paho.golang, so that hooks' tests that use it pull in nothing else.
func TestImports(t *testing.T) {
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Imports) == 0 {
		t.Fatal("no imports found")
	}
	for _, imp := range p.Imports {
		std := !strings.Contains(strings.Split(imp, "/")[0], ".")
		lib := imp == "github.com/mochi-mqtt/server/v2" ||
			strings.HasPrefix(imp, "github.com/mochi-mqtt/server/v2/") ||
			strings.HasPrefix(imp, "github.com/eclipse/paho.golang/")
		if !std && !lib {
			t.Errorf("imports %s", imp)
		}
	}
	CheckImports(t, ".")
}

// TestImportViolations checks that CheckImports' rule fails when broken and passes what it
// allows, on made-up import lists.
func TestImportViolations(t *testing.T) {
	const m = "github.com/chargemq/chargemq/"
	cases := []struct {
		name          string
		imports, test []string
		want          []string
	}{
		{"none", nil, nil, nil},
		{"libraries", []string{"strings", "github.com/mochi-mqtt/server/v2"}, []string{"testing", "github.com/eclipse/paho.golang/paho"}, nil},
		{"test support in tests", nil, []string{m + "hooks/internal/mqtttest", m + "hooks/internal"}, nil},
		{"test support in code", []string{m + "hooks/internal/mqtttest"}, nil, []string{"imports " + m + "hooks/internal/mqtttest (test files: false)"}},
		{"project in code", []string{m + "broker/topic"}, nil, []string{"imports " + m + "broker/topic (test files: false)"}},
		{"project in tests", nil, []string{m + "broker/topic"}, []string{"imports " + m + "broker/topic (test files: true)"}},
		{"other hook in tests", nil, []string{m + "hooks/access"}, []string{"imports " + m + "hooks/access (test files: true)"}},
		{"look-alike of test support", nil, []string{m + "hooks/internalx"}, []string{"imports " + m + "hooks/internalx (test files: true)"}},
		{"other module of the project", []string{"github.com/chargemq/other"}, []string{"github.com/chargemq/other"}, []string{"imports github.com/chargemq/other (test files: false)", "imports github.com/chargemq/other (test files: true)"}},
	}
	for _, c := range cases {
		if got := importViolations(c.imports, c.test); !slices.Equal(got, c.want) {
			t.Errorf("%s: importViolations(%q, %q) = %q, want %q", c.name, c.imports, c.test, got, c.want)
		}
	}
}
