package sink

import (
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// residentMiB is how much of path's first n bytes is in the page cache.
func residentMiB(t *testing.T, path string, n int) float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	resident, _ := residentPages(t, m)
	return float64(resident*os.Getpagesize()) / (1 << 20)
}

// residentPages is how many of mem's pages are in memory (mincore), and
// how many it spans.
func residentPages(t *testing.T, mem []byte) (resident, pages int) {
	t.Helper()
	page := os.Getpagesize()
	vec := make([]byte, (len(mem)+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)),
		uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		resident += int(v & 1)
	}
	return resident, len(vec)
}

// writeFile writes size bytes through a file sink's destination, then
// after a pause (for the disk) one more eighth of the window.
func writeFile(t *testing.T, path string, keep int64, size int) {
	t.Helper()
	d := &fileDest{path: path, mode: 0o600, cache: pageCacheWindow{keep: keep}}
	if err := d.open(time.Time{}); err != nil {
		t.Fatal(err)
	}
	defer d.close()
	line := make([]byte, 32<<10)
	for i := range line {
		line[i] = 'a' + byte(i%26)
	}
	line[len(line)-1] = '\n'
	for n := 0; n < size; n += len(line) {
		if _, err := d.write(line, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	for n := int64(0); n < max(keep, 0)/8; n += int64(len(line)) {
		if _, err := d.write(line, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
}

// The file sink leaves only the end of its file in the page cache: the
// rest is written back and dropped as it goes, where without the window
// the whole file stays cached.
func TestFileSinkKeepsOnlyItsWindowCached(t *testing.T) {
	dir := t.TempDir()
	const size, head = 96 << 20, 48 << 20
	kept, windowed := filepath.Join(dir, "kept"), filepath.Join(dir, "windowed")
	writeFile(t, kept, -1, size)
	writeFile(t, windowed, 4<<20, size)
	all, some := residentMiB(t, kept, head), residentMiB(t, windowed, head)
	if all < 40 {
		t.Fatalf("only %.0f of the first 48 MiB of a file written just now is cached without a window: the comparison means nothing here", all)
	}
	if some > 8 {
		t.Fatalf("%.1f MiB of the first 48 MiB still cached with a 4 MiB window (%.1f MiB without one)", some, all)
	}
	if b, err := os.ReadFile(windowed); err != nil || len(b) != size+(4<<20)/8 {
		t.Fatalf("read back %d bytes, %v; want %d", len(b), err, size+(4<<20)/8)
	}
}

// A reopened file (after logrotate) starts its own count.
func TestPageCacheWindowResets(t *testing.T) {
	w := pageCacheWindow{keep: 8, pending: 5}
	w.reset()
	if w.pending != 0 {
		t.Fatalf("after reset: %+v", w)
	}
}
