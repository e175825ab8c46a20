package main

import (
	"fmt"
	"io"
	"time"
)

// soakWarmup is left out of the flatness check: the TIME_WAIT table fills
// for its first 60 s, and the table and the heap grow with it.
const soakWarmup = 2 * time.Minute

// Flat means the last quarter of the steady part peaks no higher than the
// first quarter by more than these.
const (
	soakRSSSlack   = 0.05 // and 2 MiB
	soakTableSlack = 0.10 // and 100 rows
)

// quarters are the steady samples' first and last quarter by time.
func (r soakResult) quarters() (first, last []soakSample) {
	var steady []soakSample
	for _, s := range r.samples {
		if s.at >= soakWarmup {
			steady = append(steady, s)
		}
	}
	if len(steady) < 4 {
		return nil, nil
	}
	q := len(steady) / 4
	return steady[:q], steady[len(steady)-q:]
}

func peak(ss []soakSample, f func(soakSample) float64) float64 {
	var m float64
	for _, s := range ss {
		m = max(m, f(s))
	}
	return m
}

func rssMiB(s soakSample) float64  { return float64(s.rssKiB) / 1024 }
func entries(s soakSample) float64 { return s.metrics["tcpstated_socket_table_entries"] }

// soakCheck is one verdict of the soak.
type soakCheck struct {
	what, measured string
	ok             bool
}

func (r soakResult) checks() []soakCheck {
	first, last := r.quarters()
	var out []soakCheck
	if first == nil {
		return []soakCheck{{"steady samples (after the first 2 min)", fmt.Sprint(len(r.samples)), false}}
	}
	a, b := peak(first, rssMiB), peak(last, rssMiB)
	out = append(out, soakCheck{"peak RSS, last quarter against first", fmt.Sprintf("%.1f against %.1f MiB", b, a),
		b <= a*(1+soakRSSSlack)+2})
	a, b = peak(first, entries), peak(last, entries)
	out = append(out, soakCheck{"peak socket table rows, last quarter against first", fmt.Sprintf("%.0f against %.0f", b, a),
		b <= a*(1+soakTableSlack)+100})
	end := r.samples[len(r.samples)-1].metrics
	for _, loss := range []string{"tcpstated_ringbuf_lost_total", "tcpstated_sink_dropped_total",
		"tcpstated_socket_table_full_total", "tcpstated_timewait_table_full_total",
		"tcpstated_kernel_synrecv_held_full_total", "tcpstated_kernel_recursion_misses_total"} {
		out = append(out, soakCheck{loss, fmt.Sprintf("%.0f", end[loss]), end[loss] == 0})
	}
	want := int64(len(perConnection)) * r.churn.Connections
	out = append(out, soakCheck{"churn transitions streamed = 10 × connections",
		fmt.Sprintf("%d of %d", r.events, want), r.events == want && want > 0})
	return out
}

func (r soakResult) passed() bool {
	if r.err != nil {
		return false
	}
	for _, c := range r.checks() {
		if !c.ok {
			return false
		}
	}
	return true
}

// markdown writes the soak's section of docs/performance.md.
func (r soakResult) markdown(w io.Writer, m machine) {
	p := printer(func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) })
	p("### Soak: %s at %.0f connections per second", r.cfg.duration, r.cfg.rate)
	p("")
	p("Measured %s by `make bench-soak` on %s.", m.date, m)
	p("tcpstated: `%s`.", m.daemon)
	p("Load: `tcpchurn churn --clients 2 --servers 1 --rate %.0f` for %s (%d connections, %.0f/s achieved, %d failed);",
		r.cfg.rate, r.cfg.duration, r.churn.Connections, r.churn.Rate, r.churn.Failed)
	p("every transition streamed to a file rotated (rename, SIGHUP) every %s; the daemon sampled as often.", r.cfg.every)
	p("")
	if r.err != nil {
		p("Failed: %s", oneLine(r.err.Error()))
		p("")
	}
	p("| check | measured | result |")
	p("| --- | --- | --- |")
	for _, c := range r.checks() {
		res := "pass"
		if !c.ok {
			res = "**FAILED**"
		}
		p("| %s | %s | %s |", c.what, c.measured, res)
	}
	p("")
	p("| time | RSS (MiB) | daemon CPU since the row before | socket table rows | sink queue | events (all, total) |")
	p("| ---: | ---: | ---: | ---: | ---: | ---: |")
	step := max(1, len(r.samples)/12)
	var prev *soakSample
	for i := range r.samples {
		s := &r.samples[i]
		if i%step != 0 && i != len(r.samples)-1 {
			continue
		}
		cpu := "–"
		if prev != nil && s.at > prev.at {
			cpu = fmt.Sprintf("%.1f%% of a CPU", 100*(s.cpuSeconds-prev.cpuSeconds)/(s.at-prev.at).Seconds())
		}
		p("| %s | %.1f | %s | %.0f | %.0f | %.0f |", s.at.Round(time.Second), rssMiB(*s), cpu, entries(*s),
			s.metrics["tcpstated_sink_queue_length"], s.metrics["tcpstated_events_total"])
		prev = s
	}
	p("")
}
