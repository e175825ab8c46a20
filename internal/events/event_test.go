package events

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"unsafe"
)

// The decoder reads each field at the width C declares it (the offsets
// come from the generated layout).
func TestDecoderWidthsMatchGenerated(t *testing.T) {
	var r tcpstatedRecord
	checks := []struct {
		name      string
		got, want uintptr
	}{
		{"ts_ns", unsafe.Sizeof(r.TsNs), 8},
		{"since_ns", unsafe.Sizeof(r.SinceNs), 8},
		{"cookie", unsafe.Sizeof(r.Cookie), 8},
		{"tw", unsafe.Sizeof(r.Tw), 8},
		{"aux", unsafe.Sizeof(r.Aux), 8},
		{"jiffies", unsafe.Sizeof(r.Jiffies), 8},
		{"pid", unsafe.Sizeof(r.Pid), 4},
		{"cpu_pid", unsafe.Sizeof(r.CpuPid), 4},
		{"netns", unsafe.Sizeof(r.Netns), 4},
		{"sport", unsafe.Sizeof(r.Sport), 2},
		{"dport", unsafe.Sizeof(r.Dport), 2},
		{"saddr", unsafe.Sizeof(r.Saddr), 16},
		{"daddr", unsafe.Sizeof(r.Daddr), 16},
		{"kind", unsafe.Sizeof(r.Kind), 1},
		{"family", unsafe.Sizeof(r.Family), 1},
		{"oldstate", unsafe.Sizeof(r.Oldstate), 1},
		{"newstate", unsafe.Sizeof(r.Newstate), 1},
		{"owner_src", unsafe.Sizeof(r.OwnerSrc), 1},
		{"flags", unsafe.Sizeof(r.Flags), 1},
		{"cpu", unsafe.Sizeof(r.Cpu), 2},
		{"comm", unsafe.Sizeof(r.Comm), 16},
		{"cpu_comm", unsafe.Sizeof(r.CpuComm), 16},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s is %d bytes in C, the decoder reads %d", c.name, c.got, c.want)
		}
	}
}

// Every counter of enum counter is read into a field of its own.
func TestEveryCounterHasAField(t *testing.T) {
	var c Counters
	seen := map[tcpstatedCounter]bool{}
	dsts := map[*uint64]bool{}
	for _, f := range counterFields(&c) {
		if f.idx >= tcpstatedCounterCOUNTER_MAX || seen[f.idx] || dsts[f.dst] {
			t.Errorf("counter %d: out of range or read twice", f.idx)
		}
		seen[f.idx], dsts[f.dst] = true, true
	}
	for i := tcpstatedCounter(0); i < tcpstatedCounterCOUNTER_MAX; i++ {
		if !seen[i] {
			t.Errorf("counter %d (enum counter in bpf/tcpstated.h) is never read", i)
		}
	}
}

// sample builds a record the way the kernel would.
func sample(kind Kind, fam Family, old, nw State) []byte {
	b := make([]byte, RecordSize)
	le := binary.NativeEndian
	le.PutUint64(b[offTs:], 1_000_000_000)
	le.PutUint64(b[offSince:], 999_000_000)
	le.PutUint64(b[offCookie:], 4242)
	le.PutUint32(b[offPid:], 1234)
	le.PutUint32(b[offCPUPid:], 0)
	le.PutUint32(b[offNetns:], 4026531840)
	le.PutUint16(b[offSport:], 40000)
	le.PutUint16(b[offDport:], 80)
	if fam == IPv4 {
		copy(b[offSaddr:], []byte{127, 0, 0, 1})
		copy(b[offDaddr:], []byte{10, 1, 2, 3})
	} else {
		b[offSaddr+15] = 1
		copy(b[offDaddr:], []byte{0x20, 0x01, 0x0d, 0xb8})
	}
	b[offKind], b[offFamily], b[offOld], b[offNew] = byte(kind), byte(fam), byte(old), byte(nw)
	b[offOwner] = byte(OwnerConnect)
	copy(b[offComm:], "curl")
	copy(b[offCPUComm:], "swapper/1")
	return b
}

func TestDecode(t *testing.T) {
	var e Event
	if err := Decode(sample(KindState, IPv4, FinWait1, FinWait2), &e); err != nil {
		t.Fatal(err)
	}
	if e.Old != FinWait1 || e.New != FinWait2 || e.Pid != 1234 || e.Cookie != 4242 ||
		e.Sport != 40000 || e.Dport != 80 || e.Comm.String() != "curl" || e.CPUComm.String() != "swapper/1" ||
		e.Saddr != netip.MustParseAddr("127.0.0.1") || e.Daddr != netip.MustParseAddr("10.1.2.3") ||
		e.Owner != OwnerConnect || e.SinceMono != 999_000_000 {
		t.Errorf("decoded %+v", e)
	}
	if err := Decode(sample(KindState, IPv6, SynSent, Established), &e); err != nil {
		t.Fatal(err)
	}
	if e.Saddr != netip.MustParseAddr("::1") || e.Daddr != netip.MustParseAddr("2001:db8::") {
		t.Errorf("IPv6 addresses %v %v", e.Saddr, e.Daddr)
	}
}

func TestDecodeRejects(t *testing.T) {
	var e Event
	cases := map[string][]byte{
		"empty":        nil,
		"short":        sample(KindState, IPv4, FinWait1, FinWait2)[:RecordSize-1],
		"long":         append(sample(KindState, IPv4, FinWait1, FinWait2), 0),
		"kind 0":       sample(0, IPv4, FinWait1, FinWait2),
		"kind 99":      sample(99, IPv4, FinWait1, FinWait2),
		"family 5":     sample(KindState, 5, FinWait1, FinWait2),
		"old state 0":  sample(KindState, IPv4, 0, FinWait2),
		"new state 77": sample(KindState, IPv4, FinWait1, 77),
	}
	bad := sample(KindState, IPv4, FinWait1, FinWait2)
	bad[offOwner] = 200
	cases["owner 200"] = bad
	for name, b := range cases {
		if err := Decode(b, &e); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

// Any byte slice yields an event or an error, never a panic.
func FuzzDecode(f *testing.F) {
	f.Add(sample(KindState, IPv4, Established, FinWait1))
	f.Add(sample(KindTimeWaitEnd, IPv6, TimeWait, Close))
	f.Add(sample(KindFile, IPv4, Listen, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Event
		if err := Decode(b, &e); err == nil {
			if !e.Old.Valid() || (e.Family != IPv4 && e.Family != IPv6) {
				t.Fatalf("accepted an invalid record: %+v", e)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	rec := sample(KindState, IPv4, Established, FinWait1)
	var e Event
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(rec, &e); err != nil {
			b.Fatal(err)
		}
	}
}
