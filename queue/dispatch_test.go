package queue

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// handOffOf holds queue q (after one enqueue) for a worker.
func handOffOf(t *testing.T, s *Store, q string) *Hold {
	t.Helper()
	if _, err := s.Enqueue(&Job{Repo: "r-" + q, Queue: q, Ref: "refs/heads/main"}); err != nil {
		t.Fatal(err)
	}
	h, err := s.HoldQueue(q, false)
	if err != nil || h == nil {
		t.Fatalf("hold %s: %v", q, err)
	}
	return h
}

func marked(s *Store, q string) bool {
	_, err := os.Stat(filepath.Join(s.Dir(), "handoff", escape(q)))
	return err == nil
}

// The hand-off's cases: with no dispatcher, the worker becomes it and
// keeps its queue; with one, the queue is let go, marked, and the
// dispatcher is woken and takes it, which ends the mark.
func TestHandOff(t *testing.T) {
	t.Run("no dispatcher: this worker becomes it", func(t *testing.T) {
		s := newStore(t)
		h := handOffOf(t, s, "q")
		d, kept, err := h.HandOff()
		if err != nil || d == nil || !kept {
			t.Fatalf("HandOff: %v, kept %v, %v; want the role, the queue kept", d, kept, err)
		}
		defer d.Close()
		if marked(s, "q") {
			t.Error("a queue its holder kept is still marked handed off")
		}
		if h2, _ := s.HoldQueue("q", false); h2 != nil {
			t.Error("the queue was let go")
		}
		if other, _ := s.TakeDispatch(); other != nil {
			t.Error("two dispatchers")
		}
	})
	t.Run("a dispatcher runs: the queue goes to it", func(t *testing.T) {
		s := newStore(t)
		d, err := s.TakeDispatch()
		if err != nil || d == nil {
			t.Fatalf("TakeDispatch: %v %v", d, err)
		}
		defer d.Close()
		h := handOffOf(t, s, "a/b")
		woken := make(chan time.Duration)
		go func() {
			start := time.Now()
			d.Wait(10 * time.Second)
			woken <- time.Since(start)
		}()
		d2, kept, err := h.HandOff()
		if err != nil || d2 != nil || kept {
			t.Fatalf("HandOff: %v, kept %v, %v; want the queue let go", d2, kept, err)
		}
		if took := <-woken; took > 5*time.Second {
			t.Errorf("the dispatcher was not woken by the hand-off (%s)", took)
		}
		if qs, err := d.HandedOff(); err != nil || !slices.Equal(qs, []string{"a/b"}) {
			t.Fatalf("handed off: %v %v", qs, err)
		}
		// Idle, the dispatcher would let its role go: a hand-off is there,
		// so it takes the role again (no queue waits for a dispatcher gone).
		if again, err := d.Release(); err != nil || !again {
			t.Fatalf("Release with a hand-off waiting: %v, %v; want again", again, err)
		}
		h2, err := s.HoldQueue("a/b", false)
		if err != nil || h2 == nil {
			t.Fatalf("the dispatcher cannot take the queue: %v", err)
		}
		defer h2.Unlock()
		if marked(s, "a/b") {
			t.Error("the queue's new holder left its hand-off mark")
		}
		if qs, _ := d.HandedOff(); len(qs) != 0 {
			t.Errorf("still handed off: %v", qs)
		}
	})
	t.Run("an idle dispatcher with nothing handed off goes", func(t *testing.T) {
		s := newStore(t)
		d, _ := s.TakeDispatch()
		if again, err := d.Release(); err != nil || again {
			t.Fatalf("Release: %v, %v; want gone", again, err)
		}
		d2, err := s.TakeDispatch()
		if err != nil || d2 == nil {
			t.Fatalf("the role was not let go: %v", err)
		}
		d2.Close()
	})
	t.Run("the dispatcher gone before the hand-off", func(t *testing.T) {
		s := newStore(t)
		d, _ := s.TakeDispatch()
		d.Release()
		h := handOffOf(t, s, "q")
		d2, kept, err := h.HandOff()
		if err != nil || d2 == nil || !kept {
			t.Fatalf("HandOff: %v, kept %v, %v; want the role", d2, kept, err)
		}
		d2.Close()
	})
	t.Run("a repository's own queue goes to the dispatcher", func(t *testing.T) {
		s := newStore(t)
		d, _ := s.TakeDispatch()
		defer d.Close()
		q := DefaultQueue("team/app")
		if _, err := s.Enqueue(&Job{Repo: "team/app", Queue: q, Ref: "refs/heads/main"}); err != nil {
			t.Fatal(err)
		}
		h, err := s.HoldQueue(q, false)
		if err != nil || h == nil {
			t.Fatalf("hold %s: %v", q, err)
		}
		if d2, kept, err := h.HandOff(); err != nil || d2 != nil || kept {
			t.Fatalf("HandOff: %v, kept %v, %v; want the queue let go", d2, kept, err)
		}
		if qs, err := d.HandedOff(); err != nil || !slices.Equal(qs, []string{q}) {
			t.Fatalf("handed off: %q %v; want %q", qs, err, q)
		}
	})
	t.Run("hostile markers are removed, not taken", func(t *testing.T) {
		s := newStore(t)
		d, _ := s.TakeDispatch()
		defer d.Close()
		for _, name := range []string{"..", "a%2F..%2Fb", "%2Fetc", "x%ZZ", "-x", "repo:..", "repo:", "other:x"} {
			os.WriteFile(filepath.Join(s.Dir(), "handoff", name), nil, 0o600)
		}
		if qs, err := d.HandedOff(); err != nil || len(qs) != 0 {
			t.Errorf("handed off: %q, %v; want none", qs, err)
		}
		if ents, _ := os.ReadDir(filepath.Join(s.Dir(), "handoff")); len(ents) != 0 {
			t.Errorf("left: %v", ents)
		}
	})
	t.Run("an entry that names no queue keeps no idle dispatcher", func(t *testing.T) {
		s := newStore(t)
		d, _ := s.TakeDispatch()
		defer d.Close()
		os.MkdirAll(filepath.Join(s.Dir(), "handoff", "..x", "y"), 0o700) // a directory: not removable as a mark
		if again, err := d.Release(); err != nil || again {
			t.Fatalf("Release: %v, %v; want gone", again, err)
		}
	})
}

