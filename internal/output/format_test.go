package output

import (
	"encoding/json"
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
