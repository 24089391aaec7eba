package queue

import (
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// claimNext plays the worker for one entry of queue q: it claims the
// oldest pending job, ends the claim, and returns the job as the claim
// left it.
func claimNext(t *testing.T, s *Store, q string) *Job {
	t.Helper()
	h, err := s.HoldQueue(q, false)
	if err != nil || h == nil {
		t.Fatalf("hold %s: %v", q, err)
	}
	defer h.Unlock()
	es, err := h.Pending()
	if err != nil || len(es) == 0 {
		t.Fatalf("pending of %s: %v, %v", q, es, err)
	}
	c, err := h.Peek(es[0])
	if err != nil || c == nil {
		t.Fatalf("peek: %v, %v", c, err)
	}
	if err := h.Claim(c); err != nil {
		t.Fatal(err)
	}
	h.Done(c)
	return c.Job
}

// The window the wake-up protocol exists for: a push lands after the
// worker found the queue empty but before it let go. The hook must start
// no second worker, and the worker's Release must take the queue again.
func TestWakeUpInExitWindow(t *testing.T) {
	s := newStore(t)
	h, err := s.HoldQueue("q", false)
	if err != nil || h == nil {
		t.Fatal(err)
	}
	if es, _ := h.Pending(); len(es) != 0 {
		t.Fatalf("pending %v", es)
	}
	// The push, in the window.
	if _, err := s.Enqueue(newJob("r", "q")); err != nil {
		t.Fatal(err)
	}
	started := 0
	if err := s.EnsureWorker("q", func() error { started++; return nil }); err != nil {
		t.Fatal(err)
	}
	if started != 0 {
		t.Error("the hook started a worker while one held the queue")
	}
	again, err := h.Release()
	if err != nil || !again {
		t.Fatalf("Release: again %v, %v; the job would wait for a push that never comes", again, err)
	}
	if es, _ := h.Pending(); len(es) != 1 {
		t.Errorf("pending %v, want the pushed job", es)
	}
	h.Unlock()
	// No worker holds the queue: the next hook starts one, once.
	if err := s.EnsureWorker("q", func() error { started++; return nil }); err != nil || started != 1 {
		t.Errorf("EnsureWorker with no worker: started %d, %v", started, err)
	}
}

// A claim's lock tells readers whether the job's worker lives: held while
// the claim lasts, free when its holder exits, even killed, and never
// mistaken for a reused pid.
func TestHandled(t *testing.T) {
	s := newStore(t)
	s.Enqueue(newJob("r", "q"))
	if s.Handled("r", 0) {
		t.Fatal("a queued job nobody claimed is handled")
	}
	h, _ := s.HoldQueue("q", false)
	es, _ := h.Pending()
	c, err := h.Peek(es[0])
	if err != nil || c == nil {
		t.Fatal(err)
	}
	if !s.Handled("r", 0) {
		t.Error("a claimed job is not handled")
	}
	h.Drop(c)
	h.Unlock()
	if s.Handled("r", 0) {
		t.Error("a dropped claim still handles the job")
	}
	// Another process holds the lock and is killed.
	lock := filepath.Join(s.jobDir("r", 0), "lock")
	cmd := exec.Command("flock", "--no-fork", "-x", lock, "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	for i := 0; i < 200 && !s.Handled("r", 0); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !s.Handled("r", 0) {
		t.Fatal("a job another process holds is not handled")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if s.Handled("r", 0) {
		t.Error("the job of a killed worker is still handled")
	}
}

// Handled never blocks, whatever is at the lock path: a fifo opened for
// reading would wait for a writer, and hang jobq log -f and the
// listing.
func TestHandledNeverBlocks(t *testing.T) {
	s := newStore(t)
	s.Enqueue(newJob("r", "q"))
	if err := syscall.Mkfifo(filepath.Join(s.jobDir("r", 0), "lock"), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan bool)
	go func() { done <- s.Handled("r", 0) }()
	select {
	case h := <-done:
		if h {
			t.Error("a fifo counts as a held lock")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Handled blocks on a fifo")
	}
}

// A worker the hook starts before it enqueues takes the queue only after
// the hook's done: it finds the job, though it started first.
func TestStartWorkerBeforeEnqueue(t *testing.T) {
	s := newStore(t)
	found := make(chan int, 1)
	done, started, err := s.StartWorker("q", func() error {
		go func() {
			h, err := s.HoldQueue("q", true)
			if err != nil || h == nil {
				found <- -1
				return
			}
			es, _ := h.Pending()
			h.Unlock()
			found <- len(es)
		}()
		return nil
	})
	if err != nil || !started {
		t.Fatalf("StartWorker: %v, %v", started, err)
	}
	time.Sleep(50 * time.Millisecond) // the worker is up before the entry
	if _, err := s.Enqueue(newJob("r", "q")); err != nil {
		t.Fatal(err)
	}
	// A second hook meanwhile starts none: one is on its way.
	again := 0
	if err := s.EnsureWorker("q", func() error { again++; return nil }); err != nil || again != 0 {
		t.Errorf("a second hook started %d workers (%v)", again, err)
	}
	done()
	if n := <-found; n != 1 {
		t.Errorf("the early worker found %d entries, want the job", n)
	}
}
