package main

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// renice sets the scheduling priority of every thread of this process
// (Linux keeps one per thread; threads started later inherit it). A tracer
// that gets only its fair share next to a busy workload falls behind and
// loses events exactly when they matter; auditd raises its priority for the
// same reason. The CPU it uses still shows in the workload's throughput.
func renice(nice int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil && err != unix.ESRCH {
			return fmt.Errorf("setpriority: %w", err)
		}
	}
	return nil
}
