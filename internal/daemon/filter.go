package daemon

import (
	"net/netip"

	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/tracker"
)

// match applies the user's filters to a report in user space: the kernel
// filters what it can, but owners learned later and derived timewait
// events are only known here.
func match(f *events.Filter, r *tracker.Report) bool {
	ev := r.Ev
	if f.Pid != 0 && ev.Pid != f.Pid {
		return false
	}
	if f.Port != 0 && ev.Sport != f.Port && ev.Dport != f.Port {
		return false
	}
	if f.Family != 0 && ev.Family != f.Family {
		return false
	}
	if len(f.States) > 0 {
		st := []events.State{ev.Old, ev.New}
		if r.Kind != tracker.ReportState {
			st = []events.State{r.State}
			if r.Kind == tracker.ReportTimeWaitPressure {
				st = []events.State{events.TimeWait}
			}
		}
		for _, want := range f.States {
			for _, s := range st {
				if s == want {
					return true
				}
			}
		}
		return false
	}
	return true
}

// quietEnd says whether a report is the end of a TIME_WAIT that existed
// before the daemon started, left out of the stream unless asked for: a
// host after a load test holds a hundred thousand, whose ends would flood
// the first minute with sockets the stream never saw begin.
func quietEnd(o *Options, r *tracker.Report) bool {
	return !o.StreamPreexistingEnds && r.Kind == tracker.ReportState &&
		r.Ev.Kind == events.KindTimeWaitEnd && r.Ev.Flags&events.FlagPreexisting != 0
}

// ownAPITraffic says whether a report is about a connection to the
// daemon's own HTTP API (a scrape, tcpstated sockets or top), left out of
// the stream unless asked for: a top refreshing every two seconds made a
// third of the stream of a quiet host. Its server side is a socket on the
// listener's address and port; its client side one towards them (towards
// this host, for a wildcard listener). A connection to another host's
// port of the same number is not the API's.
func (d *Daemon) ownAPITraffic(r *tracker.Report) bool {
	api, ev := d.apiAddr, r.Ev
	if d.opt.TraceOwnAPI || !api.IsValid() || r.Kind != tracker.ReportState && r.Kind != tracker.ReportConnection && r.Kind != tracker.ReportReset || ev.Netns != d.apiNetns {
		return false
	}
	ip := api.Addr().Unmap()
	wildcard := ip.IsUnspecified()
	at := func(a netip.Addr, port uint16, local bool) bool {
		if port != api.Port() {
			return false
		}
		a = a.Unmap()
		if !wildcard {
			return a == ip
		}
		// A wildcard listener: its own sockets are on any address; a
		// client's peer must be this host, on loopback or the client's
		// own address.
		return local || a.IsLoopback() || a == ev.Saddr.Unmap()
	}
	return at(ev.Saddr, ev.Sport, true) || at(ev.Daddr, ev.Dport, false)
}
