package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gofrs/flock"
	"github.com/jobq/jobq/internal/faults"
)

// Entry is a job's place in its queue.
type Entry struct {
	Repo string
	ID   int64
	name string // SEQ-ID-REPO in pending/ or running/
}

// EnsureWorker is the hook's half of the wake-up protocol (package doc),
// after it has enqueued into queue q: unless a worker holds q or is on its
// way, it calls start, which must start a detached worker that calls
// HoldQueue(q, true).
func (s *Store) EnsureWorker(q string, start func() error) error {
	l, err := s.queueLock(q)
	if err != nil {
		return err
	}
	free, err := l.TryLock()
	if err != nil {
		return fmt.Errorf("lock queue %s: %w", q, err)
	}
	if !free {
		return nil // a worker drains q, and looks again before it lets go
	}
	l.Unlock()
	starting := newLock(filepath.Join(s.queueDir(q), "start.lock"))
	if ok, err := starting.TryLock(); err != nil || !ok {
		return err // another hook is starting one, which will find our entry
	}
	defer starting.Unlock()
	return start()
}

// StartWorker is the hook's early call, before it enqueues into queue q:
// if no worker holds q and none is on its way, it starts one now (start)
// and keeps start.lock until done is called, after the enqueue. The
// worker's start-up then overlaps the enqueue, and it takes the queue only
// after the entry is there. started says whether it started one; if not,
// the hook calls EnsureWorker after enqueueing, as always.
func (s *Store) StartWorker(q string, start func() error) (done func(), started bool, err error) {
	nothing := func() {}
	l, err := s.queueLock(q)
	if err != nil {
		return nothing, false, err
	}
	free, err := l.TryLock()
	if err != nil || !free {
		return nothing, false, err
	}
	l.Unlock()
	starting := newLock(filepath.Join(s.queueDir(q), "start.lock"))
	if ok, err := starting.TryLock(); err != nil || !ok {
		return nothing, false, err
	}
	if err := start(); err != nil {
		starting.Unlock()
		return nothing, false, err
	}
	return func() { starting.Unlock() }, true, nil
}

// Hold is a queue held by its one worker: only the holder claims, runs and
// settles the queue's jobs.
type Hold struct {
	s    *Store
	q    string
	lock *flock.Flock
}

// HoldQueue takes queue q for a worker. With wait (a worker a hook
// started), it waits for the hook to finish starting it, then for the
// queue; without, it returns nil at once if another worker holds q. The
// holder answers for q: a hand-off of q (HandOff) is done with.
func (s *Store) HoldQueue(q string, wait bool) (*Hold, error) {
	l, err := s.queueLock(q)
	if err != nil {
		return nil, err
	}
	h := &Hold{s: s, q: q, lock: l}
	if !wait {
		ok, err := l.TryLock()
		if err != nil || !ok {
			return nil, err
		}
		s.clearHandOff(q)
		return h, nil
	}
	starting := newLock(filepath.Join(s.queueDir(q), "start.lock"))
	if err := starting.Lock(); err != nil {
		return nil, fmt.Errorf("hold queue %s: %w", q, err)
	}
	err = l.Lock()
	starting.Unlock() // hooks now see the queue held
	if err != nil {
		return nil, fmt.Errorf("hold queue %s: %w", q, err)
	}
	s.clearHandOff(q)
	return h, nil
}

// Release lets the queue go when it looks empty. If an entry arrived
// meanwhile and no other worker took the queue, it takes the queue again
// and reports again: the caller drains on (package doc, wake-up).
func (h *Hold) Release() (again bool, err error) {
	h.lock.Unlock()
	if more, err := h.s.HasPending(h.q); err != nil || !more {
		return false, err
	}
	if again, err = h.lock.TryLock(); again {
		h.s.clearHandOff(h.q)
	}
	return again, err
}

// Unlock lets the queue go, whatever it holds.
func (h *Hold) Unlock() { h.lock.Unlock() }

// Pending lists the queue's waiting entries, oldest first.
func (h *Hold) Pending() ([]Entry, error) {
	return h.s.entries(h.q, "pending")
}

