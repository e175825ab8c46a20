// Command tcpchurn generates loopback TCP load for tcpstated's benchmarks:
// "churn" opens and closes connections as fast as it can (client closes
// first, so each connection makes exactly ten kernel state changes),
// "hold" keeps many connections established until it is stopped, and
// "pingpong" exchanges bytes over a few established ones (timers, no
// state changes).
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

const usage = `usage:
  tcpchurn churn [flags]   open and close loopback connections for a while
  tcpchurn hold [flags]    hold established loopback connections until SIGINT
  tcpchurn pingpong [flags] one-byte round trips over established loopback connections
run "tcpchurn COMMAND -h" for its flags`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "churn":
		err = runChurn(os.Args[2:])
	case "hold":
		err = runHold(os.Args[2:])
	case "pingpong":
		err = runPingPong(os.Args[2:])
	case holdWorkerCommand:
		err = runHoldWorker(os.Args[2:])
	case serverWorkerCommand:
		err = runServerWorker(os.Args[2:])
	case clientWorkerCommand:
		err = runClientWorker(os.Args[2:])
	case "-h", "-help", "--help", "help":
		fmt.Println(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "tcpchurn: unknown command %q\n%s\n", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcpchurn:", err)
		os.Exit(1)
	}
}

// printJSON writes one JSON line to stdout: the machine-readable contract.
func printJSON(v any) error {
	return json.NewEncoder(os.Stdout).Encode(v)
}
