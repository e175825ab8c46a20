package tracker

import (
	"net/netip"
	"sort"
)

// ConnStats aggregates connection summaries, per command name and per peer.
type ConnStats struct {
	Connect   Durations // a client's SYN_SENT -> ESTABLISHED
	Handshake Durations // a server's SYN_RECV -> ESTABLISHED: its SYN-ACK to the ACK
	Life      Durations
	Ends      map[string]uint64 // by End*: at most the seven of connection.go
}

func (s *ConnStats) add(c *Connection) {
	if c.HasHandshake {
		switch c.Role {
		case RoleClient:
			s.Connect.Add(c.Handshake)
		case RoleServer:
			s.Handshake.Add(c.Handshake)
		}
	}
	if !c.LifeLowerBound {
		s.Life.Add(c.Life)
	}
	if s.Ends == nil {
		s.Ends = make(map[string]uint64, 4)
	}
	s.Ends[c.End]++
}

func (s *ConnStats) clone() ConnStats {
	out := *s
	out.Ends = make(map[string]uint64, len(s.Ends))
	for k, v := range s.Ends {
		out.Ends[k] = v
	}
	return out
}

// Peer is the other end of connections: for a client, the server it
// connects to (address and port); for a server, the client's address (its
// port is a new ephemeral one each time). The zero Peer is "other", past
// Config.MaxPeers.
type Peer struct {
	Addr netip.Addr
	Port uint16
}

func (p Peer) String() string {
	switch {
	case !p.Addr.IsValid():
		return OtherComm
	case p.Port == 0:
		return p.Addr.Unmap().String()
	}
	return netip.AddrPortFrom(p.Addr.Unmap(), p.Port).String()
}

func peerOf(s *Socket, c *Connection) Peer {
	if c.Role == RoleClient {
		return Peer{s.Daddr, s.Dport}
	}
	return Peer{Addr: s.Daddr}
}

// countConnection adds a summary to its command's and its peer's
// aggregates; peers past MaxPeers count under "other".
func (t *Tracker) countConnection(s *Socket, c *Connection) {
	t.commStats(s.Comm).Conn.add(c)
	p := peerOf(s, c)
	ps := t.peers[p]
	if ps == nil {
		if len(t.peers) >= t.cfg.MaxPeers {
			t.stats.PeersOverflow++
			p = Peer{}
			ps = t.peers[p]
		}
		if ps == nil {
			ps = &ConnStats{}
			t.peers[p] = ps
		}
	}
	ps.add(c)
}

// PeerView is one peer's aggregate.
type PeerView struct {
	Peer string
	ConnStats
}

// Peers returns a copy of the per-peer aggregates, by name.
func (t *Tracker) Peers() []PeerView {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]PeerView, 0, len(t.peers))
	for p, s := range t.peers {
		out = append(out, PeerView{p.String(), s.clone()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peer < out[j].Peer })
	return out
}
