//go:build faultinject

package faults

import (
	"os"
	"syscall"
)

// Enabled says whether this build stops at fault points.
const Enabled = true

// Point kills the process with SIGKILL if JOBQ_CRASH_AT names it, leaving
// the disk, the containers and the checkouts as a real crash does.
func Point(name string) {
	if os.Getenv("JOBQ_CRASH_AT") == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
