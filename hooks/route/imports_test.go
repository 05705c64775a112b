package route

import (
	"testing"

	"github.com/chargemq/chargemq/hooks/internal/mqtttest"
)

// TestImports holds docs/architecture.md's import rule for hooks: this package imports no project
// package, and its test files none but the shared test support under hooks/internal.
func TestImports(t *testing.T) { mqtttest.CheckImports(t, ".") }
