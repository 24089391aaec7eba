package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"
)

// Why a job's context ends early; see context.Cause.
var (
	ErrTimeout   = errors.New("timed out")
	ErrCancelled = errors.New("cancelled")
	ErrLogLimit  = errors.New("log limit reached")
)

// DefaultLogLimit bounds a job's log (JOBQ_LOG_LIMIT of the worker): more
// than a person reads, and with JOBQ_KEEP's 200 jobs at most 1.6 GiB of
// logs per repository.
const DefaultLogLimit = 8 << 20

// maxBackoff is the longest pause between tries when jobq's own files fail.
const maxBackoff = 30 * time.Second

// RunFunc runs one job, writing its output to log, until it exits or ctx
// ends; then it must stop the job (SIGTERM, a grace period, SIGKILL) and
// return. exit is the job's exit status; err is jobq's own failure to run it,
// one line for the log.
type RunFunc func(ctx context.Context, j *Job, log *os.File) (exit int, err error)

// Worker drains queues, one job at a time per queue, at most Slots jobs at a
// time on the host.
type Worker struct {
	Store *Store
	Run   RunFunc
	// Cleanup removes what a job used (containers, checkouts): after every
	// job, once its result is recorded (so the result is not kept waiting),
	// and for a job whose worker died. It may be nil, and must be safe to
	// call more than once.
	Cleanup func(ctx context.Context, j *Job) error
	Slots   int           // host-wide limit of running jobs; < 1: 1
	Poll    time.Duration // how often to look for cancellation and free slots
	// UserSlots caps one pusher's (Job.User) running jobs on the host,
	// across all queues and workers; < 1: every slot but one when there
	// are two or more, else 1.
	UserSlots int
	// MinFree is the free space the data directory's filesystem must keep:
	// while it has less, no job starts (jobs wait). <= 0: no check.
	MinFree int64
	// FreeSpace reports the free space of dir's filesystem; nil: FreeSpace.
	FreeSpace func(dir string) (int64, error)
	// LogLimit bounds each job's output in its log; a job that writes more
	// is stopped and fails, and its log is cut there. <= 0: DefaultLogLimit.
	LogLimit int64
	Logf     func(format string, args ...any)
	// Crash, if set, is called at each phase of a job (claimed, run-returned)
	// with the phase's name: the fault-injection build kills the worker there.
	Crash func(point string)

	// idle, if set, runs when the worker found the queue empty and still
	// holds it: the wake-up tests push a job into that window.
	idle func()
	// pause, if set, replaces the worker's waits (for a slot, for space,
	// after a failure): the tests count them.
	pause func(ctx context.Context, d time.Duration) bool
	// attempt, if set, runs at each try to take a slot: the tests count them.
	attempt func()
}

