package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// version and commit are set at link time by the Makefile:
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.commit=abc1234"
//
// The linker writes them; nothing does at run time, so they are constants
// in all but name.
var (
	version = "dev"
	commit  = "unknown"
)

// versionInfo is what `chargemq version` prints and what serve logs at start.
type versionInfo struct {
	Version   string
	Commit    string
	GoVersion string
	Platform  string
}

// buildVersion resolves the version: the ldflags values first, then what the
// Go toolchain recorded (the module version for `go install ...@v1.2.3`, the
// VCS revision for a `go build` in a git checkout without -buildvcs=false).
func buildVersion() versionInfo {
	v := versionInfo{
		Version:   version,
		Commit:    commit,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v.Version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v.Version = info.Main.Version
	}
	if v.Commit == "unknown" {
		var rev string
		dirty := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			v.Commit = rev
		}
	}
	return v
}

// versionAction prints the version as "key: value" lines after the first, so
// scripts can grep them and people can read them.
func (p *program) versionAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("version: unexpected argument %q", c.Args().First())
	}
	v := buildVersion()
	_, err := fmt.Fprintf(p.stdout, "chargemq %s\ncommit: %s\ngo: %s %s\n", v.Version, v.Commit, v.GoVersion, v.Platform)
	return err
}
