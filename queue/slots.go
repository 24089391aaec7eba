package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gofrs/flock"
	"github.com/jobq/jobq/internal/slottable"
)

// waiter is a job waiting for a slot, as its file in slots/wait names it.
type waiter struct {
	name string // QUEUEDAT-QUEUE: sorts oldest first
	user string
}

// admit chooses the waiters (oldest first) that may start now: at most free
// of them, skipping any whose pusher would then run more than userCap jobs.
// running counts each pusher's running jobs.
func admit(waiters []waiter, running map[string]int, free, userCap int) map[string]bool {
	ok := map[string]bool{}
	n := map[string]int{}
	for _, w := range waiters {
		if free <= 0 {
			break
		}
		if running[w.user]+n[w.user] >= userCap {
			continue
		}
		ok[w.name] = true
		n[w.user]++
		free--
	}
	return ok
}

// place is a waiter's place in line: 0 for the first of those the cap lets
// start, after them those it holds back, each group oldest first. A worker
// looks again after (1+place) poll intervals, so that a hundred waiting
// queues cost a few looks per interval, not a hundred, and the first in
// line still looks at once.
func place(waiters []waiter, running map[string]int, userCap int, name string) int {
	n := map[string]int{}
	ahead, held := 0, 0
	for _, w := range waiters {
		capped := running[w.user]+n[w.user] >= userCap
		if w.name == name {
			if capped {
				return len(admit(waiters, running, len(waiters), userCap)) + held
			}
			return ahead
		}
		if capped {
			held++
		} else {
			n[w.user]++
			ahead++
		}
	}
	return ahead
}

// places is place for every waiter, in one pass.
func places(waiters []waiter, running map[string]int, userCap int) map[string]int {
	front := len(admit(waiters, running, len(waiters), userCap))
	ps := make(map[string]int, len(waiters))
	n := map[string]int{}
	ahead, held := 0, 0
	for _, w := range waiters {
		if running[w.user]+n[w.user] >= userCap {
			ps[w.name] = front + held
			held++
		} else {
			ps[w.name] = ahead
			n[w.user]++
			ahead++
		}
	}
	return ps
}

// slotTable is what a worker sees under slots/lock: the held slots, their
// pushers, the free slots it could take, and the live waiters.
type slotTable struct {
	held    int
	running map[string]int
	free    []*os.File // slots below the worker's limit, locked by this look
	waiters []waiter
}

func (t *slotTable) release() {
	for _, f := range t.free {
		f.Close()
	}
}

func (s *Store) slotsDir() string { return filepath.Join(s.dir, "slots") }

// lookSlots reads the slot table; the caller holds slots/lock. Every slot
// file is tried: a held one counts with its pusher, a free one below limit
// is kept locked (the caller may take it). A waiter file nobody holds was
// left by a dead worker and is removed.
func (s *Store) lookSlots(limit int, self string) (*slotTable, error) {
	held, free, err := slottable.Scan(s.slotsDir(), limit)
	if err != nil {
		return nil, err
	}
	t := &slotTable{held: len(held), running: map[string]int{}, free: free}
	for _, user := range held {
		t.running[user]++
	}
	t.waiters, err = s.liveWaiters(self)
	if err != nil {
		t.release()
		return nil, err
	}
	return t, nil
}

// liveWaiters lists slots/wait oldest first, removing what dead workers
// left there. self (the caller's own waiter, held through another open
// file) is listed without being tried.
func (s *Store) liveWaiters(self string) ([]waiter, error) {
	dir := filepath.Join(s.slotsDir(), "wait")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ws []waiter
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		if user, ok := s.mine.get(e.Name()); ok {
			ws = append(ws, waiter{name: e.Name(), user: user})
			continue // held here: alive, and its pusher known
		}
		if e.Name() != self {
			l := newLock(path)
			got, err := l.TryLock()
			if err != nil {
				return nil, err
			}
			if got {
				os.Remove(path) // its worker died; creations wait for slots/lock
				l.Unlock()
				continue
			}
		}
		user, _ := os.ReadFile(path)
		ws = append(ws, waiter{name: e.Name(), user: string(user)})
	}
	slices.SortFunc(ws, func(a, b waiter) int { return strings.Compare(a.name, b.name) })
	return ws, nil
}

// SlotWait is one job's wait for a slot: its place in slots/wait while it
// waits, and why it waits (package doc, slots).
type SlotWait struct {
	s    *Store
	name string       // the waiter's file name in slots/wait
	user string       // the job's pusher
	me   *flock.Flock // the waiter file, held while registered
	// place is the job's place in line at the last look (see place).
	place int
}

// WaitForSlot begins queued job j's wait for a slot, in queue q.
func (s *Store) WaitForSlot(q string, j *Job) *SlotWait {
	return &SlotWait{s: s, name: fmt.Sprintf("%020d-%s", j.QueuedAt.UnixNano(), escape(q)), user: j.User}
}

// Slot is a job slot, held while the job runs.
type Slot struct {
	lock *os.File
	s    *Store
}