// Drain runs queue q until it is empty. With wait (a worker a hook
// started), it waits for the queue's start lock and then its worker lock;
// without, it returns at once if another worker holds the queue.
func (w *Worker) Drain(ctx context.Context, q string, wait bool) error {
	l, err := w.Store.queueLock(q)
	if err != nil {
		return err
	}
	if wait {
		start := flock.New(filepath.Join(w.Store.queueDir(q), "start.lock"), flock.SetPermissions(0o600))
		if err := start.Lock(); err != nil {
			return fmt.Errorf("drain %s: %w", q, err)
		}
		err = l.Lock()
		start.Unlock() // hooks now see the worker lock taken
	} else {
		var ok bool
		ok, err = l.TryLock()
		if err == nil && !ok {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("drain %s: %w", q, err)
	}
	for {
		w.recover(ctx, q)
		var failed string // the last failure logged
		var backoff time.Duration
		for ctx.Err() == nil {
			es, err := w.Store.entries(q, "pending")
			if err != nil {
				l.Unlock()
				return fmt.Errorf("drain %s: %w", q, err)
			}
			if len(es) == 0 {
				break
			}
			err = w.runEntry(ctx, q, es[0])
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
		if w.idle != nil {
			w.idle()
		}
		l.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// No lost wake-up: look again after letting go (package doc).
		if more, err := w.Store.HasPending(q); err != nil || !more {
			return err
		}
		if ok, err := l.TryLock(); err != nil || !ok {
			return err
		}
	}
}

// Recover settles what a dead worker left in queue q, if no worker holds it,
// and reports whether jobs are waiting there.
func (w *Worker) Recover(ctx context.Context, q string) (pending bool, err error) {
	l, err := w.Store.queueLock(q)
	if err != nil {
		return false, err
	}
	ok, err := l.TryLock()
	if err != nil || !ok {
		return false, err
	}
	w.recover(ctx, q)
	l.Unlock()
	return w.Store.HasPending(q)
}

// Tidy retries the clean-up of repo's finished jobs whose clean-up failed,
// then prunes the repository to its newest keep jobs (jobq gc).
func (w *Worker) Tidy(ctx context.Context, repo string, keep int) error {
	js, err := w.Store.Unclean(repo)
	if err != nil {
		return err
	}
	for _, j := range js {
		if w.Cleanup == nil {
			break
		}
		if err := w.Cleanup(ctx, j); err != nil {
			w.logf("clean up after %s %d: %v", j.Repo, j.ID, err)
		}
	}
	return w.Store.Prune(repo, keep)
}

func (w *Worker) crash(point string) {
	w.Store.crashPoint(point)
	if w.Crash != nil {
		w.Crash(point)
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
	return pause(ctx, d)
}

// acquireSlot waits until queued job j of queue q may start: while the data
// directory's filesystem is short of MinFree, and until the slot protocol
// (package doc) gives it a slot. Why it waits goes to the listing (Waiting),
// and a wait for space to its log too. It returns errNotQueued when the
// job was cancelled meanwhile.
func (w *Worker) acquireSlot(ctx context.Context, q string, j *Job) (*flock.Flock, error) {
	sw := w.Store.newSlotWait(q, j)
	defer sw.leave()
	shown, logged := "", false
	defer func() {
		if shown != "" {
			w.Store.setWaiting(j, "")
		}
	}()
	for {
		if w.attempt != nil {
			w.attempt()
		}
		reason, err := w.lowSpace()
		if err != nil {
			return nil, err
		}
		if reason != "" {
			// No job may start here: not a waiter for a slot meanwhile.
			sw.leave()
			if !logged {
				w.logWait(j, reason)
				logged = true
			}
		} else {
			var slot *flock.Flock
			slot, reason, err = sw.try(w.slots(), w.userSlots())
			if err != nil || slot != nil {
				return slot, err
			}
		}
		if reason != shown {
			w.Store.setWaiting(j, reason)
			shown = reason
		}
		// Far back in line, look less often (see place); at most every
		// 25 intervals, for a dead holder's slot.
		if !w.wait(ctx, w.poll()*time.Duration(1+min(sw.place, 24))) {
			return nil, ctx.Err()
		}
		if cur, err := w.Store.Job(j.Repo, j.ID); err == nil && cur.State != Queued {
			return nil, errNotQueued
		}
	}
}

// logWait tells a job's log why it has not started: a reader following it
// (a synchronous push) sees it at once, and it stays if the job is
// cancelled before it starts.
func (w *Worker) logWait(j *Job, reason string) {
	f, err := os.OpenFile(w.Store.LogPath(j.Repo, j.ID), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "jobq: job %d waits to start: %s\n", j.ID, reason)
	f.Close()
}

// runEntry claims, runs and finishes the job of one pending entry. It
// returns an error only when jobq's own files fail, for Drain to back off.
func (w *Worker) runEntry(ctx context.Context, q string, e entry) error {
	pending := filepath.Join(w.Store.queueDir(q), "pending", e.name)
	// Under the repository lock: an enqueue in progress commits first.
	j, err := w.Store.Update(e.repo, e.id, func(*Job) error { return errUnchanged })
	if !errors.Is(err, errUnchanged) {
		if !errors.Is(err, ErrNotFound) {
			w.logf("claim %s %d: %v", e.repo, e.id, err)
		}
		os.Remove(pending) // dangling (never committed) or unreadable
		return nil
	}
	if j.State == Queued {
		slot, err := w.acquireSlot(ctx, q, j)
		switch {
		case errors.Is(err, errNotQueued): // the claim below skips it
		case err != nil:
			return err
		default:
			defer slot.Unlock()
		}
	}
	qdir := w.Store.queueDir(q)
	running := filepath.Join(qdir, "running", e.name)
	if err := os.Rename(pending, running); err != nil {
		return fmt.Errorf("claim %s %d: %w", e.repo, e.id, err)
	}
	syncDir(filepath.Join(qdir, "running"))
	w.crash("claim-moved")
	j, err = w.Store.Update(e.repo, e.id, func(j *Job) error {
		switch j.State {
		case Queued:
			if deletedSince(j) {
				j.State, j.FinishedAt = Cancelled, time.Now().UTC()
				j.Error = "its repository was deleted before it ran"
				return nil
			}
			j.State, j.StartedAt, j.Worker = Running, time.Now().UTC(), os.Getpid()
			return nil
		case Running: // claimed before by a worker that died: never run twice
			markLost(j)
			return nil
		}
		return errUnchanged // cancelled while queued
	})
	if err != nil || j.State != Running {
		if err != nil && !errors.Is(err, errUnchanged) && !errors.Is(err, ErrNotFound) {
			w.logf("claim %s %d: %v", e.repo, e.id, err)
		}
		if err == nil && j.State == Lost && w.Cleanup != nil {
			w.Cleanup(ctx, j)
		}
		os.Remove(running)
		return nil
	}
	w.crash("claim-marked")
	w.run(ctx, j)
	if w.Cleanup != nil {
		if err := w.Cleanup(context.WithoutCancel(ctx), j); err != nil {
			w.logf("clean up after %s %d: %v", j.Repo, j.ID, err)
		}
	}
	os.Remove(running)
	os.Remove(filepath.Join(w.Store.jobDir(j.Repo, j.ID), "cancel"))
	if err := w.Store.Prune(j.Repo, j.Options.Keep); err != nil {
		w.logf("%v", err)
	}
	return nil
}

func markLost(j *Job) {
	j.State, j.FinishedAt = Lost, time.Now().UTC()
	j.Error = fmt.Sprintf("its worker (pid %d) died while it ran", j.Worker)
}

// run runs a claimed job and records how it ended.
func (w *Worker) run(ctx context.Context, j *Job) {
	log, err := os.OpenFile(w.Store.LogPath(j.Repo, j.ID), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		w.finish(j, Failed, nil, fmt.Sprintf("open log: %v", err), nil)
		return
	}
	defer log.Close()
	io.WriteString(log, header(j))
	start, _ := log.Seek(0, io.SeekEnd)
	limit := start + w.logLimit()

	jctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(j.Options.Timeout, func() { cancel(ErrTimeout) })
	defer timer.Stop()
	go func() {
		t := time.NewTicker(w.poll())
		defer t.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-t.C:
				if w.Store.cancelRequested(j.Repo, j.ID) {
					cancel(ErrCancelled)
				}
				if fi, err := log.Stat(); err == nil && fi.Size() > limit {
					cancel(ErrLogLimit)
				}
			}
		}
	}()

	exit, runErr := w.Run(jctx, j, log)
	w.crash("run-returned")
	code := &exit
	if runErr != nil {
		code = nil // it ended before any exit code, say in a checkout stopped by a timeout
	}
	var state State
	var reason string
	switch cause := context.Cause(jctx); {
	case errors.Is(cause, ErrTimeout):
		state, reason = TimedOut, fmt.Sprintf("exceeded JOBQ_TIMEOUT=%s", j.Options.Timeout)
	case errors.Is(cause, ErrCancelled):
		state, reason = Cancelled, "cancelled by request"
	case errors.Is(cause, ErrLogLimit):
		// What came after the limit is dropped; the log says where.
		log.Truncate(limit)
		state = Failed
		reason = fmt.Sprintf("output cut at the log limit of %d bytes (JOBQ_LOG_LIMIT); the job was stopped", w.logLimit())
	case ctx.Err() != nil:
		state, reason = Cancelled, "the worker was stopped"
	case runErr != nil:
		state, reason, code = Failed, oneLine(runErr.Error()), nil
	case exit == 0:
		state = Succeeded
	default:
		state = Failed
	}
	w.finish(j, state, code, reason, log)
}

// finish writes the log's result line, then the record's final state: a
// reader that sees the final state has the whole log.
func (w *Worker) finish(j *Job, state State, code *int, reason string, log *os.File) {
	now := time.Now().UTC()
	if log != nil {
		if fi, err := log.Stat(); err == nil && fi.Size() > 0 {
			b := make([]byte, 1)
			if _, err := log.ReadAt(b, fi.Size()-1); err == nil && b[0] != '\n' {
				io.WriteString(log, "\n")
			}
		}
		line := "jobq: " + string(state)
		if code != nil {
			line += fmt.Sprintf(", exit code %d", *code)
		}
		if reason != "" {
			line += ": " + reason
		}
		line += fmt.Sprintf(", after %s\n", now.Sub(j.StartedAt).Round(time.Millisecond))
		io.WriteString(log, line)
		log.Sync()
	}
	_, err := w.Store.Update(j.Repo, j.ID, func(r *Job) error {
		r.State, r.FinishedAt, r.ExitCode, r.Error = state, now, code, reason
		return nil
	})
	if err != nil {
		w.logf("finish %s %d: %v", j.Repo, j.ID, err)
	}
}

func header(j *Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "jobq: job %d of %s, queue %s, pushed by %s\n", j.ID, j.Repo, j.Queue, orDash(j.User))
	fmt.Fprintf(&b, "jobq: ref %s, revision %s\n", j.Ref, j.NewRev)
	if j.Options.Runner == "exec" {
		fmt.Fprintf(&b, "jobq: runner exec: %s\n", j.Options.Command)
	} else {
		fmt.Fprintf(&b, "jobq: runner podman: %s\n", j.Options.Command)
	}
	fmt.Fprintf(&b, "jobq: queued %s, started %s\n", j.QueuedAt.Local().Format(TimeFormat), j.StartedAt.Local().Format(TimeFormat))
	return b.String()
}

