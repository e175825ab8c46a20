package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// pageCacheCost is what writing into the page cache costs this machine,
// in system ns per byte: the floor under every tracer that streams its
// events to a file. A VM whose balloon reports free pages to its host
// (VIRTIO_BALLOON_F_REPORTING) hands memory freed a few seconds ago back;
// the next write into it takes a host fault per page.
type pageCacheCost struct {
	fresh  float64 // into memory the machine had been leaving free
	reused float64 // into the memory of a file deleted just before
	err    error
}

const pageCacheProbeBytes = 256 << 20

// probePageCache writes a new file of pageCacheProbeBytes in dir, deletes
// it and at once writes another, each timed by the writing thread's own
// system time (the writes are the daemon's size: tens of KiB).
func probePageCache(dir string) pageCacheCost {
	var c pageCacheCost
	c.fresh, c.err = timedWrite(filepath.Join(dir, "pagecache-1"))
	if c.err == nil {
		c.reused, c.err = timedWrite(filepath.Join(dir, "pagecache-2"))
	}
	return c
}

func timedWrite(path string) (nsPerByte float64, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	buf := make([]byte, 32<<10)
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	var before, after unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &before); err != nil {
		return 0, err
	}
	for n := 0; n < pageCacheProbeBytes; n += len(buf) {
		if _, err := f.Write(buf); err != nil {
			return 0, fmt.Errorf("page-cache probe: %w", err)
		}
	}
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &after); err != nil {
		return 0, err
	}
	sys := float64(unix.TimevalToNsec(after.Stime) - unix.TimevalToNsec(before.Stime))
	return sys / pageCacheProbeBytes, nil
}
