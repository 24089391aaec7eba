// Package worker schedules jobs: it drains the store's queues (package
// queue) in FIFO order, one job at a time per queue and at most JOBQ_SLOTS
// at a time on the host, hands each job to the runner its JOBQ_RUNNER
// names, enforces its timeout, cancellation, log limit and the free space
// and inodes of the filesystems jobs write to, writes the log's header and
// result line (recorded as jobq's: queue.WriteOwn), and settles what a
// dead worker left. It calls the backends through the contract of package
// runner (runner.Runner and its optional interfaces) and knows none of them.
package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jobq/jobq/internal/faults"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// Why a job's run ends early, besides the causes of package runner: the
// cause (context.Cause) of the context the worker gives a runner. Only the
// worker tells them apart; a runner just stops the job.
var (
	errTimeout   = errors.New("timed out")
	errCancelled = errors.New("cancelled")
)

// DefaultLogLimit bounds a job's log (JOBQ_LOG_LIMIT of the worker): more
// than a person reads, and with JOBQ_KEEP's 200 jobs at most 1.6 GiB of
// logs per repository.
const DefaultLogLimit = 8 << 20

// hostPoll is how often a job waiting for a build host looks for one.
const hostPoll = 50 * time.Millisecond

// maxBackoff is the longest pause between tries when jobq's own files fail.
const maxBackoff = 30 * time.Second

// errNotQueued ends the wait for a slot of a job that is no longer queued
// (cancelled while it waited): the claim then skips it.
var errNotQueued = errors.New("no longer queued")

// errUnreachable ends the wait of a job none of whose build hosts could
// be reached for as long as its timeout: it fails without running.
var errUnreachable = errors.New("no build host could be reached")

// errHandOff ends, in a worker a hook started, the wait of a job that
// cannot start at once: its queue goes to the dispatcher (DrainOrHandOff).
var errHandOff = errors.New("hand the queue off")

// Worker drains queues, one job at a time per queue, at most Slots jobs at a
// time on the host.
type Worker struct {
	Store *queue.Store
	// Runners run the jobs, by JOBQ_RUNNER.
	Runners map[string]runner.Runner
	Slots   int           // host-wide limit of running jobs; < 1: 1
	Poll    time.Duration // how often to look for cancellation and free slots
	// UserSlots caps one pusher's (Job.User) running jobs on the host,
	// across all queues and workers; < 1: every slot but one when there
	// are two or more, else 1.
	UserSlots int
	// MinFree is the free space the data directory's filesystem (and each
	// of WatchDirs') must keep: while one has less, no job starts (jobs
	// wait), and a running job is stopped, and fails, when one has less
	// than half. <= 0: no check.
	MinFree int64
	// MinFreeInodes is as MinFree, in free inodes; <= 0: no check.
	MinFreeInodes int64
	// WatchDirs are other directories jobs write to whose filesystems
	// MinFree and MinFreeInodes guard too (the podman runner's checkouts,
	// in the temporary directory).
	WatchDirs []string
	// FreeSpace reports what is free on dir's filesystem; nil: FreeSpace.
	FreeSpace func(dir string) (Free, error)
	// LogLimit bounds each job's output in its log; a job that writes more
	// is stopped and fails, and its log is cut there. <= 0: DefaultLogLimit.
	LogLimit int64
	Logf     func(format string, args ...any)
	// Grants reads a repository's JOBQ_SECRETS when its job starts
	// (Grants); nil: no job gets a secret.
	Grants GrantsFunc

	// pause, if set, replaces the worker's waits (for a slot, for space,
	// after a failure): the tests count them.
	pause func(ctx context.Context, d time.Duration) bool
	// handOff: a job that cannot start at once ends its queue's drain
	// with errHandOff instead of waiting (DrainOrHandOff).
	handOff bool
	// maxHeld, if set, replaces the cap of queues held at once (heldCap).
	maxHeld int

	// Notifier, if set, tells of jobs' results (package notify/deliver).
	Notifier Notifier
}

