package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tcpstated/tcpstated/internal/api"
	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/tracker"
)

// maxRows bounds one /api/v1/sockets answer unless ?limit= says less.
const maxRows = 100000

// maxQueries bounds the socket table copies being built at once: each can
// hold 100000 rows, and any local user may ask.
const maxQueries = 4

// routes serves health and metrics, and the socket table when api is set.
func (d *Daemon) routes(api bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", d.handleHealth)
	mux.HandleFunc("GET /metrics", d.handleMetrics)
	if api {
		mux.HandleFunc("GET /api/v1/sockets", d.limited(d.handleSockets))
		mux.HandleFunc("GET /api/v1/processes", d.limited(d.handleProcesses))
		mux.HandleFunc("GET /api/v1/peers", d.limited(d.handlePeers))
	} else {
		mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "the socket table is not served here: use the API socket on the host, or --listen-api with TLS and authentication"})
		})
	}
	return mux
}

// limited answers 429 while maxQueries table queries are running.
func (d *Daemon) limited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case d.queries <- struct{}{}:
			defer func() { <-d.queries }()
			h(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too many socket table queries at once; try again"})
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func badRequest(w http.ResponseWriter, format string, args ...any) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// Health says whether tracing runs and what it cannot see.
type Health struct {
	Status        string  `json:"status"`
	UptimeS       float64 `json:"uptime_s"`
	Records       uint64  `json:"records"`
	Events        uint64  `json:"events"`
	Lost          uint64  `json:"lost"`
	Skipped       uint64  `json:"skipped"`
	DecodeErrors  uint64  `json:"decode_errors"`
	Sockets       int     `json:"sockets"`
	SocketsMax    int     `json:"sockets_max"`
	TableFull     uint64  `json:"socket_table_full"`
	TimeWaitTable uint64  `json:"timewait_table_full"`
	OldTimeWaits  uint64  `json:"timewait_preexisting_skipped"`
	// Features: what runs; a refused one makes the status "degraded".
	Features []events.FeatureStatus `json:"features"`
	// Snapshot: the network namespaces the start-up snapshot covered.
	Snapshot *SnapshotCoverage `json:"snapshot,omitempty"`
	Warnings []string          `json:"warnings,omitempty"`
}

func (d *Daemon) health() Health {
	st := d.status()
	h := Health{
		Status: "ok", UptimeS: time.Since(d.started).Seconds(),
		Records: st.Records, Events: st.Events, DecodeErrors: st.DecodeErrors,
		Sockets: st.Table.Sockets, SocketsMax: st.Table.SocketsMax, TableFull: st.Table.TableFull,
	}
	if c := st.Kernel; c != nil {
		h.Lost, h.TimeWaitTable, h.OldTimeWaits, h.Skipped = c.Lost, c.TimeWaitFull, c.OldTimeWaitSkipped, c.RecursionMisses
	}
	h.Features = d.tracer.Features()
	refused := false
	for _, f := range h.Features {
		if f.State == events.FeatureRefused {
			refused = true
			h.Warnings = append(h.Warnings, "feature "+string(f.Name)+" refused by the kernel ("+f.Problem()+"); without it: "+f.Loses)
		}
	}
	if d.tracer.Enabled(events.FeatureSnapshot) {
		h.Snapshot = &d.snap
		if d.snap.Missed > 0 {
			refused = true
			h.Warnings = append(h.Warnings, fmt.Sprintf("start-up snapshot missed %d network namespaces (%s): their sockets from before the start appear at their next state change", d.snap.Missed, d.snap.Why))
		}
	}
	for _, sk := range d.fanout.Sinks() {
		if st := sk.Stats(); st.Failing {
			refused = true
			h.Warnings = append(h.Warnings, fmt.Sprintf("sink %s cannot deliver (%s): events queue up and are dropped when its queue is full", sk.Name(), st.LastError))
		}
	}
	if refused || h.Lost > 0 || h.Skipped > 0 || h.TableFull > 0 || h.TimeWaitTable > 0 {
		h.Status = "degraded"
	}
	return h
}

func (d *Daemon) handleHealth(w http.ResponseWriter, r *http.Request) {
	h := d.health()
	if !callerOf(r).all {
		// Sink URLs, table sizes and namespaces are the operators' business.
		writeJSON(w, http.StatusOK, map[string]any{"status": h.Status, "uptime_s": h.UptimeS})
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// parseQuery reads ?state=&pid=&port=&limit=&sort=, rejecting anything else.
func parseQuery(r *http.Request) (tracker.Query, error) {
	q := tracker.Query{Limit: maxRows}
	for key, vals := range r.URL.Query() {
		if len(vals) != 1 {
			return q, fmt.Errorf("%s given %d times", key, len(vals))
		}
		v := vals[0]
		switch key {
		case "state":
			for _, name := range strings.Split(v, ",") {
				st, ok := events.ParseState(strings.TrimSpace(name))
				if !ok {
					return q, fmt.Errorf("state %q: want one or more of %s, comma separated", name, strings.Join(events.StateNames(), ", "))
				}
				q.States = append(q.States, st)
			}
		case "sort":
			switch v {
			case "oldest":
			case "newest":
				q.Newest = true
			default:
				return q, fmt.Errorf("sort %q: want oldest or newest", v)
			}
		case "pid":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				return q, fmt.Errorf("pid %q: want a process id", v)
			}
			q.Pid = uint32(n)
		case "port":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n == 0 {
				return q, fmt.Errorf("port %q: want 1-65535", v)
			}
			q.Port = uint16(n)
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > maxRows {
				return q, fmt.Errorf("limit %q: want 1-%d", v, maxRows)
			}
			q.Limit = n
		default:
			return q, fmt.Errorf("unknown parameter %q (state, pid, port, limit, sort)", key)
		}
	}
	return q, nil
}

func (d *Daemon) handleSockets(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	c := callerOf(r)
	// Descriptors move (accept, fork, close): look again, at most 1/s;
	// other users get the periodic walk's view.
	if c.all {
		if err := d.scanFiles(false); err != nil {
			d.log.Warn().Err(err).Msg("file table walk failed")
		}
		writeJSON(w, http.StatusOK, map[string]any{"sockets": d.sockets(q)})
		return
	}
	// Another user's: only their own processes' sockets, as `ss -p`.
	limit := q.Limit
	q.Limit = maxRows
	own := newOwnedBy(c.uid)
	rows := d.sockets(q)
	out := rows[:0]
	for _, s := range rows {
		if len(out) < limit && own.owns(s.Pid, s.AgeS) {
			out = append(out, s)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"sockets": out, "only_own_processes": true})
}

// sockets is the socket table's rows matching q, as the API shows them.
func (d *Daemon) sockets(q tracker.Query) []api.Socket {
	rows, now := d.trk.Sockets(q)
	return api.Sockets(rows, now, d.clock.Wall)
}

// processes is the tracked processes, as the API shows them.
func (d *Daemon) processes() []api.Process {
	procs, now := d.trk.Processes()
	return api.Processes(procs, now)
}

func (d *Daemon) handleProcesses(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 {
		badRequest(w, "/api/v1/processes takes no parameters")
		return
	}
	c := callerOf(r)
	if c.all {
		if err := d.scanFiles(false); err != nil {
			d.log.Warn().Err(err).Msg("file table walk failed")
		}
		writeJSON(w, http.StatusOK, map[string]any{"processes": d.processes(), "unowned_sockets": d.trk.UnownedSockets()})
		return
	}
	own := newOwnedBy(c.uid)
	procs := d.processes()
	out := procs[:0]
	for _, p := range procs {
		if own.owns(p.Pid, p.TrackedS) {
			out = append(out, p)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"processes": out, "only_own_processes": true})
}

// handlePeers answers with the connection aggregates per peer, slowest
// first. Every process's peers: root and the API group only.
func (d *Daemon) handlePeers(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 {
		badRequest(w, "/api/v1/peers takes no parameters")
		return
	}
	if !callerOf(r).all {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "the peers of every process: root and members of the API group (--api-group) read them"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"peers": api.Peers(d.trk.Peers()), "connections": d.trk.Config().Connections})
}

func (d *Daemon) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if !callerOf(r).all {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "the metrics name every user's processes and peers: root and members of the API group (--api-group) read them"})
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	d.writeMetrics(w)
}
