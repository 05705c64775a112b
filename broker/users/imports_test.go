package users

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports holds the package's import rule: a leaf that imports no project
// package and, besides the standard library, only bcrypt and yaml.
func TestImports(t *testing.T) {
	t.Parallel()
	allowed := map[string]bool{"golang.org/x/crypto/bcrypt": true, "go.yaml.in/yaml/v3": true}
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range p.Imports {
		if strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") && !allowed[imp] {
			t.Errorf("imports %s", imp)
		}
	}
	for _, imp := range append(p.TestImports, p.XTestImports...) {
		if strings.HasPrefix(imp, "github.com/chargemq/") {
			t.Errorf("test imports %s", imp)
		}
	}
}
