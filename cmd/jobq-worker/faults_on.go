//go:build faultinject

package main

import (
	"os"
	"syscall"
)

// crashHook, in the fault-injection build the reliability suite uses, kills
// the worker with SIGKILL when it reaches the phase named by JOBQ_CRASH_AT,
// leaving the disk, the containers and the checkouts as a real crash does.
func crashHook() func(point string) {
	at := os.Getenv("JOBQ_CRASH_AT")
	if at == "" {
		return nil
	}
	return func(point string) {
		if point == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}