// Release frees the slot.
func (sl *Slot) Release() {
	sl.lock.Close()
	sl.s.mine.forget() // this process's waiters look again
}

// Place is the job's place in line at the last try: 0 for the first of
// those the cap lets start (see place).
func (sw *SlotWait) Place() int { return sw.place }

// Try takes a slot if this job is among the oldest waiters its pusher's
// cap allows (userCap) and one of limit is free; otherwise it returns nil
// and why the job waits. Everything happens under slots/lock, held for an
// instant.
func (sw *SlotWait) Try(limit, userCap int) (*Slot, string, error) {
	if err := os.Mkdir(filepath.Join(sw.s.slotsDir(), "wait"), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, "", fmt.Errorf("job slot: %w", err)
	}
	defer sw.s.mine.lookOne()()
	if sw.me != nil {
		// Another goroutine of this process looked a moment ago, and this
		// job was not among those to start: no look of its own.
		if v := sw.s.mine.recent(sw.name, limit, userCap); v != nil {
			if p, ok := v.places[sw.name]; ok && !v.admitted[sw.name] {
				sw.place = p
				return nil, v.t.reason(sw.user, limit, userCap), nil
			}
		}
	}
	g := newLock(filepath.Join(sw.s.slotsDir(), "lock"))
	if err := g.Lock(); err != nil {
		return nil, "", fmt.Errorf("job slot: %w", err)
	}
	defer g.Unlock()
	if sw.me == nil {
		path := filepath.Join(sw.s.slotsDir(), "wait", sw.name)
		me := newLock(path)
		// Only one worker drains a queue, so only a dead one's file can
		// have this name, and nobody holds that.
		got, err := me.TryLock()
		if err != nil {
			return nil, "", fmt.Errorf("job slot: %w", err)
		}
		if !got {
			return nil, "", fmt.Errorf("job slot: %s is held by another worker", path)
		}
		if err := os.WriteFile(path, []byte(sw.user), 0o600); err != nil {
			me.Unlock()
			os.Remove(path)
			return nil, "", fmt.Errorf("job slot: %w", err)
		}
		sw.me = me
		sw.s.mine.add(sw.name, sw.user)
	}
	t, err := sw.s.lookSlots(limit, sw.name)
	if err != nil {
		return nil, "", fmt.Errorf("job slot: %w", err)
	}
	defer t.release()
	admitted := admit(t.waiters, t.running, len(t.free), userCap)
	if !admitted[sw.name] {
		v := sw.s.mine.remember(sw.name, t, admitted, limit, userCap)
		sw.place = v.places[sw.name]
		return nil, t.reason(sw.user, limit, userCap), nil
	}
	sw.s.mine.forgetLocked() // a slot taken
	slot := t.free[0]
	t.free = t.free[1:]
	if err := slottable.Write(slot, sw.user); err != nil {
		slot.Close()
		return nil, "", fmt.Errorf("job slot: %w", err)
	}
	sw.leave()
	return &Slot{slot, sw.s}, "", nil
}

// AdoptSlot takes a slot for a job that already runs (adopted from a
// worker that died or stopped), at once: the lowest free one, past limit
// if every slot below it is taken meanwhile. It is held and names user, so
// that waiters count the job as the slots and the pusher's cap require.
func (s *Store) AdoptSlot(user string) (*Slot, error) {
	defer s.mine.lookOne()()
	g := newLock(filepath.Join(s.slotsDir(), "lock"))
	if err := g.Lock(); err != nil {
		return nil, fmt.Errorf("job slot: %w", err)
	}
	defer g.Unlock()
	f, err := slottable.Take(s.slotsDir(), -1)
	if err != nil {
		return nil, fmt.Errorf("job slot: %w", err)
	}
	if err := slottable.Write(f, user); err != nil {
		f.Close()
		return nil, fmt.Errorf("job slot: %w", err)
	}
	return &Slot{f, s}, nil
}

// reason says, for the listing, why a job of user waits.
func (t *slotTable) reason(user string, limit, userCap int) string {
	switch {
	case t.running[user] >= userCap:
		jobs := "jobs"
		if t.running[user] == 1 {
			jobs = "job"
		}
		return fmt.Sprintf("its pusher runs %d %s, JOBQ_USER_SLOTS=%d", t.running[user], jobs, userCap)
	case t.held >= limit:
		return fmt.Sprintf("all job slots taken, JOBQ_SLOTS=%d", limit)
	default:
		return "older jobs are first in line for a slot"
	}
}

// Leave gives up the job's place in slots/wait.
func (sw *SlotWait) Leave() {
	if sw.me != nil {
		sw.s.mine.forget() // one fewer in line
	}
	sw.leave()
}

func (sw *SlotWait) leave() {
	sw.place = 0
	if sw.me != nil {
		sw.s.mine.remove(sw.name)
		os.Remove(sw.me.Path())
		sw.me.Unlock()
		sw.me = nil
	}
}
