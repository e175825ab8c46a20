package events

import "strconv"

// State is a TCP state as the kernel numbers it (include/net/tcp_states.h).
type State uint8

// The kernel's TCP states; names drop the TCP_ prefix.
const (
	Established   State = 1
	SynSent       State = 2
	SynRecv       State = 3
	FinWait1      State = 4
	FinWait2      State = 5
	TimeWait      State = 6
	Close         State = 7
	CloseWait     State = 8
	LastAck       State = 9
	Listen        State = 10
	Closing       State = 11
	NewSynRecv    State = 12
	BoundInactive State = 13 // Linux >= 6.7
	maxState            = BoundInactive
)

var stateNames = [...]string{
	Established:   "ESTABLISHED",
	SynSent:       "SYN_SENT",
	SynRecv:       "SYN_RECV",
	FinWait1:      "FIN_WAIT1",
	FinWait2:      "FIN_WAIT2",
	TimeWait:      "TIME_WAIT",
	Close:         "CLOSE",
	CloseWait:     "CLOSE_WAIT",
	LastAck:       "LAST_ACK",
	Listen:        "LISTEN",
	Closing:       "CLOSING",
	NewSynRecv:    "NEW_SYN_RECV",
	BoundInactive: "BOUND_INACTIVE",
}

// Valid reports whether the kernel defines s.
func (s State) Valid() bool { return s >= Established && s <= maxState }

func (s State) String() string {
	if s.Valid() {
		return stateNames[s]
	}
	return "STATE_" + strconv.Itoa(int(s))
}

// ParseState accepts a state name with or without the TCP_ prefix, in any
// case, and the dash spellings ss uses (close-wait).
func ParseState(name string) (State, bool) {
	n := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		case c == '-':
			c = '_'
		}
		n = append(n, c)
	}
	s := string(n)
	if len(s) > 4 && s[:4] == "TCP_" {
		s = s[4:]
	}
	switch s {
	case "FIN_WAIT_1":
		s = "FIN_WAIT1"
	case "FIN_WAIT_2":
		s = "FIN_WAIT2"
	case "SYN_RECEIVED":
		s = "SYN_RECV"
	case "CLOSED":
		s = "CLOSE"
	}
	for st := Established; st <= maxState; st++ {
		if stateNames[st] == s {
			return st, true
		}
	}
	return 0, false
}

// StateNames lists every state name, for help texts and errors.
func StateNames() []string {
	out := make([]string, 0, maxState)
	for st := Established; st <= maxState; st++ {
		out = append(out, stateNames[st])
	}
	return out
}

// Family is the address family of a socket.
type Family uint8

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return "unknown"
}

// OwnerSource says how the owner of a socket was learned: enum
// owner_source of bpf/tcpstated.h.
type OwnerSource uint8

const (
	OwnerUnknown = OwnerSource(tcpstatedOwnerSourceOWNER_UNKNOWN)
	OwnerConnect = OwnerSource(tcpstatedOwnerSourceOWNER_CONNECT) // called connect()
	OwnerListen  = OwnerSource(tcpstatedOwnerSourceOWNER_LISTEN)  // called listen()
	OwnerAccept  = OwnerSource(tcpstatedOwnerSourceOWNER_ACCEPT)  // the listener's owner, for an accepted socket
	OwnerClose   = OwnerSource(tcpstatedOwnerSourceOWNER_CLOSE)   // called close() or shutdown()
	OwnerFile    = OwnerSource(tcpstatedOwnerSourceOWNER_FILE)    // holds the socket in its file table
)

func (o OwnerSource) String() string {
	switch o {
	case OwnerConnect:
		return "connect"
	case OwnerListen:
		return "listen"
	case OwnerAccept:
		return "accept"
	case OwnerClose:
		return "close"
	case OwnerFile:
		return "fd"
	}
	return "unknown"
}
