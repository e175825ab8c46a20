// Package testkit holds what the kernel tests of several packages share.
package testkit

import (
	"os"
	"syscall"
	"testing"
)

// NeedKernel skips a test that loads BPF without the privileges to do so,
// except in CI, where a kernel test that cannot run is a failure.
func NeedKernel(t testing.TB) { t.Helper(); needRoot(t, "kernel tests need root") }

// NeedRoot skips a test that needs root (mounts, raw sockets) without it,
// except in CI, where that is a failure.
func NeedRoot(t testing.TB) { t.Helper(); needRoot(t, "this test needs root") }

func needRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why + " (CI=true: not skipping)")
	}
	t.Skip(why)
}

// Tmpfs mounts a tmpfs of the given size (mount's size=, e.g. "32k") on a
// fresh directory, unmounted when the test ends: a file system a test can
// fill.
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	NeedRoot(t)
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mounting a %s tmpfs: %v", size, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}
