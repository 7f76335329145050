package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set at link time to override what the build info says, e.g.
//
//	go build -ldflags "-X main.version=v1.4.0 -X main.revision=$(git rev-parse HEAD)" ./cmd/otpprobe
var version, revision, buildTime string

// buildVersion is what this binary is: the module version (or "(devel)"
// for a build from a checkout), the VCS revision and its commit time
// (Go stamps both when building inside a git checkout), and whether the
// tree had local changes. -ldflags values win.
type buildVersion struct {
	Version, Revision, Time string
	Modified                bool
	GoVersion               string
}

func currentVersion() buildVersion {
	v := buildVersion{Version: "(devel)", GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		v.Version = version
	}
	if revision != "" {
		v.Revision, v.Modified = revision, false
	}
	if buildTime != "" {
		v.Time = buildTime
	}
	return v
}

func (v buildVersion) String() string {
	s := "otpprobe " + v.Version
	if v.Revision != "" {
		s += " (" + v.Revision
		if v.Modified {
			s += ", modified"
		}
		if v.Time != "" {
			s += ", " + v.Time
		}
		s += ")"
	}
	return s + " " + v.GoVersion
}

func cmdVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", stderr)
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	fmt.Fprintln(stdout, currentVersion())
	return exitOK
}
