package output

import (
	"math/bits"
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

var pow10 = [20]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// digitPairs holds "00" to "99", for writing two digits at a time.
const digitPairs = "00010203040506070809" + "10111213141516171819" + "20212223242526272829" +
	"30313233343536373839" + "40414243444546474849" + "50515253545556575859" +
	"60616263646566676869" + "70717273747576777879" + "80818283848586878889" +
	"90919293949596979899"

// appendDec appends v in decimal, as strconv.AppendUint(b, v, 10) does,
// straight into b: the encoder writes six numbers an event, and
// strconv's copy through a scratch buffer was a third of its time.
func appendDec(b []byte, v uint64) []byte {
	// Digits from the bit length (log10(2) ~ 1233/4096), then one compare.
	t := bits.Len64(v) * 1233 >> 12
	n := t
	if v >= pow10[t] {
		n++
	}
	n = max(n, 1)
	l := len(b)
	if cap(b)-l < n {
		b = append(b, make([]byte, n)...)
	} else {
		b = b[:l+n]
	}
	i := l + n
	for v >= 100 {
		q := v / 100
		r := v - q*100
		i -= 2
		b[i], b[i+1] = digitPairs[2*r], digitPairs[2*r+1]
		v = q
	}
	if v >= 10 {
		i -= 2
		b[i], b[i+1] = digitPairs[2*v], digitPairs[2*v+1]
	} else {
		i--
		b[i] = byte('0' + v)
	}
	return b
}
