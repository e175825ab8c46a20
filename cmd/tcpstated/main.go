// Command tcpstated traces every TCP state change with eBPF and tells,
// per process, where connections spend their time.
package main

import (
	"fmt"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

const usage = `tcpstated traces every TCP state change in the kernel and names the process
that owns each socket: time in TIME_WAIT and CLOSE_WAIT per process, CLOSE_WAIT
leaks, TIME_WAIT storms, and a JSON event stream for log pipelines.

Usage:
  tcpstated [run] [flags]     trace and stream events (needs root or CAP_BPF+CAP_PERFMON)
  tcpstated sockets [flags]   one-shot socket table from a running daemon, like ss -tanp
  tcpstated top [flags]       live per-process view from a running daemon
  tcpstated health [flags]    a running daemon's status (exit 0 when it traces), for probes
  tcpstated check [flags]     which features this kernel allows (loads each one, then exits)
  tcpstated version           version and commit (also --version)

Run 'tcpstated <command> --help' for the flags of a command.
`

func run(args []string) int {
	cmd := "run"
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		fmt.Println(versionString())
		return 0
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Print(usage)
		fmt.Println()
		return cmdRun([]string{"--help"})
	}
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return cmdRun(args)
	case "sockets":
		return cmdSockets(args)
	case "top":
		return cmdTop(args)
	case "check":
		return cmdCheck(args)
	case "health":
		return cmdHealth(args)
	case "version":
		fmt.Println(versionString())
		return 0
	case "help":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "tcpstated: unknown command %q\n\n%s", cmd, usage)
	return 2
}