// Notifier tells of a job's result: Prepare records what is to be told
// (j carries its final state) before the result is recorded, and reports
// whether there is anything; Send sends it after, off the job's path: it
// returns at once.
type Notifier interface {
	Prepare(j *queue.Job) (bool, error)
	Send(j *queue.Job)
}

// Close closes the runners that keep something between jobs (io.Closer:
// the podman runner's ssh connections to build hosts), once the worker has
// run its last job; their errors go to the worker's log.
func (w *Worker) Close() {
	for name, r := range w.Runners {
		if c, ok := r.(io.Closer); ok {
			if err := c.Close(); err != nil {
				w.logf("close runner %s: %v", name, err)
			}
		}
	}
}

// Drain runs queue q until it is empty. With wait (a worker a hook
// started), it waits for the hook, then for the queue; without, it returns
// at once if another worker holds the queue.
func (w *Worker) Drain(ctx context.Context, q string, wait bool) error {
	h, err := w.Store.HoldQueue(q, wait)
	if err != nil || h == nil {
		return err
	}
	return w.drainHeld(ctx, h, q)
}

// DrainOrHandOff is the worker a hook starts: it drains queue q as Drain
// with wait does, but a job that cannot start at once (no slot, no build
// host, no space) does not wait in this process: the queue goes to the
// data directory's dispatcher, which holds every waiting queue in one
// process (package queue, hand-off), or this process becomes the
// dispatcher and runs until it holds no queue.
func (w *Worker) DrainOrHandOff(ctx context.Context, q string) error {
	h, err := w.Store.HoldQueue(q, true)
	if err != nil || h == nil {
		return err
	}
	hw := *w
	hw.handOff = true
	if err := hw.drainHeld(ctx, h, q); !errors.Is(err, errHandOff) {
		return err
	}
	d, kept, err := h.HandOff()
	switch {
	case err != nil && kept:
		w.logf("queue %s: %v; its jobs wait in this worker", q, err)
		return w.drainHeld(ctx, h, q)
	case err != nil:
		return err
	case d == nil:
		return nil // the dispatcher takes the queue
	case kept:
		return w.dispatch(ctx, d, func(ctx context.Context) error { return w.drainHeld(ctx, h, q) }, q)
	default:
		return w.dispatch(ctx, d, nil, "")
	}
}

// drainHeld is Drain's loop on held queue q. A worker that hands off
// (handOff) returns errHandOff with q still held.
func (w *Worker) drainHeld(ctx context.Context, h *queue.Hold, q string) error {
	for {
		w.recover(ctx, h)
		var failed string // the last failure logged
		var backoff time.Duration
		for ctx.Err() == nil {
			es, err := h.Pending()
			if err != nil {
				h.Unlock()
				return fmt.Errorf("drain %s: %w", q, err)
			}
			if len(es) == 0 {
				break
			}
			err = w.runEntry(ctx, h, q, es[0])
			if errors.Is(err, errHandOff) {
				return err
			}
			if err == nil || ctx.Err() != nil {
				failed, backoff = "", 0
				continue
			}
			// jobq's own files fail (a slot directory made unusable, say):
			// say so once, and try again less and less often.
			if msg := err.Error(); msg != failed {
				w.logf("queue %s: %v; trying again, at most every %s", q, err, maxBackoff)
				failed = msg
			}
			backoff = min(max(2*backoff, w.poll()), maxBackoff)
			w.wait(ctx, backoff)
		}
		if ctx.Err() != nil {
			h.Unlock()
			return ctx.Err()
		}
		// No lost wake-up: look again after letting go (package queue).
		if again, err := h.Release(); err != nil || !again {
			return err
		}
	}
}

// Recover settles what a dead worker left in queue q, if no worker holds it,
// and reports whether jobs are waiting there.
func (w *Worker) Recover(ctx context.Context, q string) (pending bool, err error) {
	h, err := w.Store.HoldQueue(q, false)
	if err != nil || h == nil {
		return false, err
	}
	w.recover(ctx, h)
	h.Unlock()
	return w.Store.HasPending(q)
}

