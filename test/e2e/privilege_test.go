package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// nobody runs a command as uid/gid 65534 holding exactly caps, as the
// systemd unit does with AmbientCapabilities=.
func nobody(cmd *exec.Cmd, caps ...uintptr) {
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: false},
		AmbientCaps: caps,
	}
}

// openDir lets the unprivileged daemon write its ready and event files,
// and other users reach the API socket. Sticky, as /tmp: nobody may
// replace what another user made there.
func openDir(t *testing.T, dir string) {
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
	}
}

// The documented capabilities are enough: no root. Without CAP_SYSLOG the
// address of tw_timer_handler comes from the ksym iterator instead.
func TestUnprivilegedWithCapabilities(t *testing.T) {
	t.Run("bpf,perfmon,syslog", func(t *testing.T) {
		unprivileged(t, unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_SYSLOG)
	})
	t.Run("bpf,perfmon", func(t *testing.T) { unprivileged(t, unix.CAP_BPF, unix.CAP_PERFMON) })
}

func unprivileged(t *testing.T, caps ...uintptr) {
	d := StartDaemonWith(t, func(cmd *exec.Cmd, dir string) {
		openDir(t, dir)
		nobody(cmd, caps...)
	})
	clientFirstChecked(t, d, ownHost(t), clientClosesFirst)
	var on []string
	for _, name := range allFeatures {
		if featureWanted(t, name, "") == "on" {
			on = append(on, `"`+name+`"`)
		}
	}
	if want := `"features":[` + strings.Join(on, ",") + `]`; !strings.Contains(d.stderr.String(), want) {
		t.Errorf("not every feature runs (want %s):\n%s", want, d.stderr.String())
	}
}

// Without them, the error names exactly what is missing.
func TestMissingCapabilitiesError(t *testing.T) {
	needKernel(t)
	for _, tc := range []struct {
		caps    []uintptr
		missing string
	}{
		{nil, "missing capabilities CAP_BPF, CAP_PERFMON"},
		{[]uintptr{unix.CAP_BPF}, "missing capabilities CAP_PERFMON "},
		{[]uintptr{unix.CAP_PERFMON}, "missing capabilities CAP_BPF "},
	} {
		cmd := exec.Command(daemonBinary(t), "run", "--listen", "off")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		nobody(cmd, tc.caps...)
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("caps %v: exit %v, want status 1\n%s", tc.caps, err, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.missing) || !strings.Contains(stderr.String(), "setcap cap_bpf,cap_perfmon,cap_syslog+ep") {
			t.Errorf("caps %v: stderr does not say %q with the setcap fix:\n%s", tc.caps, tc.missing, stderr.String())
		}
	}
}
