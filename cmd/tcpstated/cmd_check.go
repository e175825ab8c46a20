package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/tcpstated/tcpstated/internal/events"
)

// cmdCheck loads every feature the way run does, prints what this kernel
// allows and exits non-zero when the core cannot run.
func cmdCheck(args []string) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	var disabled featuresFlag
	fs.Var(&disabled, "disable-feature", "features not to load, as for run: "+featureList())
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: tcpstated check [flags]\n\nLoad and attach every BPF program as run would, print which features this kernel\nallows and what is lost without the others, then unload. Exits 1 when the core\ncannot run.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	release, _, _, _ := events.KernelVersion()
	fmt.Printf("kernel %s\n", release)
	if err := events.Preflight(); err != nil {
		fmt.Fprintf(os.Stderr, "tcpstated check: %v\n", err)
		return 1
	}
	tr, err := events.Open(events.Config{Disabled: disabled, RingBytes: 1 << 16, MaxTimeWait: 1024})
	if err != nil {
		fmt.Printf("core     refused  %v\n", err)
		fmt.Fprintf(os.Stderr, "tcpstated check: the core cannot run on this kernel: tcpstated would not start\n")
		return 1
	}
	defer tr.Close()
	printFeatures(os.Stdout, tr.Features())
	return 0
}

func printFeatures(out io.Writer, fs []events.FeatureStatus) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "FEATURE\tSTATE\tGIVES / WITHOUT IT")
	for _, f := range fs {
		switch f.State {
		case events.FeatureOn:
			fmt.Fprintf(w, "%s\t%s\t%s\n", f.Name, f.State, f.Gives)
		default:
			fmt.Fprintf(w, "%s\t%s\t%s\n", f.Name, f.State, f.Problem())
			fmt.Fprintf(w, "\t\twithout it: %s\n", f.Loses)
		}
	}
	w.Flush()
}

func featureList() string {
	var names []string
	for _, f := range events.Features() {
		if f != events.FeatureCore {
			names = append(names, string(f))
		}
	}
	return strings.Join(names, ", ")
}
