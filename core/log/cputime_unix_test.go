//go:build unix

package log

import (
	"syscall"
	"time"
)

// processCPUTime returns the user+system CPU time this process has used, so
// benchmarks can report CPU cost per op that a loaded machine distorts less
// than wall time.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