// TimeFormat is how jobq shows times to people.
const TimeFormat = "2006-01-02 15:04:05"

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// recover settles what a dead worker of queue q left in running/: a job it
// had not started goes back to pending; one it may have started is lost.
func (w *Worker) recover(ctx context.Context, q string) {
	es, err := w.Store.entries(q, "running")
	if err != nil {
		w.logf("recover %s: %v", q, err)
		return
	}
	qdir := w.Store.queueDir(q)
	for _, e := range es {
		path := filepath.Join(qdir, "running", e.name)
		j, err := w.Store.Update(e.repo, e.id, func(j *Job) error {
			if j.State != Running {
				return errUnchanged
			}
			markLost(j)
			return nil
		})
		switch {
		case errors.Is(err, errUnchanged) && j.State == Queued:
			if err := os.Rename(path, filepath.Join(qdir, "pending", e.name)); err != nil {
				w.logf("recover %s %d: %v", e.repo, e.id, err)
			}
			continue
		case err == nil:
			if f, err := os.OpenFile(w.Store.LogPath(j.Repo, j.ID), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
				fmt.Fprintf(f, "\njobq: lost: %s\n", j.Error)
				f.Close()
			}
			if w.Cleanup != nil {
				if err := w.Cleanup(ctx, j); err != nil {
					w.logf("clean up after %s %d: %v", j.Repo, j.ID, err)
				}
			}
		case errors.Is(err, errUnchanged), errors.Is(err, ErrNotFound):
			// finished, or never committed
		default:
			w.logf("recover %s %d: %v", e.repo, e.id, err)
			continue
		}
		os.Remove(path)
	}
}

