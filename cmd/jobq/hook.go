package main

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/internal/termsafe"
	"github.com/jobq/jobq/push"
	"github.com/jobq/jobq/queue"
)

// runHook is the post-receive hook. It always returns 0: a push is never
// failed or blocked by jobq's own trouble; problems are one line to the
// pusher.
func runHook(ctx context.Context, e env) int {
	say := func(format string, args ...any) { fmt.Fprintf(e.stderr, "jobq: "+format+"\n", args...) }
	a := &app{ctx: ctx, e: e}
	jobs, err := a.queueJobs()
	if err != nil {
		say("%v", err)
		return cli.OK
	}
	noWorker := map[string]bool{} // queues whose worker could not be started
	seen := map[string]bool{}
	for _, qj := range jobs {
		say("queued %s job %d in queue %s (%d ahead)", qj.job.Repo, qj.job.ID, qj.job.Queue, qj.ahead)
		if !seen[qj.job.Queue] {
			seen[qj.job.Queue] = true
			if a.started {
				continue // started before the enqueue
			}
			if err := a.ensureWorker(qj.job.Queue); err != nil {
				say("%v; the job waits for the next worker", err)
				noWorker[qj.job.Queue] = true
			}
		}
	}
	if w := checkGrants(e.lookup); w != "" && len(jobs) > 0 {
		say("%s", w)
	}
	for _, qj := range jobs {
		// Following a job no worker will run would hang the push.
		if qj.job.Options.Async || noWorker[qj.job.Queue] {
			continue
		}
		// The pusher watches; if they go, the job still runs to its end.
		// The job's output reaches their terminal: made safe.
		own := queue.OpenOwn(a.store.LogPath(qj.job.Repo, qj.job.ID))
		out := termsafe.NewLogWriter(e.stderr, own)
		_, err := a.store.Follow(ctx, qj.job.Repo, qj.job.ID, out, 200*time.Millisecond, a.adoptOrphan)
		out.Close()
		own.Close()
		if err != nil {
			say("%v", err)
		}
	}
	return cli.OK
}

type queued struct {
	job   *queue.Job
	ahead int
}

// queueJobs reads the push and the repository's options and queues one job
// per selected ref.
func (a *app) queueJobs() ([]queued, error) {
	gitDir, err := filepath.Abs(cmp.Or(a.e.getenv("GIT_DIR"), "."))
	if err != nil {
		return nil, err
	}
	repo := a.e.getenv("GL_REPO")
	if repo == "" { // a plain git server: name the repository after its directory
		repo = strings.TrimSuffix(filepath.Base(gitDir), ".git")
	}
	if err := queue.ValidName(repo); err != nil {
		return nil, fmt.Errorf("repository %v; no job queued", err)
	}
	opts, err := push.ParseOptions(a.e.lookup, repo)
	if err != nil {
		return nil, fmt.Errorf("%v; no job queued", err)
	}
	updates, err := push.ParseUpdates(a.e.stdin)
	if err != nil {
		return nil, fmt.Errorf("%v; no job queued", err)
	}
	filter, err := push.ParseRefFilter(opts.RefFilter)
	if err != nil {
		return nil, fmt.Errorf("%v; no job queued", err)
	}
	env := passEnv(a.e.lookup, opts.PassEnv)
	var selected []push.Update
	for _, u := range updates {
		if !u.Deletion() && filter.Match(u.Ref) {
			selected = append(selected, u)
		}
	}
	if len(selected) == 0 {
		return nil, nil
	}
	if err := a.open(); err != nil {
		return nil, fmt.Errorf("%v; no job queued", err)
	}
	// The worker starts while the jobs are enqueued (queue.StartWorker);
	// it takes the queue once done lets it.
	q := a.store.QueueFor(repo, opts.Queue)
	done, started, _ := a.store.StartWorker(q, a.startWorker(q))
	defer done()
	a.started = started
	var jobs []queued
	for _, u := range selected {
		j := &queue.Job{
			Repo: repo, Queue: q, Ref: u.Ref, OldRev: u.Old, NewRev: u.New,
			User: a.e.getenv("GL_USER"), GitDir: gitDir, Env: env, Options: opts,
		}
		ahead, err := a.store.Enqueue(j)
		if err != nil {
			return jobs, fmt.Errorf("%v; no job queued for %s", err, u.Ref)
		}
		jobs = append(jobs, queued{j, ahead})
	}
	return jobs, nil
}

// ensureWorker starts a detached worker for queue q unless one holds it
// or is on its way (the store's wake-up protocol).
func (a *app) ensureWorker(q string) error {
	return a.store.EnsureWorker(q, a.startWorker(q))
}

// startWorker starts a detached worker for queue q, which waits for the
// hook's start lock and then for the queue. The queue's name goes on its
// standard input, not its command line: every process on the host, jobs
// too, can read a command line (/proc/PID/cmdline), and a name can tell
// of a private repository.
func (a *app) startWorker(q string) func() error {
	return func() error {
		bin, err := a.program("jobq-worker")
		if err != nil {
			return err
		}
		return startDetached(bin, []string{"drain", "--queue", "-", "--wait"}, q, a.store.Dir())
	}
}

// adoptOrphan makes sure a worker comes for the queue of a running job
// whose worker died or stopped: it adopts the job (a follower waits for
// that, and would wait for ever if no push came to start one).
func (a *app) adoptOrphan(j *queue.Job) error {
	if err := a.ensureWorker(j.Queue); err != nil {
		return fmt.Errorf("no worker could be started to adopt it: %w", err)
	}
	return nil
}

// execWorker replaces this process with jobq-worker (jobq worker, jobq gc).
func (a *app) execWorker(args []string) error {
	bin, err := a.program("jobq-worker")
	if err != nil {
		return err
	}
	return execProgram(bin, args)
}
