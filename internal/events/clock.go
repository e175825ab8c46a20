package events

import (
	"time"
	_ "unsafe" // go:linkname
)

// Clock turns the kernel's CLOCK_MONOTONIC timestamps into wall time.
// The offset is measured again on Sync, so a stepped wall clock heals.
type Clock struct {
	offset int64 // wall ns - monotonic ns
}

// NewClock measures the offset now.
func NewClock() *Clock {
	c := &Clock{}
	c.Sync()
	return c
}

// Sync measures the offset again.
func (c *Clock) Sync() {
	before := MonotonicNow()
	wall := time.Now().UnixNano()
	after := MonotonicNow()
	c.offset = wall - int64(before+(after-before)/2)
}

// Wall converts a kernel timestamp.
func (c *Clock) Wall(mono uint64) time.Time {
	return time.Unix(0, int64(mono)+c.offset)
}

// nanotime is the runtime's CLOCK_MONOTONIC read through the vDSO; the
// clock_gettime system call costs a VM exit on some hypervisors.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// MonotonicNow reads CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
func MonotonicNow() uint64 { return uint64(nanotime()) }
