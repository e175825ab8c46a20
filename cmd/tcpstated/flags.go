package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tcpstated/tcpstated/internal/events"
)

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

func (s *sizeFlag) String() string { return strconv.Itoa(int(*s)) }

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
