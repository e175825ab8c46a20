package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// machine describes where the numbers were measured.
type machine struct {
	date      string
	cpus      int
	model     string
	kernel    string
	memGiB    float64
	goVersion string
	daemon    string // tcpstated version line
	bpftrace  string // bpftrace version line
	busyPct   float64
	otherBPF  []string // processes holding BPF programs before the bench
}

func describeMachine(daemonBin, bpftraceBin string) machine {
	m := machine{
		date:      time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		cpus:      runtime.NumCPU(),
		goVersion: runtime.Version(),
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.kernel = unix.ByteSliceToString(u.Release[:])
	}
	m.model = firstValue("/proc/cpuinfo", "model name")
	if kb, err := strconv.ParseFloat(strings.TrimSuffix(firstValue("/proc/meminfo", "MemTotal"), " kB"), 64); err == nil {
		m.memGiB = kb / (1 << 20)
	}
	if daemonBin != "" {
		m.daemon = commandLine(daemonBin, "version")
	}
	if bpftraceBin != "" {
		m.bpftrace = commandLine(bpftraceBin, "--version")
	}
	m.busyPct = cpuBusy(2 * time.Second)
	m.otherBPF = bpfHolders()
	return m
}

func firstValue(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func commandLine(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// cpuTicks reads the busy and total time of all CPUs, in USER_HZ ticks.
func cpuTicks() (busy, total uint64) {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n") // "cpu  user nice system idle iowait ..."
	f := strings.Fields(line)
	for i, s := range f[min(1, len(f)):] {
		v, _ := strconv.ParseUint(s, 10, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

// cpuBusy is the share of all CPUs that was not idle over d. Another
// workload on the machine skews every rate, so the report says it.
func cpuBusy(d time.Duration) float64 {
	b0, t0 := cpuTicks()
	time.Sleep(d)
	b1, t1 := cpuTicks()
	if t1 == t0 {
		return 0
	}
	return 100 * float64(b1-b0) / float64(t1-t0)
}

// bpfHolders lists processes holding BPF programs (another tracer would
// run its programs on every transition of the churn too).
func bpfHolders() []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		fds, _ := os.ReadDir(filepath.Join(p, "fd"))
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join(p, "fd", fd.Name())); l == "anon_inode:bpf-prog" {
				comm, _ := os.ReadFile(filepath.Join(p, "comm"))
				out = append(out, fmt.Sprintf("%s (pid %s)", strings.TrimSpace(string(comm)), filepath.Base(p)))
				break
			}
		}
	}
	return out
}

func (m machine) String() string {
	return fmt.Sprintf("%d × %s, Linux %s, %.1f GiB memory, %s", m.cpus, m.model, m.kernel, m.memGiB, m.goVersion)
}
