// Package runner is the contract between the worker and its backends: the
// Runner interface a backend implements, the optional Placer, Reserver and
// Sweeper, the per-job handle each call gets (Job: the job, its log, its
// run directory), the errors they return and the causes they react to,
// and what every backend shares (a job's environment, the grace period,
// how an adopted log says so). It holds nothing of any one backend: those
// are its subpackages, host (JOBQ_RUNNER=exec: a host command in the bare
// repository) and podman (a container with the checkout at /source), and
// the worker knows none of them, only this package.
//
// A job's life in a backend:
//
//  1. Place (Placer only): while the job is queued, the worker asks for a
//     build host, and records it in the job (Job.Host) before it claims it.
//  2. Reserve (Reserver only): still queued, once it has its slot or host,
//     the worker reserves what Run will use.
//  3. Run: once per job, by one goroutine, until the job exits or ctx ends.
//  4. Adopt: by a later worker, for a job whose worker died or stopped
//     while Run ran it; any number of times, one worker at a time.
//     Collect (Collector only) follows Run or Adopt once either returned
//     the job's exit status, before the result is recorded, for a job
//     that collects artifacts (JOBQ_ARTIFACTS); again by a later worker
//     if this one died or stopped meanwhile.
//  5. Cleanup: once the result is recorded, and again by a later worker for
//     a job whose clean-up failed. Safe after a failed or missing start, and
//     safe to call twice.
//  6. Sweep (Sweeper only): from jobq gc, for what dead workers left and no
//     clean-up will remove.
//  7. Close (io.Closer only): once, when the worker exits, after its last
//     job; the worker calls no other method after it.
//
// A Runner is safe for concurrent use by jobs of different queues: the
// worker calls it for up to JOBQ_SLOTS jobs at a time, never twice at once
// for one job.
//
// When the ctx given to Run or Adopt ends, the backend stops the job
// (SIGTERM, the grace period, SIGKILL) and returns its exit status, unless
// the cause (context.Cause) is ErrStopping: then it leaves a started job
// running and returns ErrDetached at once.
package runner

import (
	"context"
	"errors"
	"os"

	"github.com/jobq/jobq/queue"
)

// Job is one job as the worker hands it to a backend: the job's record,
// its log, and its run directory. The backend reaches the store through
// nothing else.
type Job struct {
	*queue.Job
	// Log is the job's log, for Run and Adopt to append the job's output
	// to; nil for Cleanup.
	Log *os.File
	// Dir is the job's run directory (run/ in the job's directory), which
	// the store makes and the backend alone writes in: its records of
	// what the job uses outside the data directory (a checkout, a
	// container, a supervisor), each file of a name of the backend's
	// own, named in its package doc. The backend removes a record only
	// once what it names is gone: the store keeps a job whose run
	// directory is not empty, for a later Cleanup.
	Dir string
	// Secrets are the secrets granted to the job's ref, read from the
	// store when the job starts (and again when it is adopted): the
	// backend delivers them to the job (Run) and masks their values in
	// the job's output (Run and Adopt). nil for Cleanup.
	Secrets []Secret
	// Mask are the values of the repository's secrets withheld from
	// this job (JOBQ_SECRETS grants them to other refs only): never given
	// to it, masked in its output (Run and Adopt) all the same, since a
	// job may find one where a job given it left it, say in the cache
	// its ref's own starts as a copy of. nil for Cleanup.
	Mask [][]byte
	// Artifacts is the directory a Collector writes the job's artifacts
	// into (artifacts/ in the job's directory, which it replaces
	// whole); Room says why size more bytes may not be written there
	// (the data directory's JOBQ_MIN_FREE), or "". Both are set for
	// Collect only.
	Artifacts string
	Room      func(size int64) string
}

// Secret is one secret given to a job: its name (the file
// /run/secrets/NAME, or NAME in JOBQ_SECRETS_DIR for the exec runner),
// the environment variable the job also gets it as ("" for none), and its
// value. A value never goes into a record, a spec, a command line or a
// log.
type Secret struct {
	Name  string
	Var   string
	Value []byte
}

// Runner runs jobs of one kind (JOBQ_RUNNER).
type Runner interface {
	// Run runs j, its output to j.Log, until it exits or ctx ends, and
	// returns its exit status; err is jobq's own failure to run it, or
	// ErrDetached (ctx ended with ErrStopping), or wraps ErrLost (the
	// job's fate cannot be known: its build host went away).
	Run(ctx context.Context, j Job) (exit int, err error)
	// Adopt takes over running job j: it appends notice, then the output j
	// wrote since, exactly once, to j.Log, until j exits, and returns its
	// exit status. It returns ErrGone if j's container or supervisor is
	// gone (or never started), and ErrDetached as Run does.
	Adopt(ctx context.Context, j Job, notice string) (exit int, err error)
	// Cleanup removes what j used (container, checkout, processes) and
	// its records in j.Dir. With nothing left to remove it returns nil:
	// safe for a job that never started, and to call twice.
	Cleanup(ctx context.Context, j Job) error
}