// Claim is a job its queue's worker is handling, from Peek to Done. Its
// lock (repos/NAME/ID/lock) is held all that time: readers see a job whose
// lock is free, though marked running or waiting, as one whose worker
// died (Handled).
type Claim struct {
	Job   *Job
	entry Entry
	lock  *os.File
}

// Peek takes pending entry e's job for a look before the claim (its state,
// its pusher), under the repository lock, so an enqueue in progress
// commits first. An entry whose job never committed, or was retired or
// pruned since, is removed: it returns nil, nil then. One whose record
// cannot be decoded is removed too, and the error returned; any other
// error leaves the entry, to be tried again.
func (h *Hold) Peek(e Entry) (*Claim, error) {
	j, err := h.s.Update(e.Repo, e.ID, func(*Job) error { return errUnchanged })
	switch {
	case errors.Is(err, errUnchanged):
	case errors.Is(err, ErrNotFound):
		return nil, h.drop(e)
	case errors.Is(err, ErrUnreadable):
		return nil, errors.Join(fmt.Errorf("claim: %w", err), h.drop(e))
	default: // the store failing for now (a lock, a read): try again later
		return nil, fmt.Errorf("claim %s %d: %w", e.Repo, e.ID, err)
	}
	l, err := h.s.lockJob(e.Repo, e.ID)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(h.s.jobDir(e.Repo, e.ID)); errors.Is(serr, fs.ErrNotExist) {
			return nil, h.drop(e) // retired or pruned since the look
		}
	}
	if err != nil {
		return nil, fmt.Errorf("claim %s %d: %w", e.Repo, e.ID, err)
	}
	return &Claim{Job: j, entry: e, lock: l}, nil
}

