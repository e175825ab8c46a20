package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Targets tcpstated must meet (docs/performance.md explains each).
const (
	targetRatio      = 0.90 // connection rate with tcpstated / without
	targetHoldRSSMiB = 64   // daemon VmHWM with 100k established connections
	targetBPFNs      = 200  // BPF run time per delivered event
	targetDaemonNs   = 200  // the daemon's user+system CPU per delivered event
	targetChurnMiB   = 64   // daemon peak RSS in a churn run
)

// bench is everything one invocation measured.
type bench struct {
	machine  machine
	churn    churnConfig
	pairs    int
	tracers  []string // "none" first
	runs     []runResult
	hold     *holdResult // nil when skipped
	holdSize int
	// pageCache is the machine's cost of writing a byte into the page
	// cache, probed before the runs: the floor under a tracer's output.
	pageCache *pageCacheCost
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// ratio is a tracer run's rate over the untraced run of the same pair.
func (b *bench) ratio(r runResult) (float64, bool) {
	for _, base := range b.runs {
		if base.pair == r.pair && base.tracer == "none" && base.err == nil && base.churn.Rate > 0 {
			return r.churn.Rate / base.churn.Rate, r.err == nil
		}
	}
	return 0, false
}

func (b *bench) runsOf(tracer string) []runResult {
	var out []runResult
	for _, r := range b.runs {
		if r.tracer == tracer {
			out = append(out, r)
		}
	}
	return out
}

// summary is one tracer's medians over the pairs.
type summary struct {
	runs, failed   int
	rate, ratio    float64
	complete       int // runs with delivered == expected
	deliveredShare float64
	lost           int64
	lostUnknown    int
	wrongOwners    int64 // events with another process's pid (all runs)
	noOwners       int64 // events naming no owner (all runs)
	ownersChecked  int   // runs whose churn named its processes
	skipped        int64
	bpfNs, cpuNs   float64 // per event: BPF run time, the tracer process's CPU
	sysNs          float64 // per event: the system part of cpuNs
	bytes          float64 // output bytes per event
	sinkDropped    int64   // events a sink's queue dropped (all runs)
	peakMiB        float64
}

func (b *bench) summarize(tracer string) summary {
	var s summary
	var rates, ratios, shares, bpfs, cpus, syss, bytes, rss []float64
	for _, r := range b.runsOf(tracer) {
		s.runs++
		if r.err != nil {
			s.failed++
			continue
		}
		rates = append(rates, r.churn.Rate)
		if x, ok := b.ratio(r); ok {
			ratios = append(ratios, x)
		}
		if r.trace == nil {
			continue
		}
		if r.delivered() == r.expected() {
			s.complete++
		}
		if r.expected() > 0 {
			shares = append(shares, float64(r.delivered())/float64(r.expected()))
		}
		s.lost += r.trace.lost
		s.skipped += r.trace.skipped
		s.wrongOwners += r.trace.churn[wrongOwnerKey]
		s.noOwners += r.trace.churn[noOwnerKey]
		if len(r.churn.ClientPids) > 0 {
			s.ownersChecked++
		}
		if !r.trace.lostKnown {
			s.lostUnknown++
		}
		cpus = append(cpus, r.cpuPerEvent())
		syss = append(syss, r.sysPerEvent())
		bytes = append(bytes, r.bytesPerEvent())
		s.sinkDropped += r.trace.sinkDropped
		bpfs = append(bpfs, r.bpfPerEvent())
		rss = append(rss, float64(r.trace.peakRSSKiB)/1024)
	}
	s.rate, s.ratio, s.deliveredShare = median(rates), median(ratios), median(shares)
	s.bpfNs, s.cpuNs, s.peakMiB = median(bpfs), median(cpus), median(rss)
	s.sysNs, s.bytes = median(syss), median(bytes)
	return s
}

// check is one target and whether it was met.
type check struct {
	what, target, measured string
	ok                     bool
}

func (b *bench) checks() []check {
	var cs []check
	if b.pairs > 0 && slices.Contains(b.tracers, "tcpstated") {
		s := b.summarize("tcpstated")
		ok := s.runs > 0 && s.failed == 0
		cs = append(cs,
			check{"tcpstated runs that completed", "all", fmt.Sprintf("%d of %d", s.runs-s.failed, s.runs), ok},
			check{"connection rate with tcpstated / without (median)", fmt.Sprintf(">= %.2f", targetRatio),
				fmt.Sprintf("%.3f", s.ratio), ok && s.ratio >= targetRatio},
			check{"state events delivered = 10 × connections", "every run",
				fmt.Sprintf("%d of %d runs", s.complete, s.runs), ok && s.complete == s.runs},
			check{"ring-buffer records lost", "0 in every run",
				lostText(s), ok && s.lost == 0 && s.lostUnknown == 0},
			check{"events that do not name the process owning the socket (clients and servers in separate processes)", "0, checked in every run",
				fmt.Sprintf("%d with another process's pid, %d with none (checked in %d of %d runs)", s.wrongOwners, s.noOwners, s.ownersChecked, s.runs),
				ok && s.wrongOwners == 0 && s.noOwners == 0 && s.ownersChecked == s.runs},
			check{"sink events dropped with the default queue", "0 in every run",
				fmt.Sprint(s.sinkDropped), ok && s.sinkDropped == 0},
			check{"BPF run time per delivered event (median)", fmt.Sprintf("<= %d ns", targetBPFNs),
				fmt.Sprintf("%.0f ns", s.bpfNs), ok && s.bpfNs <= targetBPFNs},
			check{"daemon CPU (user + system) per delivered event (median)", fmt.Sprintf("<= %d ns", targetDaemonNs),
				fmt.Sprintf("%.0f ns", s.cpuNs), ok && s.cpuNs <= targetDaemonNs},
			check{"tcpstated CPU per delivered event, BPF and daemon (median)", fmt.Sprintf("<= %d ns", targetBPFNs+targetDaemonNs),
				fmt.Sprintf("%.0f ns", s.bpfNs+s.cpuNs), ok && s.bpfNs+s.cpuNs <= targetBPFNs+targetDaemonNs},
			check{"tcpstated peak RSS in the churn runs (median)", fmt.Sprintf("<= %d MiB", targetChurnMiB),
				fmt.Sprintf("%.1f MiB", s.peakMiB), ok && s.peakMiB <= targetChurnMiB},
		)
	}
	if b.hold != nil {
		h := b.hold
		mib := float64(h.hwmKiB) / 1024
		measured := fmt.Sprintf("%.1f MiB", mib)
		if h.err != nil {
			measured = "failed: " + h.err.Error()
		}
		cs = append(cs, check{fmt.Sprintf("tcpstated peak RSS (VmHWM) with %d established connections", b.holdSize),
			fmt.Sprintf("<= %d MiB", targetHoldRSSMiB), measured,
			h.err == nil && h.connections == b.holdSize && mib <= targetHoldRSSMiB})
	}
	return cs
}

func lostText(s summary) string {
	if s.lostUnknown > 0 {
		return fmt.Sprintf("%d (no summary in %d runs)", s.lost, s.lostUnknown)
	}
	return fmt.Sprint(s.lost)
}

func (b *bench) passed() bool {
	for _, c := range b.checks() {
		if !c.ok {
			return false
		}
	}
	return true
}

// printer writes one line of markdown.
type printer func(format string, a ...any)

// markdown renders the results section of docs/performance.md.
func (b *bench) markdown(w io.Writer) {
	p := printer(func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) })
	b.mdSetting(p)
	b.mdTargets(p)
	if b.pairs > 0 {
		b.mdChurnMedians(p)
		b.mdFloor(p)
		b.mdRuns(p)
	}
	if b.hold != nil {
		b.mdHold(p)
	}
}

