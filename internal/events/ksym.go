package events

import (
	"fmt"
	"io"

	"github.com/cilium/ebpf/link"
)

// ksymAddress finds a kernel symbol with the ksym iterator, for when
// /proc/kallsyms hides addresses (kptr_restrict without CAP_SYSLOG).
func ksymAddress(name string) (uint64, error) {
	spec, err := loadKsym()
	if err != nil {
		return 0, err
	}
	var wanted [17]byte
	if len(name) >= len(wanted) {
		return 0, fmt.Errorf("symbol name %q too long", name)
	}
	copy(wanted[:], name)
	if err := spec.Variables["wanted"].Set(wanted); err != nil {
		return 0, err
	}
	var objs ksymObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return 0, fmt.Errorf("ksym iterator (Linux >= 6.0): %w", err)
	}
	defer objs.Close()
	it, err := link.AttachIter(link.IterOptions{Program: objs.FindKsym})
	if err != nil {
		return 0, fmt.Errorf("ksym iterator: %w", err)
	}
	defer it.Close()
	rd, err := it.Open()
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	if _, err := io.Copy(io.Discard, rd); err != nil {
		return 0, err
	}
	var addr uint64
	if err := objs.FoundAddr.Get(&addr); err != nil {
		return 0, err
	}
	if addr == 0 {
		return 0, fmt.Errorf("%w: %s not found by the ksym iterator", ErrNoSymbol, name)
	}
	return addr, nil
}
