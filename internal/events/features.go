package events

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// Feature names a part of the tracer that the kernel may refuse on its own:
// its programs load and attach together, and when one is refused the
// feature is off and the rest of the tracer goes on.
type Feature string

const (
	// FeatureCore is every state change of a full socket: both state programs
	// and the ring buffer. Without it there is nothing to trace.
	FeatureCore Feature = "core"
	// FeatureTimeWait follows timewait sockets through their timer.
	FeatureTimeWait Feature = "timewait"
	// FeatureSnapshot lists the sockets that exist when the daemon starts.
	FeatureSnapshot Feature = "snapshot"
	// FeatureFiles maps sockets to the processes and descriptors holding them.
	FeatureFiles Feature = "files"
	// FeatureAccept names the listener each accepted child came from.
	FeatureAccept Feature = "accept"
	// FeatureResets reports RSTs sent and received as events.
	FeatureResets Feature = "resets"
)

// featureDef is what a feature is made of and what it is for.
type featureDef struct {
	name     Feature
	programs []string
	gives    string
	loses    string
	// tracepoint a kernel older than since lacks: without it the feature
	// is unsupported there, which is the kernel's age, not a fault.
	tracepoint, since string
}

// featureDefs in the order features are loaded and reported.
var featureDefs = []featureDef{
	{FeatureCore, []string{tcpstatedProgOnState, tcpstatedProgOnStateNested},
		"every TCP state change, owners from connect, listen and close",
		"everything: tcpstated cannot trace without it", "", ""},
	{FeatureTimeWait, []string{tcpstatedProgOnTimerStart, tcpstatedProgOnTimerCancel, tcpstatedProgOnTimerExpire, tcpstatedProgPollTimewaits},
		"TIME_WAIT entry and exit (time spent, expired or ended early), orphaned FIN_WAIT2",
		"TIME_WAIT: closes show FIN_WAIT2 -> CLOSE as the full socket makes it; no TIME_WAIT exits, durations or time_wait_pressure", "", ""},
	{FeatureSnapshot, []string{tcpstatedProgSnapshotSockets},
		"sockets older than the daemon, in every network namespace",
		"sockets older than the daemon appear only at their next state change; earlier leaks and TIME_WAITs go unreported", "", ""},
	{FeatureFiles, []string{tcpstatedProgSnapshotFiles},
		"the process and fd holding each socket it knows (workers; with the snapshot, sockets older than the daemon)",
		"fds, and owners other than the process that called connect, listen or close (a forked worker's accepted sockets)", "", ""},
	{FeatureAccept, []string{tcpstatedProgOnDataReady},
		"the owner of an accepted connection from its first transition when several processes listen on its port (SO_REUSEPORT)",
		"with several processes listening on one port, an accepted connection's LISTEN -> SYN_RECV, SYN_RECV -> ESTABLISHED and changes before its close name no owner (pid 0) unless the file table names one first, on kernels that set the child's cookie before its first change",
		"sk_data_ready", "6.3"},
	{FeatureResets, []string{tcpstatedProgOnSendReset, tcpstatedProgOnReceiveReset},
		"reset events: each RST a socket sends or receives, with its owner and state",
		"reset events; connection summaries still say how each connection ended", "", ""},
}

// Features lists every feature, in load order.
func Features() []Feature {
	out := make([]Feature, len(featureDefs))
	for i, f := range featureDefs {
		out[i] = f.name
	}
	return out
}

// ParseFeature checks a feature name from a flag.
func ParseFeature(s string) (Feature, error) {
	for _, f := range featureDefs {
		if string(f.name) == s {
			return f.name, nil
		}
	}
	return "", fmt.Errorf("unknown feature %q (one of %s)", s, strings.Join(featureNames(), ", "))
}

func featureNames() []string {
	var names []string
	for _, f := range featureDefs {
		names = append(names, string(f.name))
	}
	return names
}

// FeatureState says whether a feature runs, and if not, why not.
type FeatureState string

const (
	FeatureOn       FeatureState = "on"
	FeatureRefused  FeatureState = "refused"  // the kernel did not allow it
	FeatureDisabled FeatureState = "disabled" // --disable-feature
	// FeatureUnsupported: the kernel is older than the hook it needs.
	FeatureUnsupported FeatureState = "unsupported"
)

