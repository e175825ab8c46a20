package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tcpstated/tcpstated/internal/events"
)

// parseFlags parses a command's flags. --help prints the usage on stdout
// (pagers and grep see it); a wrong flag or a stray argument is one line
// on stderr and a pointer to --help, not the whole usage. done says the
// command should return code now.
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(os.Stdout)
		fs.Usage()
		return 0, true
	case err != nil:
		return usageError(fs, "%v", err), true
	case fs.NArg() > 0:
		return usageError(fs, "unexpected argument %q", fs.Arg(0)), true
	}
	fs.SetOutput(os.Stderr)
	return 0, false
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// statesFlag takes state names, repeated or comma separated.
type statesFlag []events.State

func (s *statesFlag) String() string {
	names := make([]string, len(*s))
	for i, st := range *s {
		names[i] = st.String()
	}
	return strings.Join(names, ",")
}

func (s *statesFlag) Set(v string) error {
	for _, name := range strings.Split(v, ",") {
		st, ok := events.ParseState(strings.TrimSpace(name))
		if !ok {
			return fmt.Errorf("unknown TCP state %q (one of %s)", name, strings.Join(events.StateNames(), ", "))
		}
		*s = append(*s, st)
	}
	return nil
}

// familyFlag takes ipv4/ipv6 (or 4/6, inet/inet6).
type familyFlag events.Family

func (f *familyFlag) String() string {
	if *f == 0 {
		return ""
	}
	return events.Family(*f).String()
}

func (f *familyFlag) Set(v string) error {
	switch strings.ToLower(v) {
	case "ipv4", "4", "inet":
		*f = familyFlag(events.IPv4)
	case "ipv6", "6", "inet6":
		*f = familyFlag(events.IPv6)
	default:
		return fmt.Errorf("want ipv4 or ipv6")
	}
	return nil
}

// portFlag is a TCP port, 1-65535.
type portFlag uint16

func (p *portFlag) String() string {
	if *p == 0 {
		return ""
	}
	return strconv.Itoa(int(*p))
}

func (p *portFlag) Set(v string) error {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("want a port from 1 to 65535")
	}
	*p = portFlag(n)
	return nil
}

// pidFlag is a process id.
type pidFlag uint32

func (p *pidFlag) String() string {
	if *p == 0 {
		return ""
	}
	return strconv.Itoa(int(*p))
}

func (p *pidFlag) Set(v string) error {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n == 0 || n > 1<<22 {
		return fmt.Errorf("want a process id")
	}
	*p = pidFlag(n)
	return nil
}

// sizeFlag is a byte size with an optional K, M or G suffix.
type sizeFlag int

// String shows a size as people write it: 8M, not 8388608.
func (s *sizeFlag) String() string {
	n := int(*s)
	for _, u := range []struct {
		mult int
		unit string
	}{{1 << 30, "G"}, {1 << 20, "M"}, {1 << 10, "K"}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.Itoa(n/u.mult) + u.unit
		}
	}
	return strconv.Itoa(n)
}

func (s *sizeFlag) Set(v string) error {
	mult := 1
	t := strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(v, "iB"), "B"))
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.Atoi(t)
	if err != nil || n <= 0 || n > (1<<30)/mult {
		return fmt.Errorf("want a size such as 8M (at most 1G)")
	}
	*s = sizeFlag(n * mult)
	return nil
}

// featuresFlag takes feature names, repeated or comma separated.
type featuresFlag []events.Feature

func (f *featuresFlag) String() string {
	names := make([]string, len(*f))
	for i, x := range *f {
		names[i] = string(x)
	}
	return strings.Join(names, ",")
}

func (f *featuresFlag) Set(v string) error {
	for _, name := range strings.Split(v, ",") {
		x, err := events.ParseFeature(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		if x == events.FeatureCore {
			return fmt.Errorf("the core cannot be disabled")
		}
		*f = append(*f, x)
	}
	return nil
}

// durFlag is a duration shown as people write it: 1m, not 1m0s.
type durFlag time.Duration

func (d *durFlag) String() string {
	s := time.Duration(*d).String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

func (d *durFlag) Set(v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("want a duration such as 500ms, 60s or 1m")
	}
	*d = durFlag(x)
	return nil
}

// durationFlag defines a duration flag whose default reads as people write it.
func durationFlag(fs *flag.FlagSet, name string, def time.Duration, usage string) *time.Duration {
	p := new(time.Duration)
	*p = def
	fs.Var((*durFlag)(p), name, usage)
	return p
}
