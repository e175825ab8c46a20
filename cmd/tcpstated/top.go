package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpstated/tcpstated/internal/api"
	"github.com/tcpstated/tcpstated/internal/events"
)

// topSorts are the orders top can show, by key and flag value.
var topSorts = []struct {
	key  byte
	name string
	less func(a, b *topRow) bool
}{
	{'l', "leaking", func(a, b *topRow) bool { return a.leaking > b.leaking }},
	{'t', "timewait", func(a, b *topRow) bool { return a.timeWait > b.timeWait }},
	{'c', "closewait", func(a, b *topRow) bool { return a.closeWait > b.closeWait }},
	{'s', "sockets", func(a, b *topRow) bool { return a.sockets > b.sockets }},
	{'p', "pid", func(a, b *topRow) bool { return a.pid < b.pid }},
}

// topRow is one process as top shows it.
type topRow struct {
	pid                              uint32
	comm                             string
	leaking, leaks                   int
	closeWait, timeWait, established int
	sockets                          int
	cwOldest                         float64 // seconds; 0: none
	twMean                           float64 // seconds, of the TIME_WAITs that ended; 0: none
}

func cmdTop(args []string) int {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	cf := addClientFlags(fs)
	interval := durationFlag(fs, "interval", 2*time.Second, "refresh interval")
	iterations := fs.Int("n", 0, "stop after this many refreshes (0: until q or interrupted)")
	sortBy := fs.String("sort", "leaking", "order: leaking, timewait, closewait, sockets or pid (keys l t c s p)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: tcpstated top [flags]

Processes holding sockets, from a running daemon, CLOSE_WAIT leakers first
(--sort or a key for another order). On a terminal: q quits; l, t, c, s, p
sort by leaking CLOSE_WAIT, TIME_WAIT, CLOSE_WAIT, sockets, pid. It keeps
retrying while the daemon is away.

Columns: LEAKING, CLOSE_WAIT sockets past --close-wait-threshold now; LEAKS,
all reported since the daemon started; CW_OLDEST, the age of its oldest
CLOSE_WAIT; TW_MEAN, the mean time its ended TIME_WAITs lasted. Below, for
root and the API group, the slowest peers: a client's servers (address:port)
and a server's clients (address), by mean connect or handshake time, with
the resets of their connections.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *interval < 100*time.Millisecond {
		return usageError(fs, "--interval %v: want 100ms or more", *interval)
	}
	sortIdx := slices.IndexFunc(topSorts, func(s struct {
		key  byte
		name string
		less func(a, b *topRow) bool
	}) bool {
		return s.name == *sortBy
	})
	if sortIdx < 0 {
		return usageError(fs, "--sort %q: want leaking, timewait, closewait, sockets or pid", *sortBy)
	}
	client, err := cf.client()
	if err != nil {
		return usageError(fs, "%v", err)
	}
	t := &top{addr: cf.addr, api: client, sort: sortIdx, out: os.Stdout}
	if isTerminal() {
		return t.interactive(*interval, *iterations)
	}
	return t.plain(*interval, *iterations)
}

type top struct {
	addr string
	api  *apiClient
	sort int
	out  io.Writer
	topData
}

// topData is one answer of the daemon, or why there is none.
type topData struct {
	rows    []topRow
	unowned int  // live sockets no process is known to own
	own     bool // the daemon showed only this user's processes
	err     error
	at      time.Time
	// The slowest peers, for root and the API group; peersErr says why
	// there are none (an older daemon, connection summaries off).
	peers    []api.Peer
	peersErr string
}

// peerRows is how many of the slowest peers the screen shows.
const peerRows = 5

// fetch asks the daemon; a failure is kept for the screen, not fatal.
func fetch(c *apiClient) (t topData) {
	var procs struct {
		Processes []api.Process `json:"processes"`
		Unowned   int           `json:"unowned_sockets"`
		Own       bool          `json:"only_own_processes"`
	}
	var socks struct {
		Sockets []api.Socket `json:"sockets"`
	}
	t.at = time.Now()
	t.err = c.getJSON("/api/v1/processes", nil, &procs)
	if t.err == nil {
		t.err = c.getJSON("/api/v1/sockets", url.Values{"state": {events.CloseWait.String()}}, &socks)
	}
	if t.err != nil {
		return t
	}
	oldest := map[uint32]float64{}
	for _, s := range socks.Sockets {
		oldest[s.Pid] = max(oldest[s.Pid], s.AgeS)
	}
	t.unowned, t.own = procs.Unowned, procs.Own
	if !t.own {
		var peers struct {
			Peers       []api.Peer `json:"peers"`
			Connections bool       `json:"connections"`
		}
		switch err := c.getJSON("/api/v1/peers", nil, &peers); {
		case err != nil:
			t.peersErr = err.Error()
		case !peers.Connections:
			t.peersErr = "the daemon makes no connection summaries (--state)"
		default:
			t.peers = peers.Peers
		}
	}
	for _, p := range procs.Processes {
		r := topRow{pid: p.Pid, comm: p.Comm, leaking: p.CloseWaitLeaks, leaks: p.LeaksTotal,
			closeWait: p.CloseWait, timeWait: p.TimeWait, established: p.Sockets[events.Established.String()],
			cwOldest: oldest[p.Pid]}
		for _, n := range p.Sockets {
			r.sockets += n
		}
		if tw := p.Time[events.TimeWait.String()]; tw.Count > 0 {
			r.twMean = tw.MeanS
		}
		t.rows = append(t.rows, r)
	}
	return t
}

// render writes one screen of at most width columns and height lines
// (0: no limit).
func (t *top) render(w io.Writer, width, height int) {
	var lines []string
	add := func(s string) { lines = append(lines, s) }
	help := ""
	if height > 0 {
		help = "  q quit, l t c s p sort"
	}
	scope := ""
	if t.own {
		scope = "  (your processes only)"
	}
	add(fmt.Sprintf("tcpstated top  %s  %s  sort: %s%s%s", t.addr, t.at.Format("15:04:05"), topSorts[t.sort].name, scope, help))
	if t.err != nil {
		add("")
		add(fmt.Sprintf("daemon unreachable, retrying: %v", t.err))
		t.write(w, lines, width, height)
		return
	}
	// Processes that hold nothing now (exited, or done) are left out;
	// sockets with no known owner go in the totals.
	var shown []topRow
	total := topRow{sockets: t.unowned}
	for _, r := range t.rows {
		total.sockets += r.sockets
		total.leaking += r.leaking
		total.closeWait += r.closeWait
		total.timeWait += r.timeWait
		total.established += r.established
		if r.pid != 0 && (r.sockets > 0 || r.leaking > 0) {
			shown = append(shown, r)
		}
	}
	less := topSorts[t.sort].less
	slices.SortStableFunc(shown, func(a, b topRow) int {
		switch {
		case less(&a, &b):
			return -1
		case less(&b, &a):
			return 1
		}
		return int(a.pid) - int(b.pid)
	})
	add(fmt.Sprintf("%d processes, %d sockets: %d ESTABLISHED, %d CLOSE_WAIT (%d leaking), %d TIME_WAIT; %d without a known owner",
		len(shown), total.sockets, total.established, total.closeWait, total.leaking, total.timeWait, t.unowned))
	add("")
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PID\tCOMM\tLEAKING\tLEAKS\tCLOSE_WAIT\tCW_OLDEST\tTIME_WAIT\tTW_MEAN\tESTAB\tSOCKETS")
	peerLines := t.peerBlock()
	room := len(shown)
	if height > 0 {
		room = max(0, min(room, height-len(lines)-2-len(peerLines)))
	}
	for _, r := range shown[:room] {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%s\t%d\t%s\t%d\t%d\n", r.pid, orDash(r.comm), r.leaking, r.leaks,
			r.closeWait, ageOrDash(r.cwOldest), r.timeWait, ageOrDash(r.twMean), r.established, r.sockets)
	}
	tw.Flush()
	lines = append(lines, strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")...)
	if room < len(shown) {
		add(fmt.Sprintf("... %d more", len(shown)-room))
	}
	lines = append(lines, peerLines...)
	t.write(w, lines, width, height)
}

// peerBlock is the slowest peers' table: by the mean connect time (as a
// client) or handshake (as a server), whichever is larger.
func (t *top) peerBlock() []string {
	if t.own {
		return nil // other users' peers are not shown to this one
	}
	lines := []string{""}
	if t.peersErr != "" {
		return append(lines, "slowest peers: "+t.peersErr)
	}
	if len(t.peers) == 0 {
		return append(lines, "slowest peers: no connection has ended yet")
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOWEST PEERS\tCONNS\tCONNECT_MEAN\tCONNECT_MAX\tHANDSHAKE_MEAN\tHANDSHAKE_MAX\tLIFE_MEAN\tRESETS")
	for _, p := range t.peers[:min(len(t.peers), peerRows)] {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\n", p.Peer, p.Connections,
			msOrDash(p.Connect.MeanMs, p.Connect.Count), msOrDash(p.Connect.MaxMs, p.Connect.Count),
			msOrDash(p.Handshake.MeanMs, p.Handshake.Count), msOrDash(p.Handshake.MaxMs, p.Handshake.Count),
			msOrDash(p.Life.MeanMs, p.Life.Count), p.Ends["reset_sent"]+p.Ends["reset_received"])
	}
	tw.Flush()
	return append(lines, strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")...)
}

func msOrDash(v float64, n uint64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", v)
}

// write prints lines cut to the terminal's size.
func (t *top) write(w io.Writer, lines []string, width, height int) {
	if height > 0 && len(lines) > height {
		lines = lines[:height]
	}
	var b strings.Builder
	for i, l := range lines {
		if width > 0 && len(l) > width {
			l = l[:width]
		}
		b.WriteString(l)
		if height > 0 {
			b.WriteString("\033[K") // clear the rest of the line
		}
		if i < len(lines)-1 || height == 0 {
			b.WriteString("\r\n")
		}
	}
	io.WriteString(w, b.String())
}

func ageOrDash(s float64) string {
	if s <= 0 {
		return "-"
	}
	return formatAge(s)
}

// plain prints a screen per refresh, for a pipe or a file.
func (t *top) plain(interval time.Duration, n int) int {
	failed := 0
	for i := 0; n == 0 || i < n; i++ {
		if i > 0 {
			time.Sleep(interval)
		}
		t.topData = fetch(t.api)
		if t.err != nil {
			failed++
			fmt.Fprintf(os.Stderr, "tcpstated top: %v (retrying)\n", t.err)
			continue
		}
		var b strings.Builder
		t.render(&b, 0, 0)
		io.WriteString(t.out, strings.ReplaceAll(b.String(), "\r\n", "\n")+"\n")
	}
	if n > 0 && failed == n {
		return 1
	}
	return 0
}

// interactive draws in the terminal's alternate screen (the normal one
// for a fixed number of refreshes, which stay readable after), redraws on
// a resize, and reads keys without echo. The daemon is asked in the
// background, so that q, ^C and a resize are answered while a request
// hangs.
func (t *top) interactive(interval time.Duration, n int) int {
	fd := int(os.Stdin.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	keys := make(chan byte, 8)
	if err == nil {
		raw := *old
		raw.Lflag &^= unix.ICANON | unix.ECHO // keys one by one; ^C still interrupts
		raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err == nil {
			defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
			go readKeys(os.Stdin, keys)
		}
	}
	if n == 0 {
		io.WriteString(t.out, "\033[?1049h") // alternate screen
		defer io.WriteString(t.out, "\033[?1049l")
	}
	io.WriteString(t.out, "\033[?25l") // no cursor
	defer io.WriteString(t.out, "\033[?25h")

	// Every signal that ends top goes through the deferred restores.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGWINCH, os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	answers := make(chan topData)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			d := fetch(t.api)
			select {
			case answers <- d:
			case <-done:
				return
			}
			select {
			case <-time.After(interval):
			case <-done:
				return
			}
		}
	}()
	draw := func() {
		width, height := 0, 0
		if ws, err := unix.IoctlGetWinsize(int(os.Stdout.Fd()), unix.TIOCGWINSZ); err == nil {
			width, height = int(ws.Col), int(ws.Row)
		}
		var b strings.Builder
		b.WriteString("\033[H")
		t.render(&b, width, height)
		b.WriteString("\033[J") // clear below
		io.WriteString(t.out, b.String())
	}
	t.at = time.Now()
	draw()
	for i := 0; n == 0 || i < n; {
		select {
		case d := <-answers:
			t.topData = d
			draw()
			i++
		case k, ok := <-keys:
			if !ok {
				keys = nil // stdin closed: no more keys
				continue
			}
			if k == 'q' || k == 'Q' {
				return 0
			}
			for j, s := range topSorts {
				if s.key == k {
					t.sort = j
					draw()
				}
			}
		case s := <-sigs:
			switch s {
			case syscall.SIGWINCH:
				draw()
			case syscall.SIGTERM:
				return 143
			case syscall.SIGHUP:
				return 129
			case syscall.SIGQUIT:
				return 131
			default:
				return 130
			}
		}
	}
	if n > 0 {
		io.WriteString(t.out, "\r\n")
	}
	return 0
}

func readKeys(r io.Reader, keys chan<- byte) {
	buf := make([]byte, 16)
	for {
		n, err := r.Read(buf)
		for _, k := range buf[:n] {
			keys <- k
		}
		if err != nil {
			close(keys)
			return
		}
	}
}
