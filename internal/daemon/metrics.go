package daemon

import (
	"fmt"
	"io"
)

// writeMetrics renders the Prometheus text format. (Filled in by the
// metrics stage.)
func (d *Daemon) writeMetrics(w io.Writer) {
	h := d.health()
	fmt.Fprintf(w, "tcpstated_ringbuf_records_total %d\n", h.Records)
	fmt.Fprintf(w, "tcpstated_ringbuf_lost_total %d\n", h.Lost)
}
