package mqtttest

import (
	"fmt"
	"go/build"
	"strings"
	"testing"
)

// project is the import path prefix of chargemq's packages.
const project = "github.com/chargemq/"

// TestSupport is the import path under which the hooks' shared test support lives (this package
// among it): the only project packages that a hook's test files may import.
const TestSupport = "github.com/chargemq/chargemq/hooks/internal"

// CheckImports fails t unless the package in dir holds docs/architecture.md's import rule for hooks:
// its non-test files import no project package, and its test files none but those under
// TestSupport. Hooks know mochi and nothing of the rest of chargemq, so that the broker and the
// gateway can be changed without them; each hook package calls this from its TestImports, so
// that the rule is stated once.
func CheckImports(t testing.TB, dir string) {
	t.Helper()
	p, err := build.ImportDir(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range importViolations(p.Imports, append(p.TestImports, p.XTestImports...)) {
		t.Error(v)
	}
}

// importViolations returns one message per import that breaks the hooks' rule, given the
// imports of a package's non-test and of its test files.
func importViolations(imports, testImports []string) []string {
	var out []string
	for _, imp := range imports {
		if strings.HasPrefix(imp, project) {
			out = append(out, fmt.Sprintf("imports %s (test files: false)", imp))
		}
	}
	for _, imp := range testImports {
		if strings.HasPrefix(imp, project) && imp != TestSupport && !strings.HasPrefix(imp, TestSupport+"/") {
			out = append(out, fmt.Sprintf("imports %s (test files: true)", imp))
		}
	}
	return out
}
