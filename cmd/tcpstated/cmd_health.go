package main

import (
	"flag"
	"fmt"
	"os"
)

// cmdHealth asks a daemon whether it traces: an exec probe for Kubernetes
// that needs no credentials on the API socket and opens nothing on the
// network.
func cmdHealth(args []string) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	cf := addClientFlags(fs)
	quiet := fs.Bool("q", false, "print nothing; only the exit status")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: tcpstated health [flags]

Asks a running daemon for /healthz and prints its status and warnings. Exits 0
when the daemon answers "ok" or "degraded" (it traces, with what it says it
cannot see), 1 when it does not answer. For liveness and readiness probes.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	api, err := cf.client()
	if err != nil {
		return usageError(fs, "%v", err)
	}
	var h struct {
		Status   string   `json:"status"`
		UptimeS  float64  `json:"uptime_s"`
		Events   uint64   `json:"events"`
		Warnings []string `json:"warnings"`
	}
	if err := api.getJSON("/healthz", nil, &h); err != nil {
		fmt.Fprintf(os.Stderr, "tcpstated health: %v\n", err)
		return 1
	}
	if !*quiet {
		fmt.Printf("%s: up %s, %d events\n", h.Status, formatAge(h.UptimeS), h.Events)
		for _, w := range h.Warnings {
			fmt.Printf("  warning: %s\n", w)
		}
	}
	if h.Status != "ok" && h.Status != "degraded" {
		return 1
	}
	return 0
}
