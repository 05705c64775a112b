package topic

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports holds docs/architecture.md's import rule: this package imports no project package.
func TestImports(t *testing.T) {
	for _, test := range []bool{false, true} {
		p, err := build.ImportDir(".", 0)
		if err != nil {
			t.Fatal(err)
		}
		imports := p.Imports
		if test {
			imports = append(p.TestImports, p.XTestImports...)
		}
		for _, imp := range imports {
			if strings.HasPrefix(imp, "github.com/chargemq/") {
				t.Errorf("imports %s (test files: %v)", imp, test)
			}
		}
	}
}
