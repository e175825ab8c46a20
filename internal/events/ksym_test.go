package events

import (
	"os"
	"testing"
)

// The ksym iterator finds the same address /proc/kallsyms shows root.
func TestKsymAddressMatchesKallsyms(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (CI=true: not skipping)")
		}
		t.Skip("needs root")
	}
	want, err := KernelSymbol("/proc/kallsyms", "tw_timer_handler")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ksymAddress("tw_timer_handler")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("ksym iterator: %#x, /proc/kallsyms: %#x", got, want)
	}
	if _, err := ksymAddress("no_such_symbol_here"); err == nil {
		t.Error("found a symbol that does not exist")
	}
}
