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
//	secrets     the path of the job's secrets directory (JOBQ_SECRETS_DIR),
//	            written before the directory is made
//
// A job given secrets (runner.Job.Secrets) finds them as files, one per
// name, 0400, in a directory of its own, 0700, on a filesystem in memory
// ($XDG_RUNTIME_DIR, else /dev/shm), named by JOBQ_SECRETS_DIR; NAME:VAR
// also sets VAR, which the supervisor reads from the file, so that no
// value is on its command line or in its own environment. Its output then
// goes through a pipe the supervisor masks (secret.Masker) into the log,
// where without secrets the job writes into the log itself. The values
// of the secrets withheld from the job (runner.Job.Mask) are masked too,
// given or not: they reach the supervisor through a pipe (--mask-fd)
// that it reads to its end and closes before the job starts, never
// through the job's directory. The
// supervisor removes the directory when the job has ended, and Cleanup
// again after a crash. The job runs as the hosting account, which can read
// the secret store itself: the exec runner keeps secrets out of logs and
// records, not from a job that means to find them.
package host
