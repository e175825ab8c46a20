package events

import (
	"bytes"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/tcpstated/tcpstated/internal/testkit"
)

// Every program of the object belongs to exactly one feature, so that a
// new program cannot be loaded by nobody or stop the tracer unnoticed.
func TestEveryProgramHasOneFeature(t *testing.T) {
	spec, err := loadTcpstated()
	if err != nil {
		t.Fatal(err)
	}
	owner := map[string]Feature{}
	for _, f := range featureDefs {
		for _, p := range f.programs {
			if o, dup := owner[p]; dup {
				t.Errorf("%s is in %s and %s", p, o, f.name)
			}
			owner[p] = f.name
			if spec.Programs[p] == nil {
				t.Errorf("feature %s names %s, which the object does not have", f.name, p)
			}
		}
	}
	for name := range spec.Programs {
		if _, ok := owner[name]; !ok {
			t.Errorf("program %s belongs to no feature", name)
		}
	}
}

// refuseProgram makes the verifier refuse a program for real: it reads a
// register that was never written.
func refuseProgram(t *testing.T, name string) {
	t.Helper()
	adjustSpec = func(spec *ebpf.CollectionSpec) {
		p := spec.Programs[name]
		if p == nil {
			t.Fatalf("no program %s", name)
		}
		p.Instructions = asm.Instructions{asm.Mov.Reg(asm.R0, asm.R2), asm.Return()}
	}
	t.Cleanup(func() { adjustSpec = nil })
}

