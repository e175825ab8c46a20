package daemon

import (
	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/netns"
	"github.com/tcpstated/tcpstated/internal/sockdiag"
	"github.com/tcpstated/tcpstated/internal/tracker"
)

// settleDue asks the kernel's socket table about every row about to be
// reported stuck in FIN_WAIT1 or FIN_WAIT2. The kernel sometimes runs no
// program for a change (docs/performance.md), and a row that missed
// leaving the state would be a false finding: the kernel's answer settles
// it (tracker.Settle). A row the kernel cannot be asked about is reported
// as before.
func (d *Daemon) settleDue() {
	due := d.trk.DueChecks()
	if len(due) == 0 {
		return
	}
	byNetns := map[uint32][]tracker.Due{}
	for _, r := range due {
		byNetns[r.Netns] = append(byNetns[r.Netns], r)
	}
	self, err := netns.Self()
	if err != nil {
		d.settleFailed(err)
		return
	}
	var others map[uint32]netns.NS
	for ino, rows := range byNetns {
		ns := self
		if ino != 0 && uint64(ino) != self.Inode {
			if others == nil {
				others = map[uint32]netns.NS{}
				found, _ := netns.List(maxNamespaces)
				for _, n := range found.NS {
					others[uint32(n.Inode)] = n
				}
			}
			n, ok := others[ino]
			if !ok {
				continue // its namespace is gone or hidden: reported as is
			}
			ns = n
		}
		// What the kernel said of each row; asked false where no answer
		// came (the row is then reported as it is).
		type answer struct {
			state        uint8
			found, asked bool
		}
		answers := make([]answer, len(rows))
		err := netns.Do(ns, func() error {
			c, err := sockdiag.Open()
			if err != nil {
				return err
			}
			defer c.Close()
			for i, r := range rows {
				st, found, err := c.State(sockdiag.Socket{Local: r.Local, Remote: r.Remote, Cookie: r.Cookie})
				if err != nil {
					return err
				}
				answers[i] = answer{st, found, true}
			}
			return nil
		})
		if err != nil {
			d.settleFailed(err)
		}
		for i, a := range answers {
			if a.asked {
				d.trk.Settle(rows[i], events.State(a.state), a.found, d.write)
			}
		}
	}
}

// settleFailed logs the first failure to ask the kernel; later ones are
// the same.
func (d *Daemon) settleFailed(err error) {
	if d.settleErrs.Add(1) == 1 {
		d.log.Warn().Err(err).Msg("cannot ask the kernel's socket table (sock_diag) about FIN_WAIT sockets about to be reported stuck: they are reported unchecked")
	}
}
