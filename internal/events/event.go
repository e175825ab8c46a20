package events

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"unsafe"
)

// Kind says what a record reports: enum record_kind of bpf/tcpstated.h,
// whose values bpf2go generates.
type Kind uint8

const (
	// KindState: a socket changed state (the tracepoint, or a timewait
	// socket's substate switch, or a timewait socket's end).
	KindState = Kind(tcpstatedRecordKindRECORD_STATE)
	// KindTimeWaitSwitch: a timewait socket went FIN_WAIT2 -> TIME_WAIT.
	KindTimeWaitSwitch = Kind(tcpstatedRecordKindRECORD_TW_SUBSTATE)
	// KindTimeWaitEnd: a timewait socket ended.
	KindTimeWaitEnd = Kind(tcpstatedRecordKindRECORD_TW_END)
	// KindSocket: a socket that exists (start-up snapshot).
	KindSocket = Kind(tcpstatedRecordKindRECORD_SOCKET)
	// KindFile: a process holds a socket as a descriptor.
	KindFile = Kind(tcpstatedRecordKindRECORD_FILE)
	// KindAccept: an accepted child (Cookie) is queued on the listener
	// whose cookie is Listener(), of several that may share its port.
	KindAccept = Kind(tcpstatedRecordKindRECORD_ACCEPT)
	// KindReset: an RST sent or received (ResetReceived); Old and New
	// are the socket's state then, Cookie 0 for an RST that answered a
	// segment no socket took.
	KindReset = Kind(tcpstatedRecordKindRECORD_RESET)
)

// Flags qualify a record: enum record_flag of bpf/tcpstated.h.
type Flags uint8

const (
	FlagTimeWait      = Flags(tcpstatedRecordFlagFLAG_TIMEWAIT)       // handed over to a timewait socket
	FlagExpired       = Flags(tcpstatedRecordFlagFLAG_EXPIRED)        // timewait timer expired
	FlagEndedEarly    = Flags(tcpstatedRecordFlagFLAG_ENDED_EARLY)    // timewait ended before its timer
	FlagSwitchDerived = Flags(tcpstatedRecordFlagFLAG_SWITCH_DERIVED) // switch time taken from the timer
	FlagPreexisting   = Flags(tcpstatedRecordFlagFLAG_PREEXISTING)    // existed before tracing began
	FlagUnfollowed    = Flags(tcpstatedRecordFlagFLAG_UNFOLLOWED)     // a timewait socket whose end will not be seen
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
	Totals    Totals // KindState: the full socket's counters after the change
}

// Totals are a full socket's counters as the kernel keeps them (tcp_info
// names them the same), read at each of its state changes.
type Totals struct {
	BytesAcked    uint64 // sent and acked by the peer, with the SYN and FIN acked
	BytesReceived uint64 // received in order, with the peer's FIN read
	SRTTMicros    uint32 // smoothed round-trip time
	Retrans       uint32 // segments retransmitted
}

// FD returns the descriptor of a KindFile record.
func (e *Event) FD() int { return int(e.Aux) }

// SockErr is the error the kernel had set on a full socket when it went
// to CLOSE (ECONNREFUSED, ECONNRESET, ETIMEDOUT...), 0 if none.
func (e *Event) SockErr() syscall.Errno {
	if e.Kind != KindState || e.New != Close || e.Aux > 4095 {
		return 0
	}
	return syscall.Errno(e.Aux)
}

// Payload is what was sent (acked by the peer) and received by the end of
// this change, from the kernel's counters, without the FINs they count as
// a byte each: its own once acked, the peer's once read. A client's acked
// SYN is in sent too; only the caller knows the socket is a client.
func (e *Event) Payload() (sent, received uint64) {
	sent, received = e.Totals.BytesAcked, e.Totals.BytesReceived
	st := e.New
	if st == Close {
		st = e.Old
	}
	ownAcked := st == FinWait2 || st == TimeWait || st == LastAck && e.New == Close && e.SockErr() == 0
	peerRead := st == CloseWait || st == LastAck || st == Closing || st == TimeWait
	if ownAcked && sent > 0 {
		sent--
	}
	if peerRead && received > 0 {
		received--
	}
	return sent, received
}

// ResetReceived says a KindReset record is an RST the socket received
// (else one it sent).
func (e *Event) ResetReceived() bool {
	return e.Kind == KindReset && e.Aux == uint64(tcpstatedResetDirectionRESET_RECEIVED)
}

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

// Offsets into a record, from the layout bpf2go generated from C.
const (
	offTs      = int(unsafe.Offsetof(tcpstatedRecord{}.TsNs))
	offSince   = int(unsafe.Offsetof(tcpstatedRecord{}.SinceNs))
	offCookie  = int(unsafe.Offsetof(tcpstatedRecord{}.Cookie))
	offTw      = int(unsafe.Offsetof(tcpstatedRecord{}.Tw))
	offAux     = int(unsafe.Offsetof(tcpstatedRecord{}.Aux))
	offJiffies = int(unsafe.Offsetof(tcpstatedRecord{}.Jiffies))
	offAcked   = int(unsafe.Offsetof(tcpstatedRecord{}.BytesAcked))
	offRecvd   = int(unsafe.Offsetof(tcpstatedRecord{}.BytesReceived))
	offSRTT    = int(unsafe.Offsetof(tcpstatedRecord{}.SrttUs))
	offRetrans = int(unsafe.Offsetof(tcpstatedRecord{}.TotalRetrans))
	offPid     = int(unsafe.Offsetof(tcpstatedRecord{}.Pid))
	offCPUPid  = int(unsafe.Offsetof(tcpstatedRecord{}.CpuPid))
	offNetns   = int(unsafe.Offsetof(tcpstatedRecord{}.Netns))
	offSport   = int(unsafe.Offsetof(tcpstatedRecord{}.Sport))
	offDport   = int(unsafe.Offsetof(tcpstatedRecord{}.Dport))
	offSaddr   = int(unsafe.Offsetof(tcpstatedRecord{}.Saddr))
	offDaddr   = int(unsafe.Offsetof(tcpstatedRecord{}.Daddr))
	offKind    = int(unsafe.Offsetof(tcpstatedRecord{}.Kind))
	offFamily  = int(unsafe.Offsetof(tcpstatedRecord{}.Family))
	offOld     = int(unsafe.Offsetof(tcpstatedRecord{}.Oldstate))
	offNew     = int(unsafe.Offsetof(tcpstatedRecord{}.Newstate))
	offOwner   = int(unsafe.Offsetof(tcpstatedRecord{}.OwnerSrc))
	offFlags   = int(unsafe.Offsetof(tcpstatedRecord{}.Flags))
	offCPU     = int(unsafe.Offsetof(tcpstatedRecord{}.Cpu))
	offComm    = int(unsafe.Offsetof(tcpstatedRecord{}.Comm))
	offCPUComm = int(unsafe.Offsetof(tcpstatedRecord{}.CpuComm))
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
	if kind < KindState || kind > KindReset {
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
	e.Totals = Totals{
		BytesAcked:    le.Uint64(b[offAcked:]),
		BytesReceived: le.Uint64(b[offRecvd:]),
		SRTTMicros:    le.Uint32(b[offSRTT:]),
		Retrans:       le.Uint32(b[offRetrans:]),
	}
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
