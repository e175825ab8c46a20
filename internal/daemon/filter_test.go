package daemon

import (
	"net/netip"
	"testing"

	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/tracker"
)

// The daemon's own API connections, and only those, are left out.
func TestOwnAPITraffic(t *testing.T) {
	ap := netip.MustParseAddrPort
	ip := netip.MustParseAddr
	const ns = 7
	for _, tc := range []struct {
		listen    string
		saddr     string
		sport     uint16
		daddr     string
		dport     uint16
		netns     uint32
		own, keep bool
	}{
		{"127.0.0.1:9932", "127.0.0.1", 9932, "127.0.0.1", 40000, ns, true, false},      // the server side
		{"127.0.0.1:9932", "127.0.0.1", 40000, "127.0.0.1", 9932, ns, true, false},      // a client of it
		{"127.0.0.1:9932", "10.0.0.1", 40000, "10.0.0.5", 9932, ns, false, false},       // another host's :9932
		{"127.0.0.1:9932", "127.0.0.1", 40000, "127.0.0.1", 9932, ns + 1, false, false}, // another namespace
		{"127.0.0.1:9932", "127.0.0.1", 40000, "127.0.0.1", 9932, ns, false, true},      // --trace-own-api
		{"0.0.0.0:9932", "10.0.0.1", 9932, "10.0.0.9", 50000, ns, true, false},          // a scrape from elsewhere
		{"0.0.0.0:9932", "10.0.0.1", 50000, "10.0.0.1", 9932, ns, true, false},          // this host to itself
		{"0.0.0.0:9932", "10.0.0.1", 50000, "10.0.0.5", 9932, ns, false, false},         // another host's :9932
		{"[::]:9932", "::ffff:127.0.0.1", 50000, "127.0.0.1", 9932, ns, true, false},    // v4 on a v6 wildcard
	} {
		d := &Daemon{apiAddr: ap(tc.listen), apiNetns: ns, opt: Options{TraceOwnAPI: tc.keep}}
		ev := events.Event{Kind: events.KindState, Netns: tc.netns, Saddr: ip(tc.saddr), Sport: tc.sport,
			Daddr: ip(tc.daddr), Dport: tc.dport}
		if got := d.ownAPITraffic(&tracker.Report{Kind: tracker.ReportState, Ev: &ev}); got != tc.own {
			t.Errorf("listen %s, %s:%d -> %s:%d netns %d keep %v: own %v, want %v",
				tc.listen, tc.saddr, tc.sport, tc.daddr, tc.dport, tc.netns, tc.keep, got, tc.own)
		}
	}
}
