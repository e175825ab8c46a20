package metrics

import (
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Render writes s in the Prometheus text format (0.0.4). Each family is
// written once, with # HELP and # TYPE, its samples together. Output is
// deterministic for a given snapshot: comms are sorted by label value.
func Render(w io.Writer, s *Snapshot) error {
	_, err := w.Write(Append(make([]byte, 0, 64<<10), s))
	return err
}

// Append is Render into a byte slice.
func Append(b []byte, s *Snapshot) []byte {
	e := &enc{b: b}

	e.family("tcpstated_build_info", "gauge", "Always 1; the labels identify the binary and the kernel it runs on.")
	e.gauge("tcpstated_build_info", 1, "version", s.Build.Version, "commit", s.Build.Commit,
		"goversion", s.Build.GoVersion, "kernel", s.Build.Kernel)
	if !s.StartTime.IsZero() {
		e.family("tcpstated_start_time_seconds", "gauge", "When the daemon started, in seconds since the epoch.")
		e.float("tcpstated_start_time_seconds", float64(s.StartTime.UnixMilli())/1e3)
	}
	e.family("tcpstated_feature_enabled", "gauge", "1 if the feature runs, 0 if the kernel refused it or --disable-feature turned it off (tcpstated check, /healthz and the start-up log say why and what is missing).")
	for _, f := range s.Features {
		e.gauge("tcpstated_feature_enabled", b2i(f.On), "feature", f.Name)
	}

	if n := s.NetnsSnapshot; n != nil {
		e.family("tcpstated_snapshot_netns", "gauge", "Network namespaces the start-up snapshot walked, and those it missed (result=\"missed\": not entered without CAP_SYS_ADMIN, or past the limit): sockets there from before the start appear at their next state change.")
		e.gauge("tcpstated_snapshot_netns", int64(n.Walked), "result", "walked")
		e.gauge("tcpstated_snapshot_netns", int64(n.Missed), "result", "missed")
	}

	// Pipeline: kernel -> ring buffer -> daemon -> sinks.
	e.counter1("tcpstated_ringbuf_records_total", "Records the daemon read from the ring buffer.", s.RecordsRead)
	if k := s.Kernel; k != nil {
		e.counter1("tcpstated_ringbuf_submitted_total", "Records the BPF programs submitted to the ring buffer.", k.Records)
		e.counter1("tcpstated_ringbuf_lost_total", "Records lost because the ring buffer was full (raise --ring-size).", k.Lost)
		if len(k.LostPerCPU) > 0 {
			e.family("tcpstated_ringbuf_lost_per_cpu_total", "counter", "Records lost because the ring buffer was full, by the CPU that lost them.")
			for cpu, n := range k.LostPerCPU {
				e.counter("tcpstated_ringbuf_lost_per_cpu_total", n, "cpu", strconv.Itoa(cpu))
			}
		}
	}
	e.counter1("tcpstated_decode_errors_total", "Ring-buffer records that could not be decoded.", s.DecodeErrors)
	e.counter1("tcpstated_events_total", "Events written to the sinks (after filters).", s.EventsWritten)

	// Kernel tables.
	if k := s.Kernel; k != nil {
		e.counter1("tcpstated_kernel_synrecv_held_full_total", "Accepted children whose LISTEN -> SYN_RECV could not be held until their ports were set (held_more full): that transition was lost.", k.HeldFull)
		e.counter1("tcpstated_timewait_table_full_total", "Timewait sockets not followed because the kernel timewait table was full (raise --max-timewait): their TIME_WAIT exit is not seen.", k.TimeWaitFull)
		e.counter1("tcpstated_timewait_watch_full_total", "FIN_WAIT2 -> TIME_WAIT switches seen late because the kernel watch list was full.", k.WatchFull)
		e.counter1("tcpstated_timewait_preexisting_skipped_total", "Timewait sockets that existed before tracing and were not followed: they may use half of --max-timewait, the rest is kept for new ones.", k.OldTimeWaitSkipped)
		e.counter1("tcpstated_kernel_recursion_misses_total", "State changes lost because the kernel ran neither the state program (already running on that CPU: the change came in an interrupt that interrupted it) nor its nested stand-in.", k.RecursionMisses)
		e.counter1("tcpstated_kernel_nested_recovered_total", "State changes the nested stand-in program took because the kernel skipped the state program (not lost).", k.NestedRecovered)
		e.counter1("tcpstated_kernel_timer_recursion_misses_total", "Timer tracepoints the kernel skipped the timer programs for; one that was a timewait socket's hides its TIME_WAIT entry or exit.", k.TimerRecursionMisses)
		e.counter1("tcpstated_filtered_total", "Transitions dropped in the kernel by --pid, --port, --state or --family.", k.Filtered)
	}

	// User-space tables.
	t := &s.Table
	e.gauge1("tcpstated_socket_table_entries", "Sockets in the live socket table.", int64(t.Entries))
	e.gauge1("tcpstated_socket_table_capacity", "Size of the live socket table (--max-sockets).", int64(t.Capacity))
	e.counter1("tcpstated_socket_table_full_total", "Sockets not tracked because the live socket table was full.", t.Full)
	e.counter1("tcpstated_processes_evicted_total", "Idle processes dropped from per-process accounting (--max-processes).", t.ProcessesEvicted)
	e.counter1("tcpstated_timewait_ends_untracked_total", "TIME_WAIT ends of sockets that were not in the socket table.", t.UnknownTimeWaitEnds)
	e.counter1("tcpstated_transitions_inferred_total", "State changes no BPF program ran for, found in the kernel's socket table (asked about FIN_WAIT sockets) or from the next change's old state (streamed with source \"inferred\").", t.Inferred)
	e.counter1("tcpstated_duplicates_dropped_total", "State changes the kernel side reported a second time (the nested stand-in after an interrupt); dropped, not streamed.", t.Duplicates)
	e.counter1("tcpstated_accept_unnamed_total", "Accepted connections on a port several processes listen on (SO_REUSEPORT) whose listener the kernel side did not name in time: streamed with no owner until their close or the file table names one.", t.AcceptUnnamed)
	e.counter1("tcpstated_sock_diag_errors_total", "Failed questions to the kernel's socket table (sock_diag); those FIN_WAIT sockets were reported stuck unchecked.", t.SettleErrors)

	comms := mergeComms(s.Comms)
	e.gauge1("tcpstated_comm_labels", "Distinct comm label values in the per-comm metrics now.", int64(len(comms)))
	if t.CommLimit > 0 {
		e.gauge1("tcpstated_comm_label_limit", "Distinct comm values kept (--max-comms); events of further ones count under comm=\"other\".", int64(t.CommLimit))
	}
	e.counter1("tcpstated_comm_label_overflow_total", "Events counted under comm=\"other\" because --max-comms distinct comm values were already kept.", t.CommOverflow)

	// TCP.
	e.family("tcpstated_transitions_total", "counter", "TCP state changes, by old and new state.")
	for _, tr := range s.Transitions {
		if tr.Count > 0 {
			e.counter("tcpstated_transitions_total", tr.Count, "old", tr.Old, "new", tr.New)
		}
	}
	e.family("tcpstated_comm_transitions_total", "counter", "TCP state changes, by the command name of the socket's owner.")
	for i := range comms {
		e.counter("tcpstated_comm_transitions_total", comms[i].Transitions, "comm", comms[i].Name)
	}
	e.family("tcpstated_sockets", "gauge", "Live sockets by state and owner's command name (states with none are left out).")
	for i := range comms {
		for _, sc := range comms[i].Sockets {
			if sc.N > 0 {
				e.gauge("tcpstated_sockets", int64(sc.N), "state", sc.State, "comm", comms[i].Name)
			}
		}
	}
	e.family("tcpstated_close_wait_leaks_total", "counter", "CLOSE_WAIT sockets that stayed longer than --close-wait-threshold (the application did not close them), by owner's command name.")
	for i := range comms {
		e.counter("tcpstated_close_wait_leaks_total", comms[i].LeaksTotal, "comm", comms[i].Name)
	}
	e.family("tcpstated_close_wait_leaking", "gauge", "CLOSE_WAIT sockets older than --close-wait-threshold now, by owner's command name.")
	for i := range comms {
		e.gauge("tcpstated_close_wait_leaking", int64(comms[i].Leaking), "comm", comms[i].Name)
	}
	e.family("tcpstated_state_duration_seconds", "histogram", "Time sockets spent in a TCP state before leaving it, by state and owner's command name.")
	les := make([]string, len(s.Bounds))
	for i, ub := range s.Bounds {
		les[i] = string(appendFloat(nil, ub))
	}
	for i := range comms {
		for j := range comms[i].Time {
			st := &comms[i].Time[j]
			e.histogram("tcpstated_state_duration_seconds", les, st, "state", st.State, "comm", comms[i].Name)
		}
	}

	// Connections and resets.
	if s.Connections {
		names, cs := make([]string, len(comms)), make([]*Conn, len(comms))
		for i := range comms {
			names[i], cs[i] = comms[i].Name, &comms[i].Conn
		}
		e.conns("", "comm", "owner's command name", les, names, cs)
		peers := mergePeers(s.Peers)
		names, cs = make([]string, len(peers)), make([]*Conn, len(peers))
		for i := range peers {
			names[i], cs[i] = peers[i].Name, &peers[i].Conn
		}
		e.conns("peer_", "peer", "peer (a client's server address:port, a server's client address)", les, names, cs)
		e.gauge1("tcpstated_peer_label_limit", "Distinct peers kept for the peer_ families (--max-peers); connections with further ones count under peer=\"other\".", int64(t.PeerLimit))
		e.counter1("tcpstated_peer_label_overflow_total", "Connections counted under peer=\"other\" because --max-peers distinct peers were already kept.", t.PeerOverflow)
	}
	if s.Resets.On {
		e.family("tcpstated_resets_total", "counter", "RSTs sockets sent and received (the reset events), by direction.")
		e.counter("tcpstated_resets_total", s.Resets.Sent, "direction", "sent")
		e.counter("tcpstated_resets_total", s.Resets.Received, "direction", "received")
	}

	// Sinks.
	sinks := sinkLabels(s.Sinks)
	for _, m := range sinkMetrics {
		e.family(m.name, m.typ, m.help)
		for i := range s.Sinks {
			v := m.value(&s.Sinks[i])
			if m.typ == "gauge" {
				e.gauge(m.name, int64(v), "sink", sinks[i])
			} else {
				e.counter(m.name, v, "sink", sinks[i])
			}
		}
	}
	return e.b
}

type enc struct{ b []byte }

// family writes # HELP and # TYPE.
func (e *enc) family(name, typ, help string) {
	e.b = append(e.b, "# HELP "...)
	e.b = append(e.b, name...)
	e.b = append(e.b, ' ')
	e.b = appendHelp(e.b, help)
	e.b = append(e.b, "\n# TYPE "...)
	e.b = append(e.b, name...)
	e.b = append(e.b, ' ')
	e.b = append(e.b, typ...)
	e.b = append(e.b, '\n')
}

// series writes the name and labels of a sample, up to the value.
func (e *enc) series(name string, kv []string) {
	e.b = append(e.b, name...)
	if len(kv) > 0 {
		e.b = append(e.b, '{')
		for i := 0; i+1 < len(kv); i += 2 {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.b = append(e.b, kv[i]...)
			e.b = append(e.b, `="`...)
			e.b = AppendLabelValue(e.b, kv[i+1])
			e.b = append(e.b, '"')
		}
		e.b = append(e.b, '}')
	}
	e.b = append(e.b, ' ')
}

func (e *enc) counter(name string, v uint64, kv ...string) {
	e.series(name, kv)
	e.b = strconv.AppendUint(e.b, v, 10)
	e.b = append(e.b, '\n')
}

func (e *enc) gauge(name string, v int64, kv ...string) {
	e.series(name, kv)
	e.b = strconv.AppendInt(e.b, v, 10)
	e.b = append(e.b, '\n')
}

func (e *enc) float(name string, v float64, kv ...string) {
	e.series(name, kv)
	e.b = appendFloat(e.b, v)
	e.b = append(e.b, '\n')
}

// counter1 and gauge1 write a family of one unlabelled sample.
func (e *enc) counter1(name, help string, v uint64) {
	e.family(name, "counter", help)
	e.counter(name, v)
}

func (e *enc) gauge1(name, help string, v int64) {
	e.family(name, "gauge", help)
	e.gauge(name, v)
}

// histogram writes _bucket (cumulative, ending with +Inf), _sum and
// _count for one state of one comm; nothing if it counted nothing.
// les are the bucket bounds, formatted.
func (e *enc) histogram(name string, les []string, st *StateTime, kv ...string) {
	var total uint64
	for _, n := range st.Buckets {
		total += n
	}
	if total == 0 {
		return
	}
	bucket := name + "_bucket"
	withLe := append(slices.Clip(kv), "le", "")
	var cum uint64
	for i, le := range les {
		if i < len(st.Buckets) {
			cum += st.Buckets[i]
		}
		withLe[len(withLe)-1] = le
		e.counter(bucket, cum, withLe...)
	}
	withLe[len(withLe)-1] = "+Inf"
	e.counter(bucket, total, withLe...)
	e.float(name+"_sum", st.Sum, kv...)
	e.counter(name+"_count", total, kv...)
}

// connFamilies are the connection summaries' families, each written once
// per comm and once per peer (with the peer_ prefix).
var connFamilies = []struct {
	name, help string
	dist       func(*Conn) *StateTime
}{
	{"connect_duration_seconds", "A client's connect latency: SYN_SENT -> ESTABLISHED, connect() to the SYN-ACK", func(c *Conn) *StateTime { return &c.Connect }},
	{"handshake_duration_seconds", "A server's handshake: SYN_RECV -> ESTABLISHED, its SYN-ACK to the client's ACK", func(c *Conn) *StateTime { return &c.Handshake }},
	{"connection_duration_seconds", "Connection lifetime, from its first state to its close or TIME_WAIT (connections found already open left out)", func(c *Conn) *StateTime { return &c.Life }},
}

// conns writes the connection families labelled by label (comm or peer).
func (e *enc) conns(prefix, label, by string, les []string, names []string, cs []*Conn) {
	for _, f := range connFamilies {
		e.family("tcpstated_"+prefix+f.name, "histogram", f.help+", by "+by+".")
		for i, c := range cs {
			e.histogram("tcpstated_"+prefix+f.name, les, f.dist(c), label, names[i])
		}
	}
	e.family("tcpstated_"+prefix+"connections_total", "counter", "Connections that ended, by how (the connection event's end) and "+by+".")
	for i, c := range cs {
		for _, end := range c.Ends {
			e.counter("tcpstated_"+prefix+"connections_total", end.N, label, names[i], "end", end.End)
		}
	}
}

// AppendLabelValue appends v escaped for the inside of a quoted label
// value: backslash, double quote and line feed are escaped; bytes that are
// not UTF-8 become U+FFFD, as in the JSON event stream (Prometheus rejects
// a scrape with an invalid label value). Other characters, control
// characters included, are written as they are, which the format allows.
func AppendLabelValue(b []byte, v string) []byte {
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			switch c {
			case '\\':
				b = append(b, `\\`...)
			case '"':
				b = append(b, `\"`...)
			case '\n':
				b = append(b, `\n`...)
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, v[i:i+size]...)
		}
		i += size
	}
	return b
}

