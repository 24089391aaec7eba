package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jobq/jobq/internal/human"
	"github.com/jobq/jobq/push"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// collectFor bounds a job's collection of artifacts: JOBQ_ARTIFACTS_MAX's
// default 100 MiB takes about a second from a local service, and under a
// minute over a slow link to a build host. It is not the job's timeout:
// the job has ended, and its result does not change.
const collectFor = 5 * time.Minute

// errCollectTimeout ends a collection that took collectFor.
var errCollectTimeout = fmt.Errorf("collection took longer than %s", collectFor)

// collect has job j's runner collect its artifacts (JOBQ_ARTIFACTS), after
// the job exited and before its result is recorded, so that a job shown
// ended has its artifacts, and one whose worker dies meanwhile is
// collected by the worker that adopts it. It reports whether it left the
// job to a later worker (the worker stops). Nothing here fails the job:
// what went wrong goes into its log.
func (w *Worker) collect(ctx context.Context, r runner.Runner, j *queue.Job, log *os.File) (left bool) {
	if len(j.Options.Artifacts) == 0 {
		return false
	}
	c, ok := r.(runner.Collector)
	if !ok {
		// The exec runner's job runs in the bare repository, with no
		// /source; what it writes on the host is the host's.
		queue.WriteOwn(log, fmt.Sprintf("jobq: JOBQ_ARTIFACTS: the %s runner collects no artifacts (only the podman runner's /source has them)\n", j.Options.Runner))
		return false
	}
	dir, err := w.Store.NewArtifacts(j)
	if err != nil {
		queue.WriteOwn(log, "jobq: artifacts: none collected: jobq's own error\n")
		w.logf("%s %d: %v", j.Repo, j.ID, err)
		return false
	}
	cctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() { cancel(runner.ErrStopping) })
	defer stop()
	cctx, cancelT := context.WithTimeoutCause(cctx, collectFor, errCollectTimeout)
	defer cancelT()
	err = c.Collect(cctx, runner.Job{Job: j, Log: log, Dir: w.Store.RunDir(j), Artifacts: dir, Room: w.room})
	if errors.Is(err, runner.ErrDetached) {
		return true
	}
	if err != nil {
		queue.WriteOwn(log, "jobq: artifacts: "+oneLine(err)+"\n")
	}
	// What was collected before an error is kept: the log says what is
	// missing.
	if err := w.Store.PublishArtifacts(j); err != nil {
		queue.WriteOwn(log, "jobq: artifacts: none kept: jobq's own error\n")
		w.logf("%s %d: %v", j.Repo, j.ID, err)
	}
	return false
}

// room says why size more bytes, in a file of their own, may not be
// written to the data directory: it would leave less than JOBQ_MIN_FREE
// or JOBQ_MIN_FREE_INODES free there. Artifacts count towards those as
// logs do; a filesystem that cannot be asked stops nothing.
func (w *Worker) room(size int64) string {
	if w.MinFree <= 0 && w.MinFreeInodes <= 0 {
		return ""
	}
	free := FreeSpace
	if w.FreeSpace != nil {
		free = w.FreeSpace
	}
	f, err := free(w.Store.Dir())
	if err != nil {
		return ""
	}
	if w.MinFree > 0 && f.Bytes-size < w.MinFree {
		return fmt.Sprintf("%s free in the data directory, a file of %s next, JOBQ_MIN_FREE=%s", human.Bytes(f.Bytes), human.Bytes(size), push.FormatBytes(w.MinFree))
	}
	if w.MinFreeInodes > 0 && f.Inodes >= 0 && f.Inodes-1 < w.MinFreeInodes {
		return fmt.Sprintf("%d inodes free in the data directory, JOBQ_MIN_FREE_INODES=%d", f.Inodes, w.MinFreeInodes)
	}
	return ""
}
