package sink

// framer turns a queued event into its bytes on the wire. Only the sink's
// drainer goroutine calls it, so a framer may keep scratch buffers.
type framer interface {
	appendFrame(dst []byte, e *event) []byte
}

// lineFramer writes the event as it came, as one line: zerolog already
// ends each event with '\n'; a writer that did not gets one added.
type lineFramer struct{}

func (lineFramer) appendFrame(dst []byte, e *event) []byte {
	dst = append(dst, e.data...)
	if len(e.data) == 0 || e.data[len(e.data)-1] != '\n' {
		dst = append(dst, '\n')
	}
	return dst
}