func (b *bench) mdSetting(p printer) {
	m := b.machine
	p("## Results")
	p("")
	p("Measured %s by `make bench` on %s.", m.date, m)
	if m.daemon != "" {
		p("tcpstated: `%s`.", m.daemon)
	}
	if m.bpftrace != "" {
		p("bpftrace: `%s`.", m.bpftrace)
	}
	if b.pairs > 0 {
		p("Load: %d pairs of %s runs of `tcpchurn %s`; within a pair the order alternates.",
			b.pairs, b.churn.duration, strings.Join(b.churn.args()[3:], " "))
	}
	other := "none"
	if len(m.otherBPF) > 0 {
		other = strings.Join(m.otherBPF, ", ")
	}
	p("Before the bench the machine was %.0f%% busy; processes holding BPF programs: %s.", m.busyPct, other)
	p("")
}

func (b *bench) mdTargets(p printer) {
	p("### Targets")
	p("")
	p("| check | target | measured | result |")
	p("| --- | --- | --- | --- |")
	for _, c := range b.checks() {
		res := "pass"
		if !c.ok {
			res = "**MISSED**"
		}
		p("| %s | %s | %s | %s |", c.what, c.target, c.measured, res)
	}
	p("")
}

func (b *bench) mdChurnMedians(p printer) {
	p("### Connection churn (medians over %d pairs)", b.pairs)
	p("")
	p("| tracer | conn/s | rate vs none | events delivered / expected | runs complete | lost (all runs) | skipped by the kernel (all runs) | BPF ns / event | tracer process CPU ns / event | total ns / event | tracer peak RSS (MiB) |")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, t := range b.tracers {
		s := b.summarize(t)
		if t == "none" {
			p("| none | %.0f | 1 | – | – | – | – | – | – | – | – |", s.rate)
			continue
		}
		p("| %s | %.0f | %.3f | %.5f | %d of %d | %s | %d | %.0f | %.0f | %.0f | %.1f |",
			t, s.rate, s.ratio, s.deliveredShare, s.complete, s.runs, lostText(s), s.skipped, s.bpfNs, s.cpuNs, s.bpfNs+s.cpuNs, s.peakMiB)
	}
	var others []float64
	for _, r := range b.runs {
		others = append(others, r.otherPct)
	}
	p("")
	p("Other load during the runs (CPU used by neither tcpchurn nor the tracer): median %.1f%%, max %.1f%%.",
		median(others), slices.Max(append(others, 0)))
	p("")
}

