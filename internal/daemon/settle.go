package daemon

import (
	"errors"

	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/netns"
	"github.com/tcpstated/tcpstated/internal/sockdiag"
	"github.com/tcpstated/tcpstated/internal/tracker"
)

// settleDue asks the kernel's socket table about every row about to be
// reported stuck in FIN_WAIT1 or FIN_WAIT2, every FIN_WAIT1 row a second
// old (once), and every unfollowed TIME_WAIT past its 60 s; when final (at
// stop), every FIN_WAIT1 row. The kernel sometimes runs no program for a
// change (docs/performance.md), and a row that missed leaving the state
// would be a false finding: the kernel's answer settles it
// (tracker.Settle). sock_diag sees only the namespace it is opened in, so
// rows are asked about namespace by namespace; a row whose namespace is
// gone or hidden, or that the kernel does not answer for, is reported as
// it is.
func (d *Daemon) settleDue(final bool) {
	due := d.trk.DueChecks(final)
	if len(due) == 0 {
		return
	}
	self, err := netns.Self()
	if err != nil {
		d.settleFailed(err)
		return
	}
	byNetns := map[uint64][]tracker.Due{}
	for _, r := range due {
		ino := uint64(r.Netns)
		if ino == 0 {
			ino = self.Inode
		}
		byNetns[ino] = append(byNetns[ino], r)
	}
	var known map[uint64]netns.NS
	for ino, rows := range byNetns {
		ns := self
		if ino != self.Inode {
			if known == nil {
				known = map[uint64]netns.NS{}
				found, _ := netns.List(maxNamespaces)
				for _, n := range found.NS {
					known[n.Inode] = n
				}
			}
			var ok bool
			if ns, ok = known[ino]; !ok {
				continue
			}
		}
		d.settleIn(ns, rows)
	}
}

// settleIn asks ns's socket table about rows, then settles each row that
// got an answer.
func (d *Daemon) settleIn(ns netns.NS, rows []tracker.Due) {
	type answer struct {
		state uint8
		found bool
	}
	answers := make([]answer, 0, len(rows))
	err := netns.Do(ns, func() error {
		c, err := sockdiag.Open()
		if err != nil {
			return err
		}
		defer c.Close()
		for _, r := range rows {
			st, found, err := c.State(sockdiag.Socket{Local: r.Local, Remote: r.Remote, Cookie: r.Cookie})
			if err != nil {
				return err
			}
			answers = append(answers, answer{st, found})
		}
		return nil
	})
	if err != nil && !errors.Is(err, netns.ErrGone) {
		d.settleFailed(err)
	}
	for i, a := range answers {
		d.trk.Settle(rows[i], events.State(a.state), a.found, d.write)
	}
}

// settleFailed logs the first failure to ask the kernel; later ones are
// the same.
func (d *Daemon) settleFailed(err error) {
	if d.settleErrs.Add(1) == 1 {
		d.log.Warn().Err(err).Msg("cannot ask the kernel's socket table (sock_diag) about FIN_WAIT sockets about to be reported stuck: they are reported unchecked")
	}
}