func openTracer(t *testing.T, cfg Config) *Tracer {
	t.Helper()
	testkit.NeedKernel(t)
	tr, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func status(t *testing.T, tr *Tracer, f Feature) FeatureStatus {
	t.Helper()
	for _, st := range tr.Features() {
		if st.Name == f {
			return st
		}
	}
	t.Fatalf("no status for %s", f)
	return FeatureStatus{}
}

// kernelLacks says whether the kernel's BTF has no such tracepoint: the
// test's own look at /sys/kernel/btf/vmlinux.
func kernelLacks(t *testing.T, d featureDef) bool {
	t.Helper()
	if d.tracepoint == "" {
		return false
	}
	b, err := os.ReadFile("/sys/kernel/btf/vmlinux")
	if err != nil {
		t.Fatalf("kernel BTF: %v", err)
	}
	return !bytes.Contains(b, []byte("\x00btf_trace_"+d.tracepoint+"\x00"))
}

// On the kernels tcpstated is tested on, every feature runs, but one
// whose tracepoint the kernel is too old for, which says so.
func TestEveryFeatureLoads(t *testing.T) {
	tr := openTracer(t, Config{RingBytes: 1 << 16})
	for i, st := range tr.Features() {
		want := FeatureOn
		if kernelLacks(t, featureDefs[i]) {
			want = FeatureUnsupported
		}
		if st.State != want {
			t.Errorf("feature %s: %s %s, want %s", st.Name, st.State, st.Problem(), want)
		}
	}
	// The daemon's gap: one tick of error is 4% of 100 ms at HZ=250.
	if _, err := tr.MeasureHZ(100 * time.Millisecond); err != nil {
		t.Errorf("the timewait poll did not run: %v", err)
	}
}

// sawConnect traces one loopback connection and says whether its
// CLOSE -> SYN_SENT came through the ring buffer.
func sawConnect(t *testing.T, tr *Tracer) bool {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	seen := false
	var ev Event
	for !seen && time.Now().Before(deadline) {
		err := tr.Poll(20*time.Millisecond, &ev, func(e *Event) {
			if e.Kind == KindState && e.Old == Established && e.New == FinWait1 && e.Sport == port {
				seen = true
			}
		}, func(err error) { t.Errorf("decode: %v", err) })
		if err != nil {
			t.Fatal(err)
		}
	}
	return seen
}

// A feature whose program the kernel refuses costs that feature, named
// with the verifier's reason; the core and the other features run.
func TestRefusedFeatureFailsAlone(t *testing.T) {
	for _, f := range featureDefs {
		if f.name == FeatureCore {
			continue
		}
		for _, prog := range f.programs {
			t.Run(prog, func(t *testing.T) {
				refuseProgram(t, prog)
				tr := openTracer(t, Config{RingBytes: 1 << 16})
				st := status(t, tr, f.name)
				if kernelLacks(t, f) {
					// Never loaded, so never refused: the kernel has no hook for it.
					if st.State != FeatureUnsupported || !strings.Contains(st.Reason, f.tracepoint) || st.Loses == "" {
						t.Fatalf("%s on a kernel without %s: %+v", f.name, f.tracepoint, st)
					}
					return
				}
				if st.State != FeatureRefused || st.Program != prog ||
					!strings.Contains(st.Reason, "R2 !read_ok") || !strings.Contains(st.Reason, "EACCES") || st.Loses == "" {
					t.Fatalf("%s: %+v", f.name, st)
				}
				for _, other := range tr.Features() {
					if other.Name != f.name && !other.On() && other.State != FeatureUnsupported {
						t.Errorf("%s is off too: %+v", other.Name, other)
					}
				}
				if !sawConnect(t, tr) {
					t.Errorf("with %s refused, the tracer saw no connection", f.name)
				}
			})
		}
	}
}

// A refused core program stops the start, naming the program and what
// the kernel said.
func TestRefusedCoreFailsStart(t *testing.T) {
	testkit.NeedKernel(t)
	for _, prog := range featureDefs[0].programs {
		refuseProgram(t, prog)
		tr, err := Open(Config{RingBytes: 1 << 16})
		if err == nil {
			tr.Close()
			t.Fatalf("%s refused, yet the tracer opened", prog)
		}
		if msg := err.Error(); !strings.Contains(msg, prog) || !strings.Contains(msg, "R2 !read_ok") ||
			strings.Contains(msg, "CAP_BPF") {
			t.Errorf("%s refused: %v", prog, err)
		}
	}
}

// A feature turned off is reported as such, and its walk says so.
func TestDisabledFeature(t *testing.T) {
	tr := openTracer(t, Config{RingBytes: 1 << 16, Disabled: []Feature{FeatureFiles, FeatureTimeWait}})
	for _, f := range []Feature{FeatureFiles, FeatureTimeWait} {
		if st := status(t, tr, f); st.State != FeatureDisabled || st.Loses == "" {
			t.Errorf("%+v", st)
		}
	}
	if err := tr.Files(func(*Event) {}); err != ErrFeatureOff {
		t.Errorf("walking the files of a disabled feature: %v", err)
	}
	if err := tr.PollTimeWaits(); err != nil {
		t.Errorf("polling timewaits with the feature off: %v", err)
	}
	if !sawConnect(t, tr) {
		t.Error("no connection seen")
	}
}

// What the kernel said, as an operator reads it.
func TestKernelReason(t *testing.T) {
	before := &ebpf.VerifierError{Cause: unix.EPERM}
	if got := KernelReason(before); !strings.HasPrefix(got, "EPERM (operation not permitted)") ||
		!strings.Contains(got, "before the verifier") {
		t.Errorf("EPERM, empty log: %q", got)
	}
	verified := &ebpf.VerifierError{Cause: unix.EACCES, Log: []string{
		"0: R1=ctx() R10=fp0", "; return bpf_get_socket_cookie(sk);",
		"12: (85) call bpf_get_socket_cookie#46", "R1 type=untrusted_ptr_ expected=sock_common, sock, tcp_sock, xdp_sock, ptr_, trusted_ptr_",
		"processed 12 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1 mark_read 0",
	}}
	if got := KernelReason(verified); got != "EACCES (permission denied), verifier: R1 type=untrusted_ptr_ expected=sock_common, sock, tcp_sock, xdp_sock, ptr_, trusted_ptr_" {
		t.Errorf("verifier refusal: %q", got)
	}
}
