package metrics

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// A strict reader of the text format, written from the specification
// (independently of render.go), for the tests: it fails on anything the
// format does not allow or that Prometheus would take badly (a family
// split in two, a series twice, a sample before its # TYPE).

type sample struct {
	name   string
	labels map[string]string
	value  float64
	line   int
}

type family struct {
	name, typ, help string
	samples         []sample
}

type exposition struct {
	families map[string]*family
	order    []string
}

// family returns the family a sample name belongs to.
func (x *exposition) familyOf(name string) *family {
	if f := x.families[name]; f != nil {
		return f
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok {
			if f := x.families[base]; f != nil && (f.typ == "histogram" || f.typ == "summary") {
				return f
			}
		}
	}
	return nil
}

func parseExposition(t *testing.T, text string) *exposition {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		t.Fatalf("exposition does not end with a line feed")
	}
	if !utf8.ValidString(text) {
		t.Fatalf("exposition is not UTF-8")
	}
	x := &exposition{families: map[string]*family{}}
	var cur *family
	seen := map[string]int{} // series -> line
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		n := i + 1
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("line %d %q: %s", n, line, fmt.Sprintf(format, args...))
		}
		switch {
		case line == "":
			fail("empty line")
		case strings.HasPrefix(line, "# HELP "):
			name, help, ok := strings.Cut(line[len("# HELP "):], " ")
			if !ok || !validName(name) {
				fail("bad HELP")
			}
			if x.families[name] != nil {
				fail("second HELP for %s: family split or repeated", name)
			}
			cur = &family{name: name, help: help}
			x.families[name] = cur
			x.order = append(x.order, name)
		case strings.HasPrefix(line, "# TYPE "):
			name, typ, ok := strings.Cut(line[len("# TYPE "):], " ")
			if !ok || cur == nil || cur.name != name || cur.typ != "" || len(cur.samples) > 0 {
				fail("TYPE not right after its HELP")
			}
			switch typ {
			case "counter", "gauge", "histogram", "summary", "untyped":
			default:
				fail("unknown type %q", typ)
			}
			cur.typ = typ
		case strings.HasPrefix(line, "#"):
			fail("unexpected comment")
		default:
			s := parseSample(t, n, line)
			f := x.familyOf(s.name)
			if f == nil || f != cur || f.typ == "" {
				fail("sample outside its family (each family must be contiguous, after HELP and TYPE)")
			}
			key := seriesKey(s)
			if prev, dup := seen[key]; dup {
				fail("series repeated (first at line %d)", prev)
			}
			seen[key] = n
			f.samples = append(f.samples, s)
		}
	}
	return x
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func seriesKey(s sample) string {
	keys := make([]string, 0, len(s.labels))
	for k := range s.labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(s.name)
	for _, k := range keys {
		b.WriteString("\x00" + k + "\x00" + s.labels[k])
	}
	return b.String()
}

func parseSample(t *testing.T, n int, line string) sample {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("line %d %q: %s", n, line, fmt.Sprintf(format, args...))
	}
	s := sample{labels: map[string]string{}, line: n}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		fail("no name")
	}
	s.name = line[:i]
	if !validName(s.name) {
		fail("bad metric name %q", s.name)
	}
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq <= 0 {
				fail("bad label")
			}
			key := rest[:eq]
			if !validName(key) || strings.Contains(key, ":") || strings.HasPrefix(key, "__") {
				fail("bad label name %q", key)
			}
			rest = rest[eq+2:]
			var val strings.Builder
			closed := false
			for j := 0; j < len(rest); j++ {
				c := rest[j]
				if c == '\\' {
					if j+1 == len(rest) {
						fail("dangling backslash")
					}
					j++
					switch rest[j] {
					case '\\':
						val.WriteByte('\\')
					case '"':
						val.WriteByte('"')
					case 'n':
						val.WriteByte('\n')
					default:
						fail("invalid escape \\%c", rest[j])
					}
					continue
				}
				if c == '"' {
					rest = rest[j+1:]
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				fail("unterminated label value")
			}
			if _, dup := s.labels[key]; dup {
				fail("label %s twice", key)
			}
			s.labels[key] = val.String()
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
			} else if !strings.HasPrefix(rest, "}") {
				fail("want , or } after a label")
			}
		}
	}
	if !strings.HasPrefix(rest, " ") {
		fail("no space before the value")
	}
	fields := strings.Split(rest[1:], " ")
	if len(fields) != 1 {
		fail("want exactly one value and no timestamp")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		fail("value: %v", err)
	}
	s.value = v
	return s
}

// get returns the value of the one sample of name with exactly labels.
func (x *exposition) get(t *testing.T, name string, labels ...string) (float64, bool) {
	t.Helper()
	f := x.familyOf(name)
	if f == nil {
		return 0, false
	}
next:
	for _, s := range f.samples {
		if s.name != name || len(s.labels) != len(labels)/2 {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if v, ok := s.labels[labels[i]]; !ok || v != labels[i+1] {
				continue next
			}
		}
		return s.value, true
	}
	return 0, false
}
