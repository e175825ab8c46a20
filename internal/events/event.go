package events

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"
)

// Kind says what a record reports.
type Kind uint8

const (
	// KindState: a socket changed state (the tracepoint, or a timewait
	// socket's substate switch, or a timewait socket's end).
	KindState Kind = 1
	// KindTimeWaitSwitch: a timewait socket went FIN_WAIT2 -> TIME_WAIT.
	KindTimeWaitSwitch Kind = 2
	// KindTimeWaitEnd: a timewait socket ended.
	KindTimeWaitEnd Kind = 3
	// KindSocket: a socket that exists (start-up snapshot).
	KindSocket Kind = 4
	// KindFile: a process holds a socket as a descriptor.
	KindFile Kind = 5
	// KindAccept: an accepted child (Cookie) is queued on the listener
	// whose cookie is Listener(), of several that may share its port.
	KindAccept Kind = 6
)

// Flags qualify a record; they mirror enum record_flag in bpf/tcpstated.h.
type Flags uint8

const (
	FlagTimeWait      Flags = 1 << 0 // handed over to a timewait socket
	FlagExpired       Flags = 1 << 1 // timewait timer expired
	FlagEndedEarly    Flags = 1 << 2 // timewait ended before its timer
	FlagSwitchDerived Flags = 1 << 3 // switch time taken from the timer
	FlagPreexisting   Flags = 1 << 4 // existed before tracing began
	FlagUnfollowed    Flags = 1 << 5 // a timewait socket whose end will not be seen
)

// Comm is a kernel task name (TASK_COMM_LEN bytes, NUL padded).
type Comm [16]byte

// Bytes returns the name without its padding; it does not allocate.
func (c *Comm) Bytes() []byte {
	if i := bytes.IndexByte(c[:], 0); i >= 0 {
		return c[:i]
	}
	return c[:]
}

func (c Comm) String() string { return string(c.Bytes()) }

// Event is one decoded record.
type Event struct {
	Kind      Kind
	Mono      uint64 // CLOCK_MONOTONIC ns of the change
	SinceMono uint64 // when Old began; 0: not seen
	Cookie    uint64 // socket cookie
	TimeWait  uint64 // identity of the timewait socket, 0 if none
	Aux       uint64 // timewait timer expiry (jiffies), the fd, or the listener
	Jiffies   uint64
	Pid       uint32 // owner (tgid); 0: unknown
	Owner     OwnerSource
	Comm      Comm
	CPUPid    uint32 // task on the CPU when the change ran
	CPUComm   Comm
	CPU       uint16
	Netns     uint32
	Family    Family
	Saddr     netip.Addr
	Daddr     netip.Addr
	Sport     uint16
	Dport     uint16
	Old, New  State
	Flags     Flags
}

// FD returns the descriptor of a KindFile record.
func (e *Event) FD() int { return int(e.Aux) }

// Listener returns the cookie of the listener a child's LISTEN -> SYN_RECV
// came from, or 0 where the kernel side could not tell.
func (e *Event) Listener() uint64 {
	if e.Kind == KindAccept || e.Kind == KindState && e.Old == Listen && e.New == SynRecv {
		return e.Aux
	}
	return 0
}

// RecordSize is the size of one ring-buffer record.
const RecordSize = int(unsafe.Sizeof(tcpstatedRecord{}))

// Offsets into a record, checked against the generated layout in tests.
const (
	offTs      = 0
	offSince   = 8
	offCookie  = 16
	offTw      = 24
	offAux     = 32
	offJiffies = 40
	offPid     = 48
	offCPUPid  = 52
	offNetns   = 56
	offSport   = 60
	offDport   = 62
	offSaddr   = 64
	offDaddr   = 80
	offKind    = 96
	offFamily  = 97
	offOld     = 98
	offNew     = 99
	offOwner   = 100
	offFlags   = 101
	offCPU     = 102
	offComm    = 104
	offCPUComm = 120
)

// ErrMalformed wraps every decoding error.
var ErrMalformed = errors.New("malformed record")

// Decode fills e from one record. Any byte slice yields an event or an
// error, never a panic: the bytes come from the kernel, but a reader must
// not trust a layout it did not check.
func Decode(b []byte, e *Event) error {
	if len(b) != RecordSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(b), RecordSize)
	}
	le := binary.NativeEndian
	kind := Kind(b[offKind])
	if kind < KindState || kind > KindAccept {
		return fmt.Errorf("%w: unknown kind %d", ErrMalformed, kind)
	}
	fam := Family(b[offFamily])
	switch fam {
	case IPv4:
		e.Saddr = netip.AddrFrom4([4]byte(b[offSaddr : offSaddr+4]))
		e.Daddr = netip.AddrFrom4([4]byte(b[offDaddr : offDaddr+4]))
	case IPv6:
		e.Saddr = netip.AddrFrom16([16]byte(b[offSaddr : offSaddr+16]))
		e.Daddr = netip.AddrFrom16([16]byte(b[offDaddr : offDaddr+16]))
	default:
		return fmt.Errorf("%w: unknown family %d", ErrMalformed, fam)
	}
	old, nw := State(b[offOld]), State(b[offNew])
	if !old.Valid() {
		return fmt.Errorf("%w: unknown state %d", ErrMalformed, old)
	}
	// Snapshots carry one state only.
	if kind != KindSocket && kind != KindFile && !nw.Valid() {
		return fmt.Errorf("%w: unknown state %d", ErrMalformed, nw)
	}
	owner := OwnerSource(b[offOwner])
	if owner > OwnerFile {
		return fmt.Errorf("%w: unknown owner source %d", ErrMalformed, owner)
	}
	e.Kind = kind
	e.Family = fam
	e.Old, e.New = old, nw
	e.Owner = owner
	e.Mono = le.Uint64(b[offTs:])
	e.SinceMono = le.Uint64(b[offSince:])
	e.Cookie = le.Uint64(b[offCookie:])
	e.TimeWait = le.Uint64(b[offTw:])
	e.Aux = le.Uint64(b[offAux:])
	e.Jiffies = le.Uint64(b[offJiffies:])
	e.Pid = le.Uint32(b[offPid:])
	e.CPUPid = le.Uint32(b[offCPUPid:])
	e.Netns = le.Uint32(b[offNetns:])
	e.Sport = le.Uint16(b[offSport:])
	e.Dport = le.Uint16(b[offDport:])
	e.Flags = Flags(b[offFlags])
	e.CPU = le.Uint16(b[offCPU:])
	copy(e.Comm[:], b[offComm:offComm+16])
	copy(e.CPUComm[:], b[offCPUComm:offCPUComm+16])
	return nil
}
