package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version overrides the module version when set at build time with
// -ldflags "-X main.version=v1.2.3"; empty, the build info's is used.
var version string

// buildVersion returns the version line `graftlb version` prints: the
// module version (from -X main.version, else the build info: "(devel)" for
// a build from a checkout), the VCS revision and its time, "+dirty" when
// the work tree had changes, and the Go version.
//
// The revision is stamped by `go build -buildvcs=auto` (the Makefile's
// build and image targets) in a git clone; Go does not stamp builds in a
// git worktree, nor with GOFLAGS=-buildvcs=false, and then it says
// "revision unknown".
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "graftlb " + orDefault(version, "unknown") + " (no build info)"
	}
	return formatVersion(bi, version)
}

// formatVersion renders bi as buildVersion's line; override, if set,
// replaces the module version.
func formatVersion(bi *debug.BuildInfo, override string) string {
	v := orDefault(override, bi.Main.Version)
	v = orDefault(v, "(devel)")
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	line := "graftlb " + v
	if rev != "" {
		line += " revision " + rev + dirty
		if at != "" {
			line += " (" + at + ")"
		}
	} else {
		line += " revision unknown"
	}
	return line + " " + bi.GoVersion
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func runVersion(_ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, buildVersion())
	return 0
}
