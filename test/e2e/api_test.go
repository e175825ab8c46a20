package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// APISocket is one row of /api/v1/sockets.
type APISocket struct {
	Cookie        uint64  `json:"cookie"`
	Pid           int     `json:"pid"`
	Comm          string  `json:"comm"`
	FD            *int    `json:"fd"`
	Owner         string  `json:"owner"`
	State         string  `json:"state"`
	Since         string  `json:"since"`
	AgeS          float64 `json:"age_s"`
	AgeLowerBound bool    `json:"age_is_lower_bound"`
	Family        string  `json:"family"`
	Saddr         string  `json:"saddr"`
	Sport         int     `json:"sport"`
	Daddr         string  `json:"daddr"`
	Dport         int     `json:"dport"`
	Netns         uint64  `json:"netns"`
	CloseWaitLeak bool    `json:"close_wait_leak"`
}

// OnlySockets keeps the rows of sockets in this host's namespace.
func (h *Host) OnlySockets(socks []APISocket) []APISocket {
	var out []APISocket
	for _, s := range socks {
		if s.Netns == h.Netns {
			out = append(out, s)
		}
	}
	return out
}

// APIProcess is one row of /api/v1/processes.
type APIProcess struct {
	Pid            int            `json:"pid"`
	Comm           string         `json:"comm"`
	Sockets        map[string]int `json:"sockets"`
	CloseWaitLeaks int            `json:"close_wait_leaking"`
	TimeWait       int            `json:"time_wait"`
	Time           map[string]struct {
		Count uint64  `json:"count"`
		MaxS  float64 `json:"max_s"`
	} `json:"time_in_state"`
}

func (d *Daemon) get(path string, q url.Values, v any) {
	d.t.Helper()
	u := url.URL{Path: path, RawQuery: q.Encode()}
	resp, err := d.APIGet(u.String())
	if err != nil {
		d.t.Fatalf("GET %s: %v", u.String(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		d.t.Fatalf("GET %s: %s", u.String(), resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		d.t.Fatalf("GET %s: %v", u.String(), err)
	}
}

// Sockets asks the API for the socket table.
func (d *Daemon) Sockets(state string, port int) []APISocket {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if port != 0 {
		q.Set("port", fmt.Sprint(port))
	}
	var r struct{ Sockets []APISocket }
	d.get("/api/v1/sockets", q, &r)
	return r.Sockets
}

// Processes asks the API for per-process accounting.
func (d *Daemon) Processes() []APIProcess {
	var r struct{ Processes []APIProcess }
	d.get("/api/v1/processes", nil, &r)
	return r.Processes
}

// ssCount counts, inside the host's namespace, the sockets in state with
// port at either end.
func (h *Host) ssCount(t *testing.T, state string, port int) int {
	t.Helper()
	return len(h.ssRows(t, state, fmt.Sprintf("( sport = :%d or dport = :%d )", port, port)))
}

// ssRows lists the sockets in state matching filter, one ss line each:
// Recv-Q, Send-Q, local and peer address.
func ssRows(t *testing.T, state, filter string) [][]string {
	t.Helper()
	return (&Host{}).ssRows(t, state, filter)
}

func (h *Host) ssRows(t *testing.T, state, filter string) [][]string {
	t.Helper()
	out, err := h.Command("ss", "-Htn", "state", state, filter).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows = append(rows, f)
		}
	}
	return rows
}

// ssTimeWaitFrom counts the TIME_WAIT sockets towards port whose local
// port is one of from.
func ssTimeWaitFrom(t *testing.T, port int, from map[int]bool) int {
	t.Helper()
	n := 0
	for _, f := range ssRows(t, "time-wait", fmt.Sprintf("( dport = :%d )", port)) {
		if len(f) < 4 {
			continue
		}
		local := f[len(f)-2]
		if p, err := strconv.Atoi(local[strings.LastIndexByte(local, ':')+1:]); err == nil && from[p] {
			n++
		}
	}
	return n
}

// eventually retries cond for up to timeout.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAPIRejectsBadQueries(t *testing.T) {
	d := StartDaemon(t)
	for _, q := range []string{"state=NOPE", "pid=-1", "pid=abc", "port=70000", "port=0", "limit=0", "evil=1", "state=LISTEN&state=CLOSE"} {
		resp, err := d.APIGet("/api/v1/sockets?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("?%s: %s, want 400", q, resp.Status)
		}
	}
	for _, path := range []string{"/api/v1/nothing", "/../etc/passwd"} {
		resp, err := d.APIGet(path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %s, want 404", path, resp.Status)
		}
	}
	resp, err := socketClient(d.Socket).Post("http://tcpstated/api/v1/sockets", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s, want 405", resp.Status)
	}
	var h struct{ Status string }
	d.get("/healthz", nil, &h)
	if h.Status != "ok" {
		t.Errorf("healthz status %q", h.Status)
	}
}
