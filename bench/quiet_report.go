package main

import (
	"fmt"
	"io"
	"slices"
)

// markdown writes make bench-quiet's section of docs/performance.md.
func (q quietResult) markdown(w io.Writer, m machine) {
	p := printer(func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) })
	p("### An idle host, and TCP timers without state changes")
	p("")
	p("Measured %s by `make bench-quiet` on %s.", m.date, m)
	p("tcpstated: `%s`. Before the bench the machine was %.0f%% busy.", m.daemon, m.busyPct)
	p("")
	id := q.idle
	p("**Idle**: tcpstated running %.0f s with nothing else on the host (after 2 s for its start-up scans):", id.seconds)
	p("daemon %.3f%% of a CPU (%.2f ms of CPU a second), its BPF programs %.4f%% of a CPU.",
		100*id.daemonCPU/id.seconds, 1000*id.daemonCPU/id.seconds, 100*float64(id.bpfNs())/1e9/id.seconds)
	p("")
	p("| program | runs / s | ns / run |")
	p("| --- | ---: | ---: |")
	for _, name := range progNames(id.progs) {
		s := id.progs[name]
		p("| `%s` | %.1f | %.0f |", name, float64(s.runs)/id.seconds, float64(s.ns)/float64(s.runs))
	}
	p("")

	var none, traced []float64
	var bpf, daemon []float64
	sum := map[string]progStat{}
	var trips int64
	for _, r := range q.runs {
		if !r.traced {
			none = append(none, r.rate)
			continue
		}
		traced = append(traced, r.rate)
		bpf = append(bpf, float64(r.bpfNs())/float64(r.roundTrips))
		daemon = append(daemon, r.daemonCPU*1e9/float64(r.roundTrips))
		trips += r.roundTrips
		for name, s := range r.progs {
			sum[name] = sum[name].plus(s)
		}
	}
	p("**Timers without state changes**: `tcpchurn pingpong --connections %d` for %s, %d pairs without and with",
		q.cfg.conns, q.cfg.pingpong, q.cfg.pairs)
	p("tcpstated, alternating: one-byte round trips on established loopback connections, each arming and")
	p("cancelling TCP's retransmit and delayed-ACK timers, no state change. Medians:")
	p("")
	p("| tracer | round trips / s | vs none | BPF ns / round trip | daemon CPU ns / round trip |")
	p("| --- | ---: | ---: | ---: | ---: |")
	mn := median(none)
	p("| none | %.0f | 1 | – | – |", mn)
	if mn > 0 {
		p("| tcpstated | %.0f | %.3f | %.0f | %.0f |", median(traced), median(traced)/mn, median(bpf), median(daemon))
	}
	p("")
	if trips > 0 {
		p("Per program, over all the traced runs (%d round trips):", trips)
		p("")
		p("| program | runs / round trip | ns / run | ns / round trip |")
		p("| --- | ---: | ---: | ---: |")
		for _, name := range progNames(sum) {
			s := sum[name]
			p("| `%s` | %.2f | %.0f | %.1f |", name, float64(s.runs)/float64(trips),
				float64(s.ns)/float64(s.runs), float64(s.ns)/float64(trips))
		}
		p("")
	}
	p("| pair | tracer | round trips / s | daemon CPU s | BPF s |")
	p("| ---: | --- | ---: | ---: | ---: |")
	for _, r := range q.runs {
		name, cpu, b := "none", "–", "–"
		if r.traced {
			name, cpu, b = "tcpstated", fmt.Sprintf("%.3f", r.daemonCPU), fmt.Sprintf("%.3f", float64(r.bpfNs())/1e9)
		}
		p("| %d | %s | %.0f | %s | %s |", r.pair, name, r.rate, cpu, b)
	}
	p("")
}

// progNames lists the programs that ran, busiest first.
func progNames(m map[string]progStat) []string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if m[a].ns != m[b].ns {
			if m[a].ns > m[b].ns {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		}
		return 1
	})
	return names
}
