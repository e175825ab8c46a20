// Package buildinfo says which build this is, for `version`, logs and
// the tcpstated_build_info metric.
package buildinfo

import "runtime/debug"

// Set by the Makefile with -ldflags -X.
var (
	version = "dev"
	commit  = ""
)

// Version is the release, or "dev".
func Version() string { return version }

// Commit is the source revision: from -ldflags, else from the Go build's
// VCS stamp (with -dirty for uncommitted changes), else "unknown".
func Commit() string {
	if commit != "" {
		return commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}