// recover settles, in the held queue, the jobs of a worker that died or
// stopped: it adopts each job that was running, one at a time, before the
// queue's next job starts (FIFO).
func (w *Worker) recover(ctx context.Context, h *queue.Hold) {
	for _, c := range h.Recover(w.logf) {
		w.adopt(ctx, h, c)
	}
}

// adopt takes over a job a dead or stopped worker left running: a slot at
// once (it runs already), then the job, through its runner, to its end.
func (w *Worker) adopt(ctx context.Context, h *queue.Hold, c *queue.Claim) {
	if ctx.Err() != nil {
		h.Leave(c)
		return
	}
	if err := h.Adopt(c); err != nil {
		w.logf("%v", err)
		h.Leave(c)
		return
	}
	faults.Point("adopt-marked")
	slot, err := w.Store.AdoptSlot(c.Job.User)
	if err != nil {
		w.logf("adopt %s %d: %v", c.Job.Repo, c.Job.ID, err)
	} else {
		defer slot.Release()
	}
	w.finishClaim(ctx, h, c, true)
}

// Tidy retries the clean-up of repo's finished jobs whose clean-up failed,
// then prunes the repository to its newest keep jobs (jobq gc).
func (w *Worker) Tidy(ctx context.Context, repo string, keep int) error {
	js, err := w.Store.Unclean(repo)
	if err != nil {
		return err
	}
	for _, j := range js {
		w.cleanup(ctx, j)
	}
	return w.Store.Prune(repo, keep)
}

// cleanup has j's runner remove what j used; a failure is logged, and the
// runner's records keep the job for the next try (jobq gc).
func (w *Worker) cleanup(ctx context.Context, j *queue.Job) {
	r, ok := w.Runners[j.Options.Runner]
	if !ok {
		return
	}
	if err := r.Cleanup(ctx, runner.Job{Job: j, Dir: w.Store.RunDir(j)}); err != nil {
		w.logf("clean up after %s %d: %s", j.Repo, j.ID, oneLine(err))
	}
}

func (w *Worker) logLimit() int64 {
	if w.LogLimit > 0 {
		return w.LogLimit
	}
	return DefaultLogLimit
}

func (w *Worker) logf(format string, args ...any) {
	if w.Logf != nil {
		w.Logf(format, args...)
	}
}

func (w *Worker) poll() time.Duration {
	if w.Poll > 0 {
		return w.Poll
	}
	return 200 * time.Millisecond
}

func (w *Worker) slots() int { return max(w.Slots, 1) }

func (w *Worker) userSlots() int {
	switch {
	case w.UserSlots > 0:
		return w.UserSlots
	case w.slots() >= 2:
		return w.slots() - 1
	default:
		return 1
	}
}

