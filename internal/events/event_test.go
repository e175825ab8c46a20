package events

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"unsafe"
)

// The decoder's offsets must match the layout bpf2go generated from C.
func TestLayoutMatchesGenerated(t *testing.T) {
	var r tcpstatedRecord
	checks := []struct {
		name string
		got  uintptr
		want int
	}{
		{"ts_ns", unsafe.Offsetof(r.TsNs), offTs},
		{"since_ns", unsafe.Offsetof(r.SinceNs), offSince},
		{"cookie", unsafe.Offsetof(r.Cookie), offCookie},
		{"tw", unsafe.Offsetof(r.Tw), offTw},
		{"aux", unsafe.Offsetof(r.Aux), offAux},
		{"jiffies", unsafe.Offsetof(r.Jiffies), offJiffies},
		{"pid", unsafe.Offsetof(r.Pid), offPid},
		{"cpu_pid", unsafe.Offsetof(r.CpuPid), offCPUPid},
		{"netns", unsafe.Offsetof(r.Netns), offNetns},
		{"sport", unsafe.Offsetof(r.Sport), offSport},
		{"dport", unsafe.Offsetof(r.Dport), offDport},
		{"saddr", unsafe.Offsetof(r.Saddr), offSaddr},
		{"daddr", unsafe.Offsetof(r.Daddr), offDaddr},
		{"kind", unsafe.Offsetof(r.Kind), offKind},
		{"family", unsafe.Offsetof(r.Family), offFamily},
		{"oldstate", unsafe.Offsetof(r.Oldstate), offOld},
		{"newstate", unsafe.Offsetof(r.Newstate), offNew},
		{"owner_src", unsafe.Offsetof(r.OwnerSrc), offOwner},
		{"flags", unsafe.Offsetof(r.Flags), offFlags},
		{"cpu", unsafe.Offsetof(r.Cpu), offCPU},
		{"comm", unsafe.Offsetof(r.Comm), offComm},
		{"cpu_comm", unsafe.Offsetof(r.CpuComm), offCPUComm},
	}
	for _, c := range checks {
		if int(c.got) != c.want {
			t.Errorf("%s at offset %d in the generated struct, decoder reads %d", c.name, c.got, c.want)
		}
	}
	if RecordSize != 136 {
		t.Errorf("record is %d bytes; update the offsets and this test together", RecordSize)
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
