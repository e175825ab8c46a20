package churn

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// RaiseFileLimit lifts RLIMIT_NOFILE towards want (capped by fs.nr_open)
// and returns the soft limit in force afterwards. Raising the hard limit
// needs CAP_SYS_RESOURCE; without it the soft limit still goes up to the
// hard one, and the caller must make do with that (hold splits itself
// over several processes).
func RaiseFileLimit(want uint64) uint64 {
	if nrOpen := readUint("/proc/sys/fs/nr_open"); nrOpen > 0 && want > nrOpen {
		want = nrOpen
	}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		return 0
	}
	if lim.Cur >= want {
		return lim.Cur
	}
	if lim.Max < want && unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: want, Max: want}) == nil {
		return want
	}
	lim.Cur = min(want, lim.Max)
	unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	return lim.Cur
}

func readUint(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v
}
