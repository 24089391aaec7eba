// Package host is the exec backend (JOBQ_RUNNER=exec) of package runner:
// it runs JOBQ_COMMAND with sh -c in the job's bare repository (GIT_DIR),
// on this machine, as the worker's user, with no isolation: it is for
// trusted repositories only. Each job runs under a supervisor of jobq's
// own ("jobq-worker supervise", Supervise), detached from the worker, so
// that the job outlives a worker that dies or stops and a later worker
// adopts it, and nothing the job starts outlives the job.
//
// Its records, in the job's run directory (run/ of the job in the store):
//
//	supervisor  "PID START", the supervisor's pid and start time, locked
//	            (flock) by the supervisor as long as it lives
//	exit        the job's exit status, written by the supervisor once the
//	            job ended
package host
