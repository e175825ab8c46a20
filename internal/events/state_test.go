package events

import (
	"strings"
	"testing"
)

func TestParseState(t *testing.T) {
	good := map[string]State{
		"CLOSE_WAIT": CloseWait, "close-wait": CloseWait, "TCP_TIME_WAIT": TimeWait,
		"time_wait": TimeWait, "FIN_WAIT_1": FinWait1, "fin-wait-2": FinWait2,
		"SYN-RECEIVED": SynRecv, "closed": Close, "LISTEN": Listen, "NEW_SYN_RECV": NewSynRecv,
	}
	for in, want := range good {
		if got, ok := ParseState(in); !ok || got != want {
			t.Errorf("ParseState(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "TCP_", "WAIT", "CLOSE_WAIT2", "established\x00"} {
		if _, ok := ParseState(in); ok {
			t.Errorf("ParseState(%q) accepted", in)
		}
	}
	for st := Established; st <= maxState; st++ {
		if got, ok := ParseState(st.String()); !ok || got != st {
			t.Errorf("round trip of %v failed", st)
		}
	}
	if State(0).Valid() || State(14).Valid() {
		t.Error("states 0 and 14 do not exist")
	}
}

func TestParseRelease(t *testing.T) {
	cases := map[string][2]int{"6.18.44-fc-v669": {6, 18}, "5.12.0": {5, 12}, "6.1.0-27-cloud-amd64": {6, 1}, "4.19": {4, 19}}
	for in, want := range cases {
		ma, mi, ok := parseRelease(in)
		if !ok || ma != want[0] || mi != want[1] {
			t.Errorf("parseRelease(%q) = %d.%d %v", in, ma, mi, ok)
		}
	}
	if _, _, ok := parseRelease("garbage"); ok {
		t.Error("parsed garbage")
	}
}

func TestSnapHZ(t *testing.T) {
	for in, want := range map[float64]uint32{99: 100, 251: 250, 305: 300, 996: 1000, 500: 0, 0: 0} {
		if got := snapHZ(in); got != want {
			t.Errorf("snapHZ(%v) = %d, want %d", in, got, want)
		}
	}
}

func TestCheckKernel(t *testing.T) {
	for _, tc := range []struct {
		release      string
		major, minor int
		ok           bool
	}{
		{"4.19.0-27-amd64", 4, 19, false}, {"5.8.0", 5, 8, false}, {"5.11.22", 5, 11, false},
		{"5.12.0", 5, 12, true}, {"6.1.0-27-cloud-amd64", 6, 1, true}, {"6.18.44", 6, 18, true},
	} {
		err := checkKernel(tc.release, tc.major, tc.minor)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.release, err)
		}
		if err != nil && (!strings.Contains(err.Error(), tc.release) || !strings.Contains(err.Error(), "older than 5.12")) {
			t.Errorf("%s: message does not name the kernel and the minimum: %v", tc.release, err)
		}
	}
}