// mdFloor splits each tracer's CPU per event and sets its output beside
// what the page cache alone takes for those bytes on this machine.
func (b *bench) mdFloor(p printer) {
	pc := b.pageCache
	if pc == nil {
		return
	}
	p("### Where the CPU per event goes (medians)")
	p("")
	if pc.err != nil {
		p("The page-cache probe failed: %s.", oneLine(pc.err.Error()))
		p("")
		return
	}
	p("Before the runs, writing %d MiB into a new file took %.2f ns of system time per byte; into the memory of one deleted just before, %.2f ns.",
		pageCacheProbeBytes>>20, pc.fresh, pc.reused)
	p("The last column is the tracer's bytes per event at those two costs: what its `write(2)` calls take of its system time, whatever the tracer.")
	p("")
	p("| tracer | BPF ns / event | process user ns / event | process system ns / event | output bytes / event | page-cache write ns / event (new memory – reused) |")
	p("| --- | ---: | ---: | ---: | ---: | ---: |")
	for _, t := range b.tracers {
		if t == "none" {
			continue
		}
		s := b.summarize(t)
		p("| %s | %.0f | %.0f | %.0f | %.0f | %.0f – %.0f |",
			t, s.bpfNs, s.cpuNs-s.sysNs, s.sysNs, s.bytes, s.bytes*pc.fresh, s.bytes*pc.reused)
	}
	p("")
	b.mdPrograms(p)
}

// mdPrograms is each BPF program's share of the BPF column, over all the
// runs of a tracer together.
func (b *bench) mdPrograms(p printer) {
	p("Each BPF program over all runs of its tracer (`kernel.bpf_stats_enabled`): runs per delivered event and ns per run.")
	p("Iterators run inside the tracer's own system calls: their time is in its process CPU, not in the BPF column.")
	p("")
	p("| tracer | program | runs / event | ns / run | ns / event |")
	p("| --- | --- | ---: | ---: | ---: |")
	for _, t := range b.tracers {
		sum, events := map[string]progStat{}, int64(0)
		for _, r := range b.runsOf(t) {
			if r.trace == nil || r.err != nil {
				continue
			}
			events += r.trace.events
			for name, st := range r.trace.programs {
				sum[name] = sum[name].plus(st)
			}
		}
		if events == 0 {
			continue
		}
		for _, name := range progNames(sum) {
			st, label := sum[name], "`"+name+"`"
			if st.iter {
				label += " (iterator)"
			}
			p("| %s | %s | %.2f | %.0f | %.0f |", t, label, float64(st.runs)/float64(events),
				float64(st.ns)/float64(st.runs), float64(st.ns)/float64(events))
		}
	}
	p("")
}