// Placer is a Runner that runs some jobs on build hosts of its own (remote
// Podman services, pools of them), each with its own cap of running jobs:
// for those jobs the worker takes no local slot (JOBQ_SLOTS) but a place
// on a host from Place. The worker records the host in the job (Job.Host)
// before it claims it; Run and Cleanup find the job's host there. Place is
// called once per try, while j is queued, until it returns a host or the
// job leaves the queue.
type Placer interface {
	// Place reserves a host for queued job j: its name, and release, to
	// call once j's clean-up is done. host "" and wait "": j runs on this
	// machine. With every host busy, wait says why j waits, for j's
	// readers: no addresses or paths. An err wrapping ErrUnreachable says
	// that no host can be reached at all, in detail for the worker's log:
	// j waits for one at most its timeout, then fails. Any other err is
	// jobq's own failure.
	Place(ctx context.Context, j *queue.Job) (host string, release func(), wait string, err error)
}

// Reserver is a Runner that needs more than a slot for each running job
// (the podman runner: a range of subordinate IDs of its own). The worker
// has it reserved while the job is still queued, once the job has its
// slot or build host: a job that waits for it waits queued, with a
// reason, its timeout not begun, and no pusher holds more of it than its
// cap of slots allows. Reserve is called once per try, like Place.
type Reserver interface {
	// Reserve takes, without waiting, what Run will use for queued job j
	// (Job.Host set as it will be): release frees it unless Run took it
	// (then Cleanup does). With nothing free it returns why j waits, for
	// j's readers; with nothing to reserve, or nothing it can tell before
	// Run, nil and "". err is jobq's own failure.
	Reserve(ctx context.Context, j *queue.Job) (release func(), wait string, err error)
}

// Collector is a Runner that hands back a job's artifacts (JOBQ_ARTIFACTS):
// the files its container left under /source, whatever its result.
type Collector interface {
	// Collect writes the artifacts of j, which has exited (Run or Adopt
	// returned its status) and whose container is not removed yet, into
	// j.Artifacts, within the job's JOBQ_ARTIFACTS_MAX and j.Room; it
	// writes what it leaves out, and why, to j.Log as jobq's lines. It
	// replaces what an earlier, cut-short Collect wrote. It returns
	// ErrDetached when ctx ends with ErrStopping (a later worker collects
	// again), and err only for jobq's own failure, which fails no job.
	Collect(ctx context.Context, j Job) error
}

// Sweeper is a Runner that can remove what its jobs left and no clean-up
// will (a worker or service that died mid-way). jobq gc calls Sweep once,
// with the newest job of each repository, for the places those jobs name;
// with nothing to remove it returns nil.
type Sweeper interface {
	Sweep(ctx context.Context, jobs []*queue.Job) error
}

// Notice is the line an adopted job's log gets where its new worker takes
// over (on a line of its own: after a newline if the output was cut
// within a line).
const Notice = "jobq: worker restarted; output continues\n"

// Causes a backend reacts to when the ctx of Run or Adopt ends
// (context.Cause); any other cause just stops the job.
var (
	// ErrStopping: the worker stops (SIGTERM) and leaves a started job
	// running for the next worker; the backend returns ErrDetached.
	ErrStopping = errors.New("the worker is stopping")
	// ErrLogLimit: the job's log is over its limit; the backend stops the
	// job without copying more of its output.
	ErrLogLimit = errors.New("log limit reached")
)

// What a backend returns instead of an exit status.
var (
	// ErrDetached: the job still runs, left for the next worker to adopt.
	ErrDetached = errors.New("left running for the next worker")
	// ErrGone: a job to adopt has no container or supervisor left, or it
	// never started (a host reboot): it is lost.
	ErrGone = errors.New("its container or supervisor is gone")
	// ErrLost, wrapped in a backend's error, says that the job's fate is
	// not known (its build host went away): the job ends lost.
	ErrLost = errors.New("lost")
	// ErrUnreachable, wrapped in a Placer's error, says that no host of
	// the job's pool can be reached (as opposed to all busy): the job
	// waits for one no longer than its timeout.
	ErrUnreachable = errors.New("build host unreachable")
)
