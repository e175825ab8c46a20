package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tcpstated/tcpstated/internal/api"
)

func cmdSockets(args []string) int {
	fs := flag.NewFlagSet("sockets", flag.ContinueOnError)
	cf := addClientFlags(fs)
	var states statesFlag
	var port portFlag
	var pid pidFlag
	fs.Var(&states, "state", "only sockets in these states, comma separated or repeated (e.g. CLOSE_WAIT,FIN_WAIT2)")
	fs.Var(&port, "port", "only sockets with this local or remote port")
	fs.Var(&pid, "pid", "only sockets owned by this process")
	limit := fs.Int("limit", 0, "at most this many sockets (0: the daemon's limit, 100000)")
	order := fs.String("sort", "oldest", "oldest or newest first")
	jsonOut := fs.Bool("json", false, "print the API's JSON instead of a table")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: tcpstated sockets [flags]\n\nThe live socket table of a running daemon, oldest first (--sort newest for the\nnewest), like ss -tanp with ages.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *limit < 0 {
		return usageError(fs, "--limit %d: want 0 or more", *limit)
	}
	if *order != "oldest" && *order != "newest" {
		return usageError(fs, "--sort %q: want oldest or newest", *order)
	}
	q := url.Values{}
	if len(states) > 0 {
		q.Set("state", states.String())
	}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	if *order != "oldest" {
		q.Set("sort", *order)
	}
	if port != 0 {
		q.Set("port", port.String())
	}
	if pid != 0 {
		q.Set("pid", pid.String())
	}
	var resp struct {
		Sockets []api.Socket `json:"sockets"`
		Own     bool         `json:"only_own_processes,omitempty"`
	}
	api, err := cf.client()
	if err != nil {
		return usageError(fs, "%v", err)
	}
	if err := api.getJSON("/api/v1/sockets", q, &resp); err != nil {
		fmt.Fprintf(os.Stderr, "tcpstated sockets: %v\n", err)
		return 1
	}
	if *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(resp)
		return 0
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tLOCAL\tPEER\tAGE\tPID\tCOMM\tFD\tCOOKIE")
	for _, s := range resp.Sockets {
		fd := "-"
		if s.FD != nil {
			fd = strconv.Itoa(int(*s.FD))
		}
		age := formatAge(s.AgeS)
		if s.AgeLowerBound {
			age = ">" + age
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", s.State,
			endpoint(s.Saddr, s.Sport), endpoint(s.Daddr, s.Dport), age, owner(s.Pid), orDash(s.Comm), fd, s.Cookie)
	}
	tw.Flush()
	if resp.Own {
		fmt.Fprintln(os.Stderr, "tcpstated sockets: only your own processes' sockets (root and the daemon's --api-group see all)")
	}
	return 0
}

// owner is a pid, or - where no process is known to own the socket.
func owner(pid uint32) string {
	if pid == 0 {
		return "-"
	}
	return strconv.FormatUint(uint64(pid), 10)
}

// orDash shows a name any process may set, or - for none.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return printable(s)
}

func endpoint(addr string, port uint16) string {
	if addr == "" {
		return "-"
	}
	if strings.Contains(addr, ":") {
		return "[" + addr + "]:" + strconv.Itoa(int(port))
	}
	return addr + ":" + strconv.Itoa(int(port))
}

func formatAge(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func isTerminal() bool {
	fi, err := os.Stdout.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
