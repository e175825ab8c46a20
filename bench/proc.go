package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of utime and stime in /proc/<pid>/stat; it is 100 on
// every Linux architecture Go supports.
const userHZ = 100

// procCPUSeconds is a process's user+system CPU so far.
func procCPUSeconds(pid int) (float64, error) {
	t, err := procTimes(pid)
	return t.user + t.sys, err
}

// cpuTimes is a process's CPU split the way the kernel accounts it.
type cpuTimes struct{ user, sys float64 }

func (t cpuTimes) minus(o cpuTimes) cpuTimes { return cpuTimes{t.user - o.user, t.sys - o.sys} }

// procTimes is a process's user and system CPU so far, in seconds.
func procTimes(pid int) (cpuTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuTimes{}, err
	}
	// The command name in parentheses may hold spaces: fields start after
	// the last ')'. utime and stime are fields 14 and 15 of the line,
	// so 12 and 13 counting from the state field.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return cpuTimes{}, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return cpuTimes{}, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return cpuTimes{}, fmt.Errorf("unparsable /proc/%d/stat", pid)
	}
	return cpuTimes{float64(ut) / userHZ, float64(st) / userHZ}, nil
}

// procStatusKiB reads a "Name:   123 kB" line of /proc/<pid>/status,
// such as VmHWM (peak resident set) or VmRSS.
func procStatusKiB(pid int, name string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", name, pid)
}

// usage is what the kernel accounted to a process once it has exited.
type usage struct {
	cpu       cpuTimes
	maxRSSKiB int64 // peak resident set over its whole life
}

// proc is a started child process whose exit is watched, so a wait for
// it to become ready can tell when it died instead.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, once done is closed
}

func startProc(c *exec.Cmd) (*proc, error) {
	if err := c.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: c, done: make(chan struct{})}
	go func() { p.err = c.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig and waits up to timeout for the process to exit, then
// kills it; a process that had to be killed is an error.
func (p *proc) stop(sig os.Signal, timeout time.Duration) error {
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %s of %s: killed", p.cmd.Path, timeout, sig)
	}
}

// usage is valid once the process has exited.
func (p *proc) usage() usage {
	ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return usage{}
	}
	return usage{cpu: cpuTimes{timevalSeconds(ru.Utime), timevalSeconds(ru.Stime)}, maxRSSKiB: ru.Maxrss}
}

func timevalSeconds(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// waitReady polls ready every 50 ms until it holds, the process exits, or
// timeout passes.
func (p *proc) waitReady(timeout time.Duration, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ready() {
		if p.exited() {
			return fmt.Errorf("%s exited before it was ready (%v)", p.cmd.Path, p.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s", p.cmd.Path, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// tail returns the last n bytes of a file, to quote in an error.
func tail(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return strings.TrimSpace(string(b))
}

// bpfRecursionMisses sums recursion_misses over the BPF programs pid
// holds. The kernel skips a tracing program that would nest on the same
// CPU (a softirq at interrupt exit while the program runs in task
// context) and counts it only there: events neither the ring buffer nor
// the tracer's own loss counter knows about.
func bpfRecursionMisses(pid int) (int64, error) { return bpfProgSum(pid, "recursion_misses:") }

// iterProgIDs are the programs of the BPF iterator links pid holds.
func iterProgIDs(pid int) map[int64]bool {
	ids := map[int64]bool{}
	eachBPFFD(pid, "anon_inode:bpf_link", func(info []byte) {
		if bytes.Contains(info, []byte("link_type:\titer\n")) {
			if id, ok := fdinfoInt(info, "prog_id:"); ok {
				ids[id] = true
			}
		}
	})
	return ids
}

// bpfProgSum sums one fdinfo field over the BPF programs pid holds.
func bpfProgSum(pid int, field string) (int64, error) {
	var total int64
	err := eachBPFProg(pid, func(info []byte) {
		n, _ := fdinfoInt(info, field)
		total += n
	})
	return total, err
}

// eachBPFProg calls f with the fdinfo of every BPF program pid holds.
func eachBPFProg(pid int, f func(info []byte)) error {
	return eachBPFFD(pid, "anon_inode:bpf-prog", f)
}

// eachBPFFD calls f with the fdinfo of every descriptor of pid that links
// to target (a BPF program's or link's anonymous inode).
func eachBPFFD(pid int, target string, f func(info []byte)) error {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, fd := range fds {
		if l, _ := os.Readlink(dir + "/" + fd.Name()); l != target {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		f(info)
	}
	return nil
}

// fdinfoInt is the number in a "field:\tN" line of an fdinfo file.
func fdinfoInt(info []byte, field string) (int64, bool) {
	for _, line := range strings.Split(string(info), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
