package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/gofrs/flock"
	"github.com/jobq/jobq/internal/faults"
)

// Hand-off (package doc): a worker a hook started does not wait in a
// process of its own for a job that cannot start yet; it hands its queue
// to the data directory's one dispatcher, the process holding
// dispatch.lock, and exits.

// ownWaiters is what Store.mine holds: waiter file names, and their
// pushers, whose locks this process holds; and the turn of its goroutines
// at slots/lock.
type ownWaiters struct {
	mu sync.Mutex
	m  map[string]string
	// look is held by the one goroutine of this process that takes, or
	// waits for, slots/lock: the others wait here, on a mutex, and not in
	// flock(2), where each would hold a thread (hundreds, in the
	// dispatcher). It guards line too.
	look sync.Mutex
	// line is this process's last look at the slots, for lineAge: its
	// other waiters not chosen then need not look again meanwhile (a
	// thousand waiting queues, one look, not forty, per poll interval).
	// A slot or a waiter this process lets go ends it at once; another
	// process's, within lineAge.
	line *lineView
}

// lineAge is how long a look serves the process's other waiters.
const lineAge = 100 * time.Millisecond

// lineView is a look at the slots: the table, who it let start, and every
// waiter's place.
type lineView struct {
	by             string // the waiter that looked
	t              *slotTable
	admitted       map[string]bool
	places         map[string]int
	limit, userCap int
	at             time.Time
}

// recent is the last look, if it is recent, was made with the same limits
// and by another waiter than name (which looks again because it waited);
// the caller holds look.
func (o *ownWaiters) recent(name string, limit, userCap int) *lineView {
	if o == nil || o.line == nil || o.line.by == name || o.line.limit != limit || o.line.userCap != userCap || time.Since(o.line.at) > lineAge {
		return nil
	}
	return o.line
}

// remember keeps a look for the process's other waiters; the caller holds
// look.
func (o *ownWaiters) remember(by string, t *slotTable, admitted map[string]bool, limit, userCap int) *lineView {
	v := &lineView{by: by, t: t, admitted: admitted, places: places(t.waiters, t.running, userCap), limit: limit, userCap: userCap, at: time.Now()}
	if o != nil {
		o.line = v
	}
	return v
}

// forget ends the last look's use: something it saw changed.
func (o *ownWaiters) forget() {
	if o == nil {
		return
	}
	o.look.Lock()
	o.line = nil
	o.look.Unlock()
}

// forgetLocked is forget for a caller that holds look.
func (o *ownWaiters) forgetLocked() {
	if o != nil {
		o.line = nil
	}
}

// lookOne waits for this process's turn at slots/lock; the caller calls
// what it returns when its look is done.
func (o *ownWaiters) lookOne() func() {
	if o == nil {
		return func() {}
	}
	o.look.Lock()
	return o.look.Unlock
}

func (o *ownWaiters) add(name, user string) {
	if o != nil {
		o.mu.Lock()
		o.m[name] = user
		o.mu.Unlock()
	}
}

func (o *ownWaiters) remove(name string) {
	if o != nil {
		o.mu.Lock()
		delete(o.m, name)
		o.mu.Unlock()
	}
}

func (o *ownWaiters) get(name string) (string, bool) {
	if o == nil {
		return "", false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	user, ok := o.m[name]
	return user, ok
}

func (s *Store) handOffDir() string { return filepath.Join(s.dir, "handoff") }

// clearHandOff removes queue q's hand-off marker: its caller now holds q,
// and answers for it (HoldQueue).
func (s *Store) clearHandOff(q string) {
	os.Remove(filepath.Join(s.handOffDir(), escape(q)))
}

// Dispatcher is the data directory's dispatcher role, held by one process
// at a time: it drains the queues handed to it.
type Dispatcher struct {
	s    *Store
	lock *flock.Flock
	w    *watcher
}

// TakeDispatch makes this process the data directory's dispatcher, unless
// another is: then it returns nil.
func (s *Store) TakeDispatch() (*Dispatcher, error) {
	l := newLock(filepath.Join(s.dir, "dispatch.lock"))
	ok, err := l.TryLock()
	if err != nil {
		return nil, fmt.Errorf("dispatch: %w", err)
	}
	if !ok {
		return nil, nil
	}
	// Watched before the first look: a hand-off after it wakes Wait.
	return &Dispatcher{s: s, lock: l, w: watch(s.handOffDir())}, nil
}

// HandedOff lists the queues handed to the dispatcher and not taken yet.
// A marker that names no valid queue is removed.
func (d *Dispatcher) HandedOff() ([]string, error) {
	ents, err := os.ReadDir(d.s.handOffDir())
	if err != nil {
		return nil, fmt.Errorf("dispatch: %w", err)
	}
	var qs []string
	for _, e := range ents {
		q := unescape(e.Name())
		if ValidQueue(q) != nil || escape(q) != e.Name() {
			os.Remove(filepath.Join(d.s.handOffDir(), e.Name()))
			continue
		}
		qs = append(qs, q)
	}
	return qs, nil
}

// Wait returns when a queue may have been handed off, or after t.
func (d *Dispatcher) Wait(t time.Duration) { d.w.wait(t) }

// Release lets the role go, when the dispatcher holds no queue. If a queue
// was handed off meanwhile and no other process took the role, it takes it
// again and reports again: the caller dispatches on. The same argument as
// a queue's (Hold.Release) makes sure no hand-off waits for a dispatcher
// that has gone.
func (d *Dispatcher) Release() (again bool, err error) {
	d.lock.Unlock()
	// Valid marks only: anything else in handoff/ (a directory, which
	// HandedOff cannot remove) would keep a dispatcher that holds nothing.
	qs, err := d.HandedOff()
	if err != nil || len(qs) == 0 {
		return false, err
	}
	return d.lock.TryLock()
}

// Close lets the role go, if held, and stops watching.
func (d *Dispatcher) Close() {
	d.lock.Unlock()
	d.w.close()
}

// HandOff gives the held queue to the dispatcher instead of waiting in
// this process for its next job to start (package doc, hand-off). If no
// process is the dispatcher, this one becomes it (d): kept says whether
// it still holds the queue; if not, it takes it back like any queue
// handed off. Otherwise (d nil) the queue is let go, for the dispatcher to
// take. An error with kept true leaves the queue held: the caller waits
// for its job itself.
func (h *Hold) HandOff() (d *Dispatcher, kept bool, err error) {
	path := filepath.Join(h.s.handOffDir(), escape(h.q))
	// Open until this returns: its close wakes the dispatcher (inotify's
	// IN_CLOSE_WRITE) after the queue is let go; so does a crash.
	m, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, true, fmt.Errorf("hand off %s: %w", h.q, err)
	}
	defer m.Close()
	faults.Point("handoff-marked")
	if d, err := h.s.TakeDispatch(); err != nil || d != nil {
		if d != nil {
			h.s.clearHandOff(h.q) // held here: not handed off after all
		}
		return d, true, err
	}
	h.lock.Unlock()
	faults.Point("handoff-released")
	// The dispatcher seen above may have let its role go since, after its
	// last look at the hand-offs, while this process still held the
	// queue: if the role is free now, this process takes it.
	d, err = h.s.TakeDispatch()
	return d, false, err
}
