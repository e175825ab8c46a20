// Package testkit holds what the kernel tests of several packages share.
package testkit

import (
	"os"
	"testing"
)

// NeedKernel skips a test that loads BPF without the privileges to do so,
// except in CI, where a kernel test that cannot run is a failure.
func NeedKernel(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("kernel tests need root (CI=true: not skipping)")
	}
	t.Skip("kernel tests need root")
}

// NeedRoot skips a test that needs root (mounts, raw sockets) without it,
// except in CI, where that is a failure.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (CI=true: not skipping)")
	}
	t.Skip("this test needs root")
}
