package sink

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// pageCacheWindow keeps only the end of a file sink's file in the page
// cache. A tracer writes hundreds of MB a minute that nobody reads twice
// (a log shipper reads each line once, within moments): left alone, that
// fills the page cache and evicts the host's own files, and every new page
// is one more the kernel must find. Dropping what was written back lets
// the next writes reuse pages just freed; on a VM whose balloon reports
// free pages to its host, a page left free for long is handed back and
// costs a host fault to write again (10 times the copy, docs/performance.md).
type pageCacheWindow struct {
	keep    int64 // bytes before the end that stay cached; <= 0: leave the cache alone
	pending int64 // written since the last drop
}

func (w *pageCacheWindow) reset() { w.pending = 0 }

// wrote counts n bytes written to f and, every eighth of the window,
// drops the pages before the window. POSIX_FADV_DONTNEED starts the
// writeback of dirty pages and drops the clean ones; a page still being
// written back is dropped by a later call, which goes over the whole file
// again (the kernel skips the pages it no longer has, cheaply).
func (w *pageCacheWindow) wrote(f *os.File, n int) {
	if w.keep <= 0 || n <= 0 {
		return
	}
	w.pending += int64(n)
	if w.pending < w.keep/8 {
		return
	}
	w.pending = 0
	end, err := f.Seek(0, io.SeekCurrent)
	if err != nil || end <= w.keep {
		return
	}
	// Not a regular file (a character device, a pipe): nothing to drop.
	unix.Fadvise(int(f.Fd()), 0, end-w.keep, unix.FADV_DONTNEED)
}