// LabelValue is the label value v is shown as, unescaped: v with every
// byte that is not UTF-8 replaced by U+FFFD. Values that differ only in
// such bytes are one series.
func LabelValue(v string) string {
	if utf8.ValidString(v) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(v[i : i+size])
		}
		i += size
	}
	return b.String()
}

// appendHelp escapes a HELP text: backslash and line feed.
func appendHelp(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			b = append(b, `\\`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, s[i])
		}
	}
	return b
}

// appendFloat writes v as Prometheus reads it, without an exponent in the
// usual range, so that le values and sums stay readable and identical
// from scrape to scrape.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	if a := math.Abs(v); a == 0 || a >= 1e-6 && a < 1e15 {
		return strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func b2i(v bool) int64 {
	if v {
		return 1
	}
	return 0
}

// mergeComms returns the comms by label value, sorted, merging those
// whose names show as the same label value (invalid UTF-8).
func mergeComms(in []Comm) []Comm {
	out := make([]Comm, 0, len(in))
	idx := make(map[string]int, len(in))
	for i := range in {
		c := &in[i]
		name := LabelValue(c.Name)
		j, ok := idx[name]
		if !ok {
			idx[name] = len(out)
			out = append(out, Comm{
				Name: name, Transitions: c.Transitions, LeaksTotal: c.LeaksTotal, Leaking: c.Leaking,
				Sockets: mergeCounts(nil, c.Sockets), Time: mergeTimes(nil, c.Time),
				Conn: mergeConn(Conn{}, &c.Conn),
			})
			continue
		}
		o := &out[j]
		o.Transitions += c.Transitions
		o.LeaksTotal += c.LeaksTotal
		o.Leaking += c.Leaking
		o.Sockets = mergeCounts(o.Sockets, c.Sockets)
		o.Time = mergeTimes(o.Time, c.Time)
		o.Conn = mergeConn(o.Conn, &c.Conn)
	}
	slices.SortFunc(out, func(a, b Comm) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// mergePeers returns the peers by label value, sorted, merged as comms are.
func mergePeers(in []Peer) []Peer {
	out := make([]Peer, 0, len(in))
	idx := make(map[string]int, len(in))
	for i := range in {
		name := LabelValue(in[i].Name)
		j, ok := idx[name]
		if !ok {
			j = len(out)
			idx[name] = j
			out = append(out, Peer{Name: name})
		}
		out[j].Conn = mergeConn(out[j].Conn, &in[i].Conn)
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// mergeConn adds add into dst; it never aliases add's slices.
func mergeConn(dst Conn, add *Conn) Conn {
	for _, d := range []struct{ to, from *StateTime }{{&dst.Connect, &add.Connect}, {&dst.Handshake, &add.Handshake}, {&dst.Life, &add.Life}} {
		if m := mergeTimes([]StateTime{*d.to}, []StateTime{*d.from}); len(m) > 0 {
			*d.to = m[0]
		}
	}
	for _, end := range add.Ends {
		i := slices.IndexFunc(dst.Ends, func(d EndCount) bool { return d.End == end.End })
		if i < 0 {
			dst.Ends = append(dst.Ends, end)
		} else {
			dst.Ends[i].N += end.N
		}
	}
	return dst
}

// mergeCounts adds add into dst by state, keeping dst's order.
func mergeCounts(dst, add []StateCount) []StateCount {
	for _, sc := range add {
		i := slices.IndexFunc(dst, func(d StateCount) bool { return d.State == sc.State })
		if i < 0 {
			dst = append(dst, sc)
		} else {
			dst[i].N += sc.N
		}
	}
	return dst
}

// mergeTimes adds add into dst by state; it never aliases add's buckets.
func mergeTimes(dst, add []StateTime) []StateTime {
	for _, st := range add {
		i := slices.IndexFunc(dst, func(d StateTime) bool { return d.State == st.State })
		if i < 0 {
			dst = append(dst, StateTime{State: st.State, Sum: st.Sum, Buckets: slices.Clone(st.Buckets)})
			continue
		}
		d := &dst[i]
		d.Sum += st.Sum
		for len(d.Buckets) < len(st.Buckets) {
			d.Buckets = append(d.Buckets, 0)
		}
		for k, n := range st.Buckets {
			d.Buckets[k] += n
		}
	}
	return dst
}

// sinkLabels returns the sink label values: the URL, with " #2", " #3"...
// appended to repeats so that two sinks never share a series.
func sinkLabels(sinks []Sink) []string {
	out := make([]string, len(sinks))
	seen := make(map[string]int, len(sinks))
	for i, sk := range sinks {
		name := LabelValue(sk.Name)
		seen[name]++
		if n := seen[name]; n > 1 {
			name += " #" + strconv.Itoa(n)
		}
		out[i] = name
	}
	return out
}

// sinkMetrics are the families with one sample per sink, in the order
// they are written.
var sinkMetrics = []struct {
	name, typ, help string
	value           func(*Sink) uint64
}{
	{"tcpstated_sink_queue_length", "gauge", "Events waiting in the sink's queue.",
		func(s *Sink) uint64 { return uint64(s.Queued) }},
	{"tcpstated_sink_queue_capacity", "gauge", "Size of the sink's queue (--queue-len).",
		func(s *Sink) uint64 { return uint64(s.Capacity) }},
	{"tcpstated_sink_written_total", "counter", "Events the sink delivered.",
		func(s *Sink) uint64 { return s.Written }},
	{"tcpstated_sink_dropped_total", "counter", "Events the sink dropped: queue full, sink closed, or undeliverable at shutdown.",
		func(s *Sink) uint64 { return s.Dropped }},
	{"tcpstated_sink_errors_total", "counter", "Failed opens, dials and writes of the sink.",
		func(s *Sink) uint64 { return s.Errors }},
	{"tcpstated_sink_reconnects_total", "counter", "Successful reconnections of the sink after a loss.",
		func(s *Sink) uint64 { return s.Reconnects }},
	{"tcpstated_sink_truncated_total", "counter", "Syslog messages cut to fit the transport's size limit.",
		func(s *Sink) uint64 { return s.Truncated }},
	{"tcpstated_sink_connected", "gauge", "1 if the sink's destination is open or connected, 0 if not.",
		func(s *Sink) uint64 { return uint64(b2i(s.Connected)) }},
}
