package sink

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

var fixedTime = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

func frameOf(f framer, level zerolog.Level, data string) string {
	return string(f.appendFrame(nil, &event{data: []byte(data), level: level, at: fixedTime.UnixNano()}))
}

func TestRFC5424Datagram(t *testing.T) {
	var trunc atomic.Uint64
	f := newSyslogFramer(styleRFC5424, false, maxSyslogDatagram, "node-1", 4242, &trunc)
	got := frameOf(f, zerolog.InfoLevel, `{"state":"ESTABLISHED"}`+"\n")
	want := `<30>1 2024-05-06T07:08:09.123456Z node-1 tcpstated 4242 - - {"state":"ESTABLISHED"}`
	if got != want {
		t.Fatalf("frame =\n%s\nwant\n%s", got, want)
	}
}

func TestRFC5424OctetCounting(t *testing.T) {
	var trunc atomic.Uint64
	f := newSyslogFramer(styleRFC5424, true, 0, "h", 1, &trunc)
	dst := f.appendFrame([]byte("prev"), &event{data: []byte("{}\n"), level: zerolog.ErrorLevel, at: fixedTime.UnixNano()})
	msg := `<27>1 2024-05-06T07:08:09.123456Z h tcpstated 1 - - {}`
	want := "prev" + strconv.Itoa(len(msg)) + " " + msg
	if string(dst) != want {
		t.Fatalf("frame = %q, want %q", dst, want)
	}
}

func TestLocalSyslogFormat(t *testing.T) {
	var trunc atomic.Uint64
	f := newSyslogFramer(styleLocal, false, maxSyslogDatagram, "ignored", 77, &trunc)
	got := frameOf(f, zerolog.WarnLevel, `{"a":1}`+"\n")
	stamp := fixedTime.Local().Format(time.Stamp)
	want := "<28>" + stamp + ` tcpstated[77]: {"a":1}`
	if got != want {
		t.Fatalf("frame = %q, want %q", got, want)
	}
}

func TestSeverityFromLevel(t *testing.T) {
	cases := map[zerolog.Level]int{
		zerolog.TraceLevel: 7, zerolog.DebugLevel: 7, zerolog.InfoLevel: 6,
		zerolog.WarnLevel: 4, zerolog.ErrorLevel: 3, zerolog.FatalLevel: 2,
		zerolog.PanicLevel: 2, zerolog.NoLevel: 6,
	}
	for l, want := range cases {
		if got := severity(l); got != want {
			t.Errorf("severity(%v) = %d, want %d", l, got, want)
		}
	}
}

func TestSanitizeHostname(t *testing.T) {
	cases := map[string]string{
		"web-1.example.com": "web-1.example.com",
		"":                  "-",
		"   ":               "-",
		"bad host\x00\n":    "badhost",
		"h\u00f6st":         "hst",
	}
	for in, want := range cases {
		if got := sanitizeHostname(in); got != want {
			t.Errorf("sanitizeHostname(%q) = %q, want %q", in, got, want)
		}
	}
	if got := sanitizeHostname(strings.Repeat("a", 300)); len(got) != 255 {
		t.Errorf("sanitizeHostname kept %d bytes, want 255", len(got))
	}
}

func TestDatagramTruncatesOnRuneBoundaryAndCounts(t *testing.T) {
	var trunc atomic.Uint64
	f := newSyslogFramer(styleRFC5424, false, 100, "h", 1, &trunc)
	body := `{"msg":"` + strings.Repeat("\u00e9", 200) + `"}`
	got := frameOf(f, zerolog.InfoLevel, body)
	if len(got) > 100 {
		t.Fatalf("datagram is %d bytes, limit 100", len(got))
	}
	if len(got) < 97 {
		t.Fatalf("datagram is %d bytes: cut more than one rune short of 100", len(got))
	}
	if !utf8.ValidString(got) {
		t.Fatalf("truncation split a UTF-8 sequence: %q", got)
	}
	if trunc.Load() != 1 {
		t.Fatalf("truncated counter = %d, want 1", trunc.Load())
	}
	short := frameOf(f, zerolog.InfoLevel, "{}")
	if !strings.HasSuffix(short, " - - {}") || trunc.Load() != 1 {
		t.Fatalf("short event changed or counted: %q, truncated=%d", short, trunc.Load())
	}
}

func TestCutUTF8(t *testing.T) {
	b := []byte("a\u00e9\u20acz") // 1 + 2 + 3 + 1 bytes
	for n, want := range map[int]string{0: "", 1: "a", 2: "a", 3: "a\u00e9", 4: "a\u00e9", 5: "a\u00e9", 6: "a\u00e9\u20ac", 7: "a\u00e9\u20acz", 9: "a\u00e9\u20acz"} {
		if got := string(cutUTF8(b, n)); got != want {
			t.Errorf("cutUTF8(%d) = %q, want %q", n, got, want)
		}
	}
}
