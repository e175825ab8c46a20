package events

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MinKernel is the oldest kernel the BPF programs load on: ring buffers
// (5.8) and socket cookies (5.12) from tp_btf.
var MinKernel = [2]int{5, 12}

// BTFPath is where the kernel publishes its own type information.
const BTFPath = "/sys/kernel/btf/vmlinux"

// Capabilities tracing needs, and what each is for.
var requiredCaps = []struct {
	bit  int
	name string
}{
	{unix.CAP_BPF, "CAP_BPF"},
	{unix.CAP_PERFMON, "CAP_PERFMON"},
}

// Preflight explains, before any BPF call, what would make loading fail.
func Preflight() error {
	if missing := MissingCapabilities(); len(missing) > 0 {
		exe, err := os.Executable()
		if err != nil {
			exe = "tcpstated"
		}
		hint := ""
		if noNewPrivs() {
			hint = " (no_new_privs is set here, so file capabilities are ignored: use AmbientCapabilities= in a systemd unit)"
		}
		return fmt.Errorf("missing capabilities %s (needed to load the BPF programs): run as root, "+
			"use packaging/tcpstated.service, or grant them: setcap cap_bpf,cap_perfmon,cap_syslog+ep %s%s (see docs/deploy.md)",
			strings.Join(missing, ", "), exe, hint)
	}
	if _, err := os.Stat(BTFPath); err != nil {
		return fmt.Errorf("kernel has no BTF at %s: tcpstated needs a kernel built "+
			"with CONFIG_DEBUG_INFO_BTF=y, version %d.%d or newer", BTFPath, MinKernel[0], MinKernel[1])
	}
	release, major, minor, err := KernelVersion()
	if err != nil {
		return err
	}
	return checkKernel(release, major, minor)
}

// checkKernel refuses kernels older than MinKernel.
func checkKernel(release string, major, minor int) error {
	if major < MinKernel[0] || (major == MinKernel[0] && minor < MinKernel[1]) {
		return fmt.Errorf("kernel %s is older than %d.%d, the oldest tcpstated supports "+
			"(it needs BPF ring buffers and socket cookies in BTF tracepoints)",
			release, MinKernel[0], MinKernel[1])
	}
	return nil
}

// MissingCapabilities lists the required capabilities the process lacks.
// CAP_SYS_ADMIN stands in for both on every kernel.
func MissingCapabilities() []string {
	eff, err := effectiveCaps()
	if err != nil {
		return nil // let the kernel say no
	}
	if eff&(1<<unix.CAP_SYS_ADMIN) != 0 {
		return nil
	}
	var missing []string
	for _, c := range requiredCaps {
		if eff&(1<<uint(c.bit)) == 0 {
			missing = append(missing, c.name)
		}
	}
	return missing
}

func noNewPrivs() bool {
	v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	return err == nil && v == 1
}

func effectiveCaps() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, err
	}
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32, nil
}

// KernelVersion returns the running kernel's release and its major and
// minor numbers.
func KernelVersion() (release string, major, minor int, err error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", 0, 0, fmt.Errorf("uname: %w", err)
	}
	release = unix.ByteSliceToString(u.Release[:])
	major, minor, ok := parseRelease(release)
	if !ok {
		return release, 0, 0, fmt.Errorf("cannot read a version from kernel release %q", release)
	}
	return release, major, minor, nil
}

func parseRelease(r string) (major, minor int, ok bool) {
	parts := strings.SplitN(r, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	end := 0
	for end < len(parts[1]) && parts[1][end] >= '0' && parts[1][end] <= '9' {
		end++
	}
	minor, err2 := strconv.Atoi(parts[1][:end])
	return major, minor, err1 == nil && err2 == nil
}

// ErrNoSymbol: a kernel symbol is missing or its address is hidden.
var ErrNoSymbol = errors.New("kernel symbol not found")

// KernelSymbol returns the address of a text symbol from /proc/kallsyms.
// Addresses read as zero without CAP_SYSLOG when kptr_restrict is set.
func KernelSymbol(path, name string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		// "ffffffff820089f0 t tw_timer_handler" (modules add "\t[mod]")
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[2] != name {
			continue
		}
		addr, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: bad address for %s: %w", path, name, err)
		}
		if addr == 0 {
			return 0, fmt.Errorf("%w: %s reads as 0 in %s (kernel.kptr_restrict hides it; needs CAP_SYSLOG)",
				ErrNoSymbol, name, path)
		}
		return addr, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%w: %s is not in %s", ErrNoSymbol, name, path)
}
