package output

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

func TestTimeFormatter(t *testing.T) {
	var f timeFormatter
	for _, ts := range []time.Time{
		time.Date(2026, 11, 22, 4, 40, 33, 161424901, time.UTC),
		time.Date(2026, 11, 22, 4, 40, 33, 5, time.UTC),
		time.Date(2026, 11, 22, 4, 40, 34, 0, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("x", 3600)),
	} {
		got := string(f.appendTo(nil, ts))
		want := `"` + ts.UTC().Format("2006-01-02T15:04:05.000000000Z") + `"`
		if got != want {
			t.Errorf("appendTo(%v) = %s, want %s", ts, got, want)
		}
		var back time.Time
		if err := json.Unmarshal([]byte(got), &back); err != nil || !back.Equal(ts) {
			t.Errorf("%s does not parse back to %v: %v", got, ts, err)
		}
	}
}

func TestAppendMillis(t *testing.T) {
	cases := map[time.Duration]string{
		0: "0", time.Millisecond: "1", 1500 * time.Microsecond: "1.5", 87551 * time.Nanosecond: "0.087551",
		60*time.Second + 3*time.Nanosecond: "60000.000003", 5 * time.Nanosecond: "0.000005", -2 * time.Millisecond: "-2",
	}
	for d, want := range cases {
		if got := string(appendMillis(nil, d)); got != want {
			t.Errorf("appendMillis(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestAppendDecMatchesStrconv(t *testing.T) {
	vals := []uint64{0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 65535, 4026531840, 1<<32 - 1, 1<<63 + 12345, ^uint64(0)}
	for p := uint64(1); p < 1e19; p *= 10 {
		vals = append(vals, p-1, p, p+1)
	}
	for _, v := range vals {
		if got, want := string(appendDec([]byte("x"), v)), "x"+strconv.FormatUint(v, 10); got != want {
			t.Errorf("appendDec(%d) = %q, want %q", v, got, want)
		}
	}
	// Into a buffer with room, and one without.
	b := make([]byte, 0, 64)
	if got := string(appendDec(b, 123456789)); got != "123456789" {
		t.Errorf("with room: %q", got)
	}
	if got := string(appendDec(make([]byte, 3), 42)); got != "\x00\x00\x0042" {
		t.Errorf("without room: %q", got)
	}
}

func TestAppendPadded(t *testing.T) {
	for _, c := range []struct {
		v     uint64
		width int
		want  string
	}{{0, 9, "000000000"}, {5, 9, "000000005"}, {123456789, 9, "123456789"}, {1234567890, 9, "1234567890"}, {42, 1, "42"}, {7, 3, "007"}} {
		if got := string(appendPadded(nil, c.v, c.width)); got != c.want {
			t.Errorf("appendPadded(%d, %d) = %q, want %q", c.v, c.width, got, c.want)
		}
	}
}
