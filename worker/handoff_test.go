package worker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jobq/jobq/queue"
)

// process is one hook's worker of the test: a store of its own, as a
// process has (its locks are its own), and the test's runner.
func process(t *testing.T, dir string, rec *recorder) *Worker {
	t.Helper()
	s, err := queue.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &Worker{Store: s, Runners: runWith(rec.run), Slots: 1, UserSlots: 1, Poll: 5 * time.Millisecond}
}

// Hook's workers of 20 queues, each with two jobs, while the only slot is
// busy: the first becomes the dispatcher, every other hands its queue to
// it and returns at once, holding nothing. Once the slot frees, every job
// runs once, oldest first (which is FIFO in each queue), and the
// dispatcher exits when it holds no queue.
func TestHandOffToOneDispatcher(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	rec := &recorder{}
	w := process(t, dir, rec)
	s := w.Store
	var want []string
	const queues = 20
	for round := range 2 {
		for i := range queues {
			j := newJob(fmt.Sprintf("repo%02d", i), fmt.Sprintf("q%02d", i))
			j.User = fmt.Sprintf("user%d", i%3)
			if _, err := s.Enqueue(j); err != nil {
				t.Fatal(err)
			}
			want = append(want, fmt.Sprintf("%s/%d", j.Repo, round))
		}
	}
	blocker, _, err := s.WaitForSlot("busy", newJob("busy", "busy")).Try(1, 1)
	if err != nil || blocker == nil {
		t.Fatalf("blocker: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dispatcher := make(chan error, 1)
	go func() { dispatcher <- process(t, dir, rec).DrainOrHandOff(ctx, "q00") }()
	// Its job waits in it, saying why: it is the dispatcher now. (A look
	// that took a lock itself could make the worker think another is.)
	testWaitUntil(t, "the first worker becomes the dispatcher", func() bool { return s.Waiting("repo00", 0) != "" })
	for i := 1; i < queues; i++ {
		q := fmt.Sprintf("q%02d", i)
		start := time.Now()
		if err := process(t, dir, rec).DrainOrHandOff(ctx, q); err != nil {
			t.Fatalf("worker of %s: %v", q, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the worker of %s waited %s: it should hand off at once", q, d)
		}
	}
	select {
	case err := <-dispatcher:
		t.Fatalf("the dispatcher returned (%v) while every job waits", err)
	default:
	}
	// Every queue's job waits in the dispatcher, saying why.
	testWaitUntil(t, "the dispatcher holds every queue", func() bool {
		for i := range queues {
			if s.Waiting(fmt.Sprintf("repo%02d", i), 0) == "" {
				return false
			}
		}
		return true
	})
	if got := rec.runs(); len(got) != 0 {
		t.Fatalf("ran %v while the slot was busy", got)
	}
	blocker.Release()
	select {
	case err := <-dispatcher:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatalf("the dispatcher is still running; ran %v", rec.runs())
	}
	if got := rec.runs(); !slices.Equal(got, want) {
		t.Errorf("ran %v\nwant %v", got, want)
	}
	for i := range queues {
		for id := range 2 {
			if j, _ := s.Job(fmt.Sprintf("repo%02d", i), int64(id)); j.State != queue.Succeeded {
				t.Errorf("repo%02d/%d: %s", i, id, j.State)
			}
		}
	}
	for _, d := range []string{"handoff", "slots/wait"} {
		if ents, _ := os.ReadDir(filepath.Join(dir, d)); len(ents) != 0 {
			t.Errorf("%s: left %v", d, ents)
		}
	}
}

// A worker that hands its queue off while no dispatcher runs becomes the
// dispatcher, and also takes queues handed off later; with the slot free,
// a hook's worker runs its job itself and never becomes the dispatcher.
func TestHandOffNotNeeded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	rec := &recorder{}
	w := process(t, dir, rec)
	w.Store.Enqueue(newJob("r", "q"))
	if err := w.DrainOrHandOff(context.Background(), "q"); err != nil {
		t.Fatal(err)
	}
	if got := rec.runs(); !slices.Equal(got, []string{"r/0"}) {
		t.Errorf("ran %v", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "handoff")); len(ents) != 0 {
		t.Errorf("handed off %v with a slot free", ents)
	}
}

func testWaitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The dispatcher holds at most its cap of queues at once: the others stay
// handed off, and run once a held queue lets go; none is lost.
func TestDispatcherHoldsAtMostItsCap(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	rec := &recorder{}
	s := process(t, dir, rec).Store
	const queues = 6
	for i := range queues {
		if _, err := s.Enqueue(newJob(fmt.Sprintf("repo%d", i), fmt.Sprintf("q%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	blocker, _, err := s.WaitForSlot("busy", newJob("busy", "busy")).Try(1, 1)
	if err != nil || blocker == nil {
		t.Fatalf("blocker: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := process(t, dir, rec)
	d.maxHeld = 2
	dispatcher := make(chan error, 1)
	go func() { dispatcher <- d.DrainOrHandOff(ctx, "q0") }()
	testWaitUntil(t, "the first worker becomes the dispatcher", func() bool { return s.Waiting("repo0", 0) != "" })
	for i := 1; i < queues; i++ {
		if err := process(t, dir, rec).DrainOrHandOff(ctx, fmt.Sprintf("q%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waiting := func() (n int) {
		for i := range queues {
			if s.Waiting(fmt.Sprintf("repo%d", i), 0) != "" {
				n++
			}
		}
		return n
	}
	testWaitUntil(t, "the dispatcher holds its cap", func() bool { return waiting() == 2 })
	time.Sleep(300 * time.Millisecond) // a few of its looks
	if n := waiting(); n != 2 {
		t.Fatalf("%d queues held, want the cap, 2", n)
	}
	blocker.Release()
	if err := <-dispatcher; err != nil {
		t.Fatal(err)
	}
	if got := rec.runs(); len(got) != queues {
		t.Errorf("ran %v, want every queue's job once", got)
	}
}
