// Package faults is fault injection for the crash tests: in a build with
// the faultinject tag (the reliability suite's worker, the unit tests of
// `make test`), Point kills the process at the named phase of a job or an
// enqueue when JOBQ_CRASH_AT names it; in every other build it does
// nothing, and costs nothing.
package faults
