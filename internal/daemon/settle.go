package daemon

import (
	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/netns"
	"github.com/tcpstated/tcpstated/internal/sockdiag"
)

// settleDue asks the kernel's socket table about every row about to be
// reported stuck in FIN_WAIT1 or FIN_WAIT2 (and every unfollowed
// TIME_WAIT past its 60 s). The kernel sometimes runs no program for a
// change (docs/performance.md), and a row that missed leaving the state
// would be a false finding: the kernel's answer settles it
// (tracker.Settle). A row the kernel cannot be asked about is reported as
// before. Only rows of the daemon's own network namespace are asked about
// for now: in a test-made namespace the 6.1 guest once answered "gone" for
// timewait sockets it held, a cause not found yet.
func (d *Daemon) settleDue() {
	due := d.trk.DueChecks()
	if len(due) == 0 {
		return
	}
	self, err := netns.Self()
	if err != nil {
		d.settleFailed(err)
		return
	}
	c, err := sockdiag.Open() // the daemon's threads are all in its own namespace
	if err != nil {
		d.settleFailed(err)
		return
	}
	defer c.Close()
	for _, r := range due {
		if r.Netns != 0 && uint64(r.Netns) != self.Inode {
			continue
		}
		st, found, err := c.State(sockdiag.Socket{Local: r.Local, Remote: r.Remote, Cookie: r.Cookie})
		if err != nil {
			d.settleFailed(err)
			return
		}
		d.trk.Settle(r, events.State(st), found, d.write)
	}
}

// settleFailed logs the first failure to ask the kernel; later ones are
// the same.
func (d *Daemon) settleFailed(err error) {
	if d.settleErrs.Add(1) == 1 {
		d.log.Warn().Err(err).Msg("cannot ask the kernel's socket table (sock_diag) about FIN_WAIT sockets about to be reported stuck: they are reported unchecked")
	}
}
