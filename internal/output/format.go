package output

import (
	"strconv"
	"time"
)

// timeFormatter renders RFC 3339 UTC times with nanoseconds, reusing the
// date and clock part while the second does not change: events come in
// bursts, and AppendFormat was a tenth of the cost of an event.
type timeFormatter struct {
	sec    int64
	prefix []byte // `"2006-01-02T15:04:05.`
}

// appendTo appends the quoted time to b.
func (f *timeFormatter) appendTo(b []byte, t time.Time) []byte {
	t = t.UTC()
	sec := t.Unix()
	if f.prefix == nil || sec != f.sec {
		f.sec = sec
		f.prefix = append(f.prefix[:0], '"')
		f.prefix = t.Truncate(time.Second).AppendFormat(f.prefix, "2006-01-02T15:04:05")
		f.prefix = append(f.prefix, '.')
	}
	b = append(b, f.prefix...)
	b = appendPadded(b, uint64(t.Nanosecond()), 9)
	return append(b, 'Z', '"')
}

// appendPadded appends v in decimal with at least width digits.
func appendPadded(b []byte, v uint64, width int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for v > 0 || i > len(tmp)-width {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, tmp[i:]...)
}

// appendMillis renders a duration in milliseconds with up to six decimals
// (nanoseconds), trailing zeros dropped, as JSON numbers are.
func appendMillis(b []byte, d time.Duration) []byte {
	if d < 0 {
		b = append(b, '-')
		d = -d
	}
	ns := uint64(d)
	b = strconv.AppendUint(b, ns/1e6, 10)
	frac := ns % 1e6
	if frac == 0 {
		return b
	}
	digits := 6
	for frac%10 == 0 {
		frac /= 10
		digits--
	}
	b = append(b, '.')
	return appendPadded(b, frac, digits)
}