// drop removes pending entry e, whose job is gone. An entry that cannot
// be removed is an error: Drain backs off instead of taking it again at
// once.
func (h *Hold) drop(e Entry) error {
	err := os.Remove(filepath.Join(h.s.queueDir(h.q), "pending", e.name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove queue entry: %w", err)
	}
	return nil
}

// Claim moves the entry to running/ and marks its job running, durably,
// before the job may start. c.Job is left as the job now is: Running (run
// it), Lost (claimed before by a worker that died: clean up after it,
// never run it twice), or final (cancelled while queued, or its
// repository deleted since). The caller ends with Done either way.
func (h *Hold) Claim(c *Claim) error {
	e := c.entry
	qdir := h.s.queueDir(h.q)
	if err := os.Rename(filepath.Join(qdir, "pending", e.name), filepath.Join(qdir, "running", e.name)); err != nil {
		return fmt.Errorf("claim %s %d: %w", e.Repo, e.ID, err)
	}
	syncDir(filepath.Join(qdir, "running"))
	faults.Point("claim-moved")
	j, err := h.s.Update(e.Repo, e.ID, func(j *Job) error {
		switch j.State {
		case Queued:
			if deletedSince(j) {
				j.State, j.FinishedAt = Cancelled, time.Now().UTC()
				j.Error = "its repository was deleted before it ran"
				return nil
			}
			j.State, j.StartedAt, j.Worker = Running, time.Now().UTC(), os.Getpid()
			return nil
		case Running:
			markLost(j)
			return nil
		}
		return errUnchanged
	})
	switch {
	case err == nil, errors.Is(err, errUnchanged):
		c.Job = j
	case errors.Is(err, ErrNotFound):
		c.Job.State = Cancelled // gone: nothing to run
	default:
		// Not marked: back in line, to be claimed again after a pause.
		if rerr := os.Rename(filepath.Join(qdir, "running", e.name), filepath.Join(qdir, "pending", e.name)); rerr != nil {
			err = errors.Join(err, rerr) // running/ keeps it: the next worker's recovery
		}
		return fmt.Errorf("claim %s %d: %w", e.Repo, e.ID, err)
	}
	faults.Point("claim-marked")
	return nil
}

// Done ends the claim, once the job's result is recorded and its clean-up
// done: it removes the entry and any cancel request, and lets the job's
// lock go.
func (h *Hold) Done(c *Claim) {
	os.Remove(filepath.Join(h.s.queueDir(h.q), "running", c.entry.name))
	os.Remove(filepath.Join(h.s.jobDir(c.Job.Repo, c.Job.ID), "cancel"))
	c.lock.Close()
}

// Drop gives up a claim that Claim did not complete, leaving the entry
// pending (Claim puts it back when it fails): the job is tried again.
func (h *Hold) Drop(c *Claim) { c.lock.Close() }

// Leave lets a running job's claim go without ending it: the worker stops
// and leaves the job running, its entry in running/, for the next worker
// to adopt (Recover).
func (h *Hold) Leave(c *Claim) { c.lock.Close() }

// Recover settles what a worker of the queue that died or stopped left in
// running/: a job it had not started goes back to pending; a job marked
// running is returned, its lock taken, for the caller to adopt (Adopt; or
// to record lost, if what ran it is gone) and to end with Done. Only the queue's holder
// calls it, and the job's lock makes sure that one worker only adopts it.
func (h *Hold) Recover(logf func(format string, args ...any)) []*Claim {
	es, err := h.s.entries(h.q, "running")
	if err != nil {
		logf("recover %s: %v", h.q, err)
		return nil
	}
	qdir := h.s.queueDir(h.q)
	var adopt []*Claim
	for _, e := range es {
		path := filepath.Join(qdir, "running", e.name)
		j, err := h.s.Job(e.Repo, e.ID)
		switch {
		case err == nil && j.State == Queued:
			if err := os.Rename(path, filepath.Join(qdir, "pending", e.name)); err != nil {
				logf("recover %s %d: %v", e.Repo, e.ID, err)
			}
			continue
		case err == nil && j.State == Running:
			l, err := h.s.lockJob(e.Repo, e.ID)
			if err != nil {
				logf("recover %s %d: %v", e.Repo, e.ID, err)
				continue
			}
			// Read again under the lock: the record is the one the
			// previous holder left for good.
			if j, err = h.s.Job(e.Repo, e.ID); err == nil && j.State == Running {
				adopt = append(adopt, &Claim{Job: j, entry: e, lock: l})
				continue
			}
			l.Close()
			if err != nil && !errors.Is(err, ErrNotFound) {
				logf("recover %s %d: %v", e.Repo, e.ID, err)
				continue
			}
		case err != nil && !errors.Is(err, ErrNotFound):
			logf("recover %s %d: %v", e.Repo, e.ID, err)
			continue
		}
		os.Remove(path) // finished, or never committed
	}
	return adopt
}

// Adopt records that this worker now runs c's job (a claim from Recover):
// the job's worker and its count of adoptions.
func (h *Hold) Adopt(c *Claim) error {
	j, err := h.s.Update(c.Job.Repo, c.Job.ID, func(j *Job) error {
		if j.State != Running {
			return errUnchanged
		}
		j.Worker, j.Adopted = os.Getpid(), j.Adopted+1
		return nil
	})
	if err != nil {
		return fmt.Errorf("adopt %s %d: %w", c.Job.Repo, c.Job.ID, err)
	}
	c.Job = j
	return nil
}

func markLost(j *Job) {
	j.State, j.FinishedAt = Lost, time.Now().UTC()
	j.Error = fmt.Sprintf("its worker (pid %d) died while it ran", j.Worker)
}

// lockJob takes job ID of repo's lock (repos/NAME/ID/lock), held by the
// worker that claimed the job until it is done with it.
func (s *Store) lockJob(repo string, id int64) (*os.File, error) {
	path := filepath.Join(s.jobDir(repo, id), "lock")
	// Only jobq writes there: anything but a file (a directory, a symlink,
	// a fifo left by a damaged disk or a hand) would stop the queue behind
	// this job, so it goes.
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		if err := os.RemoveAll(path); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Handled reports whether a worker holds job j (claimed and not done
// with). Unlike a pid, a lock cannot outlive its process or be mistaken
// for another's.
func (s *Store) Handled(repo string, id int64) bool {
	// Never blocks: not on a fifo, not through a symlink.
	f, err := os.OpenFile(filepath.Join(s.jobDir(repo, id), "lock"), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return false
	}
	// A shared lock, let go at once, does not keep a worker from the
	// exclusive one for long; it only tells whether one holds it now.
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	return errors.Is(err, syscall.EWOULDBLOCK)
}