func (b *bench) mdRuns(p printer) {
	p("### Every run")
	p("")
	p("*Other load* is the share of all CPUs used by neither tcpchurn nor the tracer during the run;")
	p("more than a few percent means someone else's work skewed that run. *Skipped* are transitions")
	p("the kernel ran no program for because one would have nested on a CPU, so they reached no ring")
	p("buffer and no loss counter: for bpftrace the `recursion_misses` of its programs, for tcpstated")
	p("its own count (`skipped`: the state program's misses that its nested stand-in did not take).")
	p("")
	p("| pair | tracer | conn/s | vs none | other load | failed connects | events expected | delivered | lost | skipped | tracer CPU s | BPF s | peak RSS (MiB) | note |")
	p("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, r := range b.runs {
		ratio, note := "1", ""
		if r.tracer != "none" {
			ratio = "–"
			if x, ok := b.ratio(r); ok {
				ratio = fmt.Sprintf("%.3f", x)
			}
		}
		if r.err != nil {
			note = "error: " + oneLine(r.err.Error())
		}
		if r.trace == nil {
			p("| %d | %s | %.0f | %s | %.1f%% | %d | – | – | – | – | – | – | – | %s |",
				r.pair, r.tracer, r.churn.Rate, ratio, r.otherPct, r.churn.Failed, note)
			continue
		}
		t := r.trace
		if d := t.churn.deviations(r.churn.Connections); d != "" && r.err == nil {
			note = "differs: " + d
		}
		if n := t.churn[noOwnerKey]; n > 0 {
			note = strings.TrimPrefix(fmt.Sprintf("%s; %d naming no owner", note, n), "; ")
		}
		if n := t.churn[wrongOwnerKey]; n > 0 {
			note = strings.TrimPrefix(fmt.Sprintf("%s; %d with a pid not the socket's owner", note, n), "; ")
		}
		if n := t.churn[inferredKey]; n > 0 {
			note = strings.TrimPrefix(fmt.Sprintf("%s; %d inferred (changes no program ran for)", note, n), "; ")
		}
		if t.note != "" {
			note = strings.TrimPrefix(note+"; "+t.note, "; ")
		}
		p("| %d | %s | %.0f | %s | %.1f%% | %d | %d | %d | %s | %d | %.2f | %.2f | %.1f | %s |",
			r.pair, r.tracer, r.churn.Rate, ratio, r.otherPct, r.churn.Failed, r.expected(), r.delivered(),
			lostCell(t), t.skipped, t.cpuSeconds, float64(t.bpfNs)/1e9, float64(t.peakRSSKiB)/1024, note)
	}
	p("")
}

func (b *bench) mdHold(p printer) {
	h := b.hold
	p("### %d established connections", b.holdSize)
	p("")
	if h.err != nil {
		p("Failed: %s", oneLine(h.err.Error()))
		p("")
	}
	p("`tcpchurn hold` established %d connections (both ends on this host) in %.1f s.", h.connections, h.readySecs)
	p("tcpstated's VmHWM after the settle time: **%.1f MiB** (target <= %d MiB);", float64(h.hwmKiB)/1024, targetHoldRSSMiB)
	p("its peak RSS over its whole run, shutdown included: %.1f MiB; records lost: %s.",
		float64(h.maxRSSKiB)/1024, lostCell(&tracerRun{lost: h.lost, lostKnown: h.lostKnown}))
	if h.baseKiB > 0 && h.hwmKiB > h.baseKiB && h.connections > 0 {
		p("Its RSS once ready, before the hold: %.1f MiB, so about **%.0f bytes per tracked socket** (%d sockets: both ends of each connection).",
			float64(h.baseKiB)/1024, float64(h.hwmKiB-h.baseKiB)*1024/float64(2*h.connections), 2*h.connections)
	}
}

func lostCell(t *tracerRun) string {
	if !t.lostKnown {
		return "unknown"
	}
	return fmt.Sprint(t.lost)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Markers around a generated section of docs/performance.md ("results"
// for make bench, "soak" for make bench-soak); the rest of the file is
// written by hand and kept.
func markers(section string) (begin, end string) {
	return "<!-- bench:" + section + ":begin", "<!-- bench:" + section + ":end -->"
}

// writeDoc puts a section's results between its markers in path, or
// appends them when the file has none.
func writeDoc(path, section, results string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	begin, end := markers(section)
	block := begin + " (generated by `make bench`; edits here are overwritten) -->\n" + results + end + "\n"
	doc := string(old)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	switch {
	case i >= 0 && j > i:
		doc = doc[:i] + block + doc[j+len(end):]
		doc = strings.Replace(doc, block+"\n", block, 1)
	case doc == "":
		doc = "# Performance\n\n" + block
	default:
		doc = strings.TrimRight(doc, "\n") + "\n\n" + block
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}
