package schemas

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"testing"
)

// update makes TestGeneratedSchemas rewrite the schema files instead of comparing them: this test
// is the generator (`go generate ./schemas`), so the table, the renderer and the staleness check
// share one code path and the package keeps no exported generator API.
var update = flag.Bool("update", false, "rewrite the generated schema files from the message tables")

// generate renders every schema file of a protocol: file name -> contents.
func generate(t *testing.T, p protocol) map[string][]byte {
	t.Helper()
	out := make(map[string][]byte)
	for _, d := range p.defs() {
		for _, response := range []bool{false, true} {
			name := schemaName(d.name, response)
			msg := d.request
			if response {
				msg = d.response
			}
			b, err := renderSchema(p.defaultPrefix+name, name, msg)
			if err != nil {
				t.Fatal(err)
			}
			out[name+".json"] = b
		}
	}
	return out
}

func TestGeneratedSchemas(t *testing.T) {
	for _, name := range protocolNames() {
		p, _ := lookupProtocol(name)
		want := generate(t, p)
		if *update {
			writeGenerated(t, p.dir, want)
			continue
		}
		got := make(map[string]bool)
		entries, err := fs.ReadDir(p.files, p.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if path.Ext(e.Name()) != ".json" {
				continue
			}
			got[e.Name()] = true
			b, _ := fs.ReadFile(p.files, path.Join(p.dir, e.Name()))
			if w, ok := want[e.Name()]; !ok {
				t.Errorf("%s/%s: not generated from the table (stale file?); run go generate ./schemas", p.dir, e.Name())
			} else if !bytes.Equal(b, w) {
				t.Errorf("%s/%s: differs from the table; run go generate ./schemas", p.dir, e.Name())
			}
		}
		for n := range want {
			if !got[n] {
				t.Errorf("%s/%s: missing; run go generate ./schemas", p.dir, n)
			}
		}
	}
}

func writeGenerated(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	old, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range old {
		if _, keep := files[filepath.Base(f)]; !keep {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d files to %s", len(files), dir)
}