// Follow copies the job's log to out as it grows, until the job ends, and
// returns the job as it ended. It gives up on a running job whose worker
// died (the next worker marks it lost). It wakes when the job's directory
// changes, and looks at least every maxPoll.
func (s *Store) Follow(ctx context.Context, repo string, id int64, out io.Writer, maxPoll time.Duration) (*Job, error) {
	if err := ValidName(repo); err != nil {
		return nil, err
	}
	var w *watcher // made when there is something to wait for
	defer func() { w.close() }()
	var log *os.File
	defer func() {
		if log != nil {
			log.Close()
		}
	}()
	for {
		j, err := s.Job(repo, id)
		if err != nil {
			return nil, err
		}
		if log == nil {
			log, _ = os.Open(s.LogPath(repo, id))
		}
		if log != nil {
			if _, err := io.Copy(out, log); err != nil {
				return j, fmt.Errorf("follow %s %d: %w", repo, id, err)
			}
		}
		if j.State.Final() {
			return j, nil
		}
		if j.State == Running && !alive(j.Worker) {
			if j2, err := s.Job(repo, id); err == nil && j2.State == Running {
				return j2, fmt.Errorf("follow %s %d: its worker (pid %d) died; the next worker marks it lost", repo, id, j.Worker)
			}
			continue
		}
		if ctx.Err() != nil {
			return j, ctx.Err()
		}
		if w == nil {
			if w = watch(s.jobDir(repo, id)); w != nil {
				continue // a change before the watch began would be missed
			}
		}
		w.wait(maxPoll)
	}
}

func alive(pid int) bool {
	if pid <= 0 {
		return true // not known: assume it lives
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