// A waiter this process holds is listed without a look at its file (the
// dispatcher holds hundreds); one another process holds is read.
func TestOwnWaitersSkipTheirFiles(t *testing.T) {
	s := newStore(t)
	j := &Job{Repo: "r", Queue: "q", User: "alice", QueuedAt: time.Unix(1, 0)}
	sw := s.WaitForSlot("q", j)
	// Slots are all held by another store (process): the job waits.
	other, _ := Open(s.Dir())
	busy, _, err := other.WaitForSlot("o", &Job{Repo: "o", Queue: "o", User: "bob", QueuedAt: time.Unix(0, 0)}).Try(1, 1)
	if err != nil || busy == nil {
		t.Fatalf("blocker: %v", err)
	}
	defer busy.Release()
	if slot, _, err := sw.Try(1, 1); slot != nil || err != nil {
		t.Fatalf("Try: %v %v", slot, err)
	}
	defer sw.Leave()
	// Unreadable to a look that opened it; this process needs no look.
	path := filepath.Join(s.Dir(), "slots", "wait", sw.name)
	os.WriteFile(path, []byte("mallory"), 0o600)
	ws, err := s.liveWaiters("")
	if err != nil || len(ws) != 1 || ws[0].user != "alice" {
		t.Errorf("this process's look: %+v %v; want alice's waiter from memory", ws, err)
	}
	ws, err = other.liveWaiters("")
	if err != nil || len(ws) != 1 || ws[0].user != "mallory" {
		t.Errorf("another process's look: %+v %v; want the file read", ws, err)
	}
	sw.Leave()
	if _, ok := s.mine.get(sw.name); ok {
		t.Error("a waiter left is still this process's")
	}
}

// places gives every waiter the place that place gives it.
func TestPlacesMatchPlace(t *testing.T) {
	ws := []waiter{{"0", "bob"}, {"1", "bob"}, {"2", "alice"}, {"3", "bob"}, {"4", "carol"}, {"5", "alice"}}
	for _, running := range []map[string]int{nil, {"bob": 1}, {"bob": 2, "alice": 1}, {"carol": 5}} {
		for _, userCap := range []int{1, 2, 3} {
			ps := places(ws, running, userCap)
			for _, w := range ws {
				if want := place(ws, running, userCap, w.name); ps[w.name] != want {
					t.Errorf("running %v, cap %d: %s at %d, want %d", running, userCap, w.name, ps[w.name], want)
				}
			}
		}
	}
}

// A process's waiters share one look for a moment (lineAge): a slot that
// another process frees is seen by the next look after it; one this
// process frees, at once.
func TestWaitersShareALook(t *testing.T) {
	s := newStore(t)
	other, _ := Open(s.Dir()) // another process
	blocker, _, _ := other.WaitForSlot("o", queuedAt("carol", 0)).Try(1, 5)
	a := s.WaitForSlot("a", queuedAt("alice", 1))
	b := s.WaitForSlot("b", queuedAt("bob", 2))
	defer a.Leave()
	defer b.Leave()
	for _, sw := range []*SlotWait{a, b} {
		if slot, _, err := sw.Try(1, 5); slot != nil || err != nil {
			t.Fatalf("Try with the slot busy: %v %v", slot, err)
		}
	}
	time.Sleep(lineAge + 10*time.Millisecond)
	a.Try(1, 5) // a looks: b may use that look for lineAge
	blocker.Release()
	// b uses a's look, made while the slot was busy.
	if slot, why, _ := b.Try(1, 5); slot != nil || why != "all job slots taken, JOBQ_SLOTS=1" || b.Place() != 1 {
		t.Fatalf("b within lineAge of a's look: %v, %q, place %d; want a's look", slot, why, b.Place())
	}
	time.Sleep(lineAge + 10*time.Millisecond)
	if slot, why, _ := b.Try(1, 5); slot != nil || why != "older jobs are first in line for a slot" {
		t.Fatalf("b after lineAge: %v, %q; want a look of its own, and the slot left to a, older", slot, why)
	}
	slot, _, err := a.Try(1, 5)
	if err != nil || slot == nil {
		t.Fatalf("a, first in line, with the slot free: %v %v", slot, err)
	}
	// Freed in this process: b sees it at once.
	a.Leave()
	slot.Release()
	if got, _, err := b.Try(1, 5); err != nil || got == nil {
		t.Fatalf("b after a's slot was let go here: %v %v", got, err)
	} else {
		got.Release()
	}
}