// refusal is a kernel's refusal as an operator reads it (KernelReason),
// wrapping the loader's error for errors.Is.
type refusal struct {
	reason string
	err    error
}

func (r refusal) Error() string { return r.reason }
func (r refusal) Unwrap() error { return r.err }

// FeatureStatus says whether a feature runs and, if not, why and what is
// missing without it.
type FeatureStatus struct {
	Name  Feature      `json:"name"`
	State FeatureState `json:"state"`
	// Program is the program the kernel refused, if one was.
	Program string `json:"program,omitempty"`
	// Reason is the kernel's own: the errno, or the verifier's line.
	Reason string `json:"reason,omitempty"`
	// Gives is what the feature reports; Loses what is missing without it.
	Gives string `json:"gives"`
	Loses string `json:"loses,omitempty"`
}

// Problem says why a feature is off: the program and the kernel's reason.
func (f FeatureStatus) Problem() string {
	if f.Program == "" {
		return f.Reason
	}
	return f.Program + ": " + f.Reason
}

// On says whether the feature runs.
func (f FeatureStatus) On() bool { return f.State == FeatureOn }

func (d featureDef) status() FeatureStatus {
	return FeatureStatus{Name: d.name, State: FeatureOn, Gives: d.gives}
}

// turnOff records why a feature does not run and what that costs.
func (f *FeatureStatus) turnOff(state FeatureState, program, reason string) {
	f.State, f.Program, f.Reason = state, program, reason
	for _, d := range featureDefs {
		if d.name == f.Name {
			f.Loses = d.loses
		}
	}
}

// refuse turns a feature off because of err (a load or attach error).
func (f *FeatureStatus) refuse(program string, err error) {
	f.turnOff(FeatureRefused, program, KernelReason(err))
}

// unsupported turns a feature off on a kernel without its tracepoint.
func (f *FeatureStatus) unsupported(d featureDef) {
	f.turnOff(FeatureUnsupported, "", fmt.Sprintf("this kernel has no %s tracepoint (Linux >= %s)", d.tracepoint, d.since))
}

// missingTracepoint says whether the kernel's BTF lacks the feature's
// tracepoint. A BTF that cannot be read says nothing: the load decides.
func (d featureDef) missingTracepoint() bool {
	if d.tracepoint == "" {
		return false
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return false
	}
	_, err = spec.AnyTypeByName("btf_trace_" + d.tracepoint)
	return errors.Is(err, btf.ErrNotFound)
}

func (f *FeatureStatus) disable() {
	f.turnOff(FeatureDisabled, "", "turned off by --disable-feature")
}

// KernelReason is what the kernel said when it refused a program: the
// errno and, when the verifier ran, its line that explains the refusal.
func KernelReason(err error) string {
	if err == nil {
		return ""
	}
	var ve *ebpf.VerifierError
	if !errors.As(err, &ve) {
		var errno unix.Errno
		if errors.As(err, &errno) {
			return errnoText(errno) + ": " + err.Error()
		}
		return err.Error()
	}
	cause := ve.Cause.Error()
	var errno unix.Errno
	if errors.As(ve.Cause, &errno) {
		cause = errnoText(errno)
	}
	line := verifierLine(ve.Log)
	if line == "" {
		// An LSM, lockdown or a sysctl refused the program before the
		// verifier looked at it: not a matter of privileges for a
		// process that holds CAP_BPF and CAP_PERFMON.
		what := "refused before the verifier ran (no instruction processed: a security policy such as an LSM or lockdown refuses this program type)"
		if missing := MissingCapabilities(); len(missing) > 0 {
			what = "missing " + strings.Join(missing, ", ")
		}
		return cause + ", " + what
	}
	return cause + ", verifier: " + line
}

func errnoText(e unix.Errno) string {
	if name := unix.ErrnoName(e); name != "" {
		return name + " (" + e.Error() + ")"
	}
	return e.Error()
}

// verifierLine picks the line that says why: the last one that is not the
// verifier's own statistics.
func verifierLine(log []string) string {
	for i := len(log) - 1; i >= 0; i-- {
		l := strings.TrimSpace(log[i])
		switch {
		case l == "",
			strings.HasPrefix(l, "processed "),
			strings.HasPrefix(l, "verification time"),
			strings.HasPrefix(l, "stack depth"):
			continue
		}
		return l
	}
	return ""
}