// wait waits for d or until ctx ends, and reports whether ctx still lives.
func (w *Worker) wait(ctx context.Context, d time.Duration) bool {
	if w.pause != nil {
		return w.pause(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// acquireSlot waits until queued job j of queue q may start: while the data
// directory's filesystem is short of MinFree, and until the slot protocol
// (package doc) gives it a slot. Why it waits goes to the listing (Waiting),
// and a wait for space to its log too. It returns errNotQueued when the
// job was cancelled meanwhile.
func (w *Worker) acquireSlot(ctx context.Context, q string, j *queue.Job) (release func(), host string, err error) {
	if p, ok := w.Runners[j.Options.Runner].(runner.Placer); ok {
		release, host, done, err := w.acquireHost(ctx, p, j)
		if done || err != nil {
			return release, host, err
		}
	}
	slot, err := w.acquireLocalSlot(ctx, q, j)
	if err != nil || slot == nil {
		return nil, "", err
	}
	return slot.Release, "", nil
}

// acquire waits until queued job j of queue q may start: for its slot or
// build host (acquireSlot), then for what its runner reserves (reserve).
// release frees both, the reservation first: a job that holds a slot
// finds a reservation free.
func (w *Worker) acquire(ctx context.Context, q string, j *queue.Job) (release func(), host string, err error) {
	slot, host, err := w.acquireSlot(ctx, q, j)
	if err != nil {
		return nil, "", err
	}
	r, ok := w.Runners[j.Options.Runner].(runner.Reserver)
	if !ok {
		return slot, host, nil
	}
	placed := *j
	placed.Host = host
	reserved, err := w.reserve(ctx, r, &placed)
	if err != nil {
		if slot != nil {
			slot()
		}
		return nil, "", err
	}
	return func() {
		if reserved != nil {
			reserved()
		}
		if slot != nil {
			slot()
		}
	}, host, nil
}

// reserve waits until r has reserved what queued job j needs besides its
// slot, which j holds meanwhile: a reservation is only taken with a slot,
// so a pusher's cap of slots caps its reservations too, and with no more
// slots than reservations (jobq-worker caps JOBQ_SLOTS at the account's
// ID ranges) a job waits here only for one whose clean-up is under way or
// whose job is still to adopt. Why it waits goes to the listing and its
// log, as for a slot.
func (w *Worker) reserve(ctx context.Context, r runner.Reserver, j *queue.Job) (release func(), err error) {
	shown := ""
	defer func() {
		if shown != "" {
			w.Store.SetWaiting(j, "")
		}
	}()
	for {
		release, reason, err := r.Reserve(ctx, j)
		if err != nil || reason == "" {
			return release, err
		}
		if w.handOff {
			return nil, errHandOff // its slot goes with it, and the dispatcher waits
		}
		if reason != shown {
			w.Store.SetWaiting(j, reason)
			w.logWait(j, reason)
			shown = reason
		}
		if !w.wait(ctx, w.poll()) {
			return nil, ctx.Err()
		}
		if cur, err := w.Store.Job(j.Repo, j.ID); err == nil && cur.State != queue.Queued {
			return nil, errNotQueued
		}
	}
}

// acquireHost waits until a runner.Placer gives queued job j a build host, as
// acquireSlot waits for a local slot; done false: j runs on this machine.
// While no host of j's pool can be reached at all (not merely all busy),
// j waits at most its timeout (unreachable).
func (w *Worker) acquireHost(ctx context.Context, p runner.Placer, j *queue.Job) (release func(), host string, done bool, err error) {
	shown := ""
	defer func() {
		if shown != "" {
			w.Store.SetWaiting(j, "")
		}
	}()
	var down unreachable
	for {
		host, release, reason, err := p.Place(ctx, j)
		if reason, err = down.look(w, j, reason, err); err != nil || host != "" {
			return release, host, true, err
		}
		if reason == "" {
			return nil, "", false, nil
		}
		if w.handOff {
			return nil, "", true, errHandOff
		}
		if reason != shown {
			w.Store.SetWaiting(j, reason)
			w.logWait(j, reason)
			shown = reason
		}
		// A look costs a few flocks, no connection: look often, as a host's
		// slot is let go the moment its job's clean-up is done.
		if !w.wait(ctx, min(w.poll(), hostPoll)) {
			return nil, "", true, ctx.Err()
		}
		if cur, err := w.Store.Job(j.Repo, j.ID); err == nil && cur.State != queue.Queued {
			return nil, "", true, errNotQueued
		}
	}
}

// unreachable is how long a job has waited for a build host that cannot be
// reached: a host that is down, or whose key known_hosts lacks, is no
// reason to block the job's queue forever, where a busy one frees.
type unreachable struct {
	since  time.Time // zero: a host was reachable at the last look
	logged string    // the detail last logged
}

// look turns Place's answer into why j waits: a reader sees one generic
// line, the worker's log the detail (addresses, known_hosts) once per
// change. It returns errUnreachable once no host could be reached for
// j's timeout.
func (u *unreachable) look(w *Worker, j *queue.Job, reason string, err error) (string, error) {
	if !errors.Is(err, runner.ErrUnreachable) {
		u.since, u.logged = time.Time{}, ""
		return reason, err
	}
	if msg := oneLine(err); msg != u.logged {
		w.logf("%s %d waits: %s", j.Repo, j.ID, msg)
		u.logged = msg
	}
	if u.since.IsZero() {
		u.since = time.Now()
	}
	if time.Since(u.since) >= j.Options.Timeout {
		return "", errUnreachable
	}
	return runner.ErrUnreachable.Error(), nil
}

// acquireLocalSlot waits for a slot of this machine's (see acquireSlot).
func (w *Worker) acquireLocalSlot(ctx context.Context, q string, j *queue.Job) (*queue.Slot, error) {
	sw := w.Store.WaitForSlot(q, j)
	defer sw.Leave()
	shown, logged := "", false
	defer func() {
		if shown != "" {
			w.Store.SetWaiting(j, "")
		}
	}()
	for {
		reason, err := w.lowSpace()
		if err != nil {
			return nil, err
		}
		if reason != "" {
			// No job may start here: not a waiter for a slot meanwhile.
			sw.Leave()
			if w.handOff {
				return nil, errHandOff // the dispatcher logs the wait
			}
			if !logged {
				w.logWait(j, reason)
				logged = true
			}
		} else {
			var slot *queue.Slot
			slot, reason, err = sw.Try(w.slots(), w.userSlots())
			if err != nil || slot != nil {
				return slot, err
			}
		}
		if w.handOff {
			return nil, errHandOff // the dispatcher waits, in its place in line
		}
		if reason != shown {
			w.Store.SetWaiting(j, reason)
			shown = reason
		}
		// Far back in line, look less often (see place); at most every
		// 25 intervals, for a dead holder's slot.
		if !w.wait(ctx, w.poll()*time.Duration(1+min(sw.Place(), 24))) {
			return nil, ctx.Err()
		}
		if cur, err := w.Store.Job(j.Repo, j.ID); err == nil && cur.State != queue.Queued {
			return nil, errNotQueued
		}
	}
}

// logWait tells a job's log why it has not started: a reader following it
// (a synchronous push) sees it at once, and it stays if the job is
// cancelled before it starts.
func (w *Worker) logWait(j *queue.Job, reason string) {
	f, err := os.OpenFile(w.Store.LogPath(j.Repo, j.ID), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	queue.WriteOwn(f, fmt.Sprintf("jobq: job %d waits to start: %s\n", j.ID, reason))
	f.Close()
}

// runEntry claims, runs and finishes the job of one pending entry. It
// returns an error only when jobq's own files fail, for Drain to back off.
func (w *Worker) runEntry(ctx context.Context, h *queue.Hold, q string, e queue.Entry) error {
	c, err := h.Peek(e)
	if err != nil {
		return err // Drain logs it once and backs off
	}
	if c == nil {
		return nil // never committed: the entry is gone
	}
	if c.Job.State == queue.Queued {
		release, host, err := w.acquire(ctx, q, c.Job)
		switch {
		case errors.Is(err, errNotQueued): // the claim below skips it
		case errors.Is(err, errUnreachable):
			return w.failUnstarted(h, c, fmt.Sprintf("%v: none of its build hosts could be reached within JOBQ_TIMEOUT=%s; it never started",
				runner.ErrUnreachable, c.Job.Options.Timeout))
		case err != nil:
			h.Drop(c)
			return err
		default:
			if release != nil {
				defer release()
			}
			// Before the claim: a worker that dies after it leaves the
			// host for the clean-up to find.
			if host != "" {
				if _, err := w.Store.Update(c.Job.Repo, c.Job.ID, func(r *queue.Job) error {
					r.Host = host
					return nil
				}); err != nil {
					h.Drop(c)
					return err
				}
			}
		}
	}
	if err := h.Claim(c); err != nil {
		h.Drop(c)
		return err
	}
	w.finishClaim(ctx, h, c, false)
	return nil
}

// failUnstarted claims queued job c and records it failed for reason,
// without running it: the log gets its header and result line as a run's
// does. A job cancelled meanwhile stays cancelled.
func (w *Worker) failUnstarted(h *queue.Hold, c *queue.Claim, reason string) error {
	if err := h.Claim(c); err != nil {
		h.Drop(c)
		return err
	}
	j := c.Job
	if j.State == queue.Running {
		log, err := os.OpenFile(w.Store.LogPath(j.Repo, j.ID), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
		if err == nil {
			io.WriteString(log, header(j))
			defer log.Close()
		}
		w.finish(j, queue.Failed, nil, reason, log)
	}
	h.Done(c)
	if err := w.Store.Prune(j.Repo, j.Options.Keep); err != nil {
		w.logf("%v", err)
	}
	return nil
}

// finishClaim runs (or, adopted, takes over) a claimed job, records how it
// ended, has its runner clean up, and ends the claim; a job left running
// for the next worker (the worker stops) keeps its claim's entry.
func (w *Worker) finishClaim(ctx context.Context, h *queue.Hold, c *queue.Claim, adopted bool) {
	j := c.Job
	switch j.State {
	case queue.Running:
		if w.run(ctx, j, adopted) {
			h.Leave(c)
			return
		}
		w.cleanup(context.WithoutCancel(ctx), j)
	case queue.Lost:
		w.cleanup(ctx, j)
	}
	h.Done(c)
	if j.State != queue.Queued {
		if err := w.Store.Prune(j.Repo, j.Options.Keep); err != nil {
			w.logf("%v", err)
		}
	}
}

// run runs a claimed job, or takes over an adopted one, and records how it
// ended. It reports whether it left the job running instead (the worker
// stops).
func (w *Worker) run(ctx context.Context, j *queue.Job, adopted bool) (left bool) {
	log, err := os.OpenFile(w.Store.LogPath(j.Repo, j.ID), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		w.finish(j, queue.Failed, nil, fmt.Sprintf("open log: %v", err), nil)
		return false
	}
	defer log.Close()
	// The log limit counts from the header's end. An adopting worker
	// writes no header; the one there is the same text, after the lines
	// (if any) saying why the job waited.
	hdr := header(j)
	start := int64(len(hdr))
	if !adopted {
		queue.WriteOwn(log, hdr)
		start, _ = log.Seek(0, io.SeekEnd)
	}
	limit := start + w.logLimit()

	// The job's context ends with the worker's only as ErrStopping: the
	// runner then leaves a started job running for the next worker.
	jctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() { cancel(runner.ErrStopping) })
	defer stop()
	// The deadline is the job's, from its start: an adopting worker
	// enforces what is left of it.
	timer := time.AfterFunc(time.Until(j.StartedAt.Add(j.Options.Timeout)), func() { cancel(errTimeout) })
	defer timer.Stop()
	go func() {
		t := time.NewTicker(w.poll())
		defer t.Stop()
		var looked time.Time
		for {
			select {
			case <-jctx.Done():
				return
			case now := <-t.C:
				if w.Store.CancelRequested(j.Repo, j.ID) {
					cancel(errCancelled)
				}
				if fi, err := log.Stat(); err == nil && fi.Size() > limit {
					cancel(runner.ErrLogLimit)
				}
				if now.Sub(looked) >= spaceEvery {
					looked = now
					if why := w.spaceGone(); why != "" {
						cancel(lowSpaceError(why))
					}
				}
			}
		}
	}()

	exit, runErr := 0, error(nil)
	secrets, mask, secErr := w.jobSecrets(jctx, j, log, adopted)
	r, ok := w.Runners[j.Options.Runner]
	switch {
	case !ok:
		runErr = fmt.Errorf("runner %q is not available in this worker", j.Options.Runner)
	case secErr != nil:
		runErr = secErr
	case adopted:
		exit, runErr = r.Adopt(jctx, runner.Job{Job: j, Log: log, Dir: w.Store.RunDir(j), Secrets: secrets, Mask: mask}, runner.Notice)
	default:
		exit, runErr = r.Run(jctx, runner.Job{Job: j, Log: log, Dir: w.Store.RunDir(j), Secrets: secrets, Mask: mask})
	}
	if errors.Is(runErr, runner.ErrDetached) {
		return true
	}
	faults.Point("run-returned")
	// How the job ended is settled here: its deadline or a cancel request
	// during the collection of its artifacts changes nothing.
	cause := context.Cause(jctx)
	if runErr == nil && w.collect(ctx, r, j, log) {
		return true
	}
	code := &exit
	if runErr != nil {
		code = nil // it ended before any exit code, say in a checkout stopped by a timeout
	}
	var state queue.State
	var reason string
	var low lowSpaceError
	switch {
	case errors.Is(runErr, runner.ErrGone):
		state, reason = queue.Lost, fmt.Sprintf("its worker died while it ran, and %v", runErr)
	case errors.Is(cause, errTimeout):
		state, reason = queue.TimedOut, fmt.Sprintf("exceeded JOBQ_TIMEOUT=%s", j.Options.Timeout)
	case errors.Is(cause, errCancelled):
		state, reason = queue.Cancelled, "cancelled by request"
	case errors.Is(cause, runner.ErrLogLimit):
		// What came after the limit is dropped; the log says where.
		log.Truncate(limit)
		state = queue.Failed
		reason = fmt.Sprintf("output cut at the log limit of %d bytes (JOBQ_LOG_LIMIT); the job was stopped", w.logLimit())
	case errors.Is(cause, runner.ErrStopping):
		state, reason = queue.Cancelled, "the worker was stopped before the job started"
	case errors.As(cause, &low):
		state, reason = queue.Failed, "the job was stopped: "+string(low)
	case errors.Is(runErr, runner.ErrLost):
		state, reason, code = queue.Lost, oneLine(runErr), nil
	case runErr != nil:
		state, reason, code = queue.Failed, oneLine(runErr), nil
	case exit == 0:
		state = queue.Succeeded
	default:
		state = queue.Failed
	}
	w.finish(j, state, code, reason, log)
	return false
}

// finish writes the log's result line, then the record's final state: a
// reader that sees the final state has the whole log.
func (w *Worker) finish(j *queue.Job, state queue.State, code *int, reason string, log *os.File) {
	now := time.Now().UTC()
	if log != nil {
		line := "jobq: " + string(state)
		if code != nil {
			line += fmt.Sprintf(", exit code %d", *code)
		}
		if reason != "" {
			line += ": " + reason
		}
		line += fmt.Sprintf(", after %s\n", now.Sub(j.StartedAt).Round(time.Millisecond))
		// On a line of its own, recorded as jobq's (queue.WriteOwn).
		queue.WriteOwn(log, line)
		log.Sync()
	}
	notified := false
	if w.Notifier != nil {
		final := *j
		final.State, final.FinishedAt, final.ExitCode, final.Error = state, now, code, reason
		var err error
		if notified, err = w.Notifier.Prepare(&final); err != nil {
			w.logf("notify %s %d: %v", j.Repo, j.ID, err)
		}
	}
	_, err := w.Store.Update(j.Repo, j.ID, func(r *queue.Job) error {
		r.State, r.FinishedAt, r.ExitCode, r.Error = state, now, code, reason
		return nil
	})
	if err != nil {
		w.logf("finish %s %d: %v", j.Repo, j.ID, err)
	}
	faults.Point("notify-recorded")
	if notified && err == nil {
		w.Notifier.Send(j)
	}
}

func header(j *queue.Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "jobq: job %d of %s, queue %s, %s by %s\n", j.ID, j.Repo, j.Queue, startedBy(j), cmp.Or(j.User, "-"))
	fmt.Fprintf(&b, "jobq: ref %s, revision %s\n", j.Ref, j.NewRev)
	fmt.Fprintf(&b, "jobq: runner %s: %s\n", j.Options.Runner, j.Options.Command)
	if j.Host != "" {
		fmt.Fprintf(&b, "jobq: build host %s\n", j.Host)
	}
	fmt.Fprintf(&b, "jobq: queued %s, started %s\n", j.QueuedAt.Local().Format(queue.TimeFormat), j.StartedAt.Local().Format(queue.TimeFormat))
	return b.String()
}

// startedBy is how the header says the job started: pushed, retried or run
// (jobq run; by "-", the hosting account, when its cron runs it).
func startedBy(j *queue.Job) string {
	switch j.StartedBy() {
	case queue.OriginRetry:
		return "retried"
	case queue.OriginRun:
		return "run"
	}
	return "pushed"
}

// oneLine is the one place an error becomes text: one line (a registry's
// answer spans many), bounded, for a log or the worker's own log.
func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
