package worker

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// reserver is a Runner with one ID range: Reserve says every range is in
// use for its first waits looks, and records what the job looked like
// meanwhile.
type reserver struct {
	testRunner
	store *queue.Store
	waits int

	mu       sync.Mutex
	looks    int
	states   []queue.State // the job's, at each look
	waiting  []string      // the listing's, at each look after the first
	slotFree []bool        // whether another job could take a slot, at each look
	events   []string      // reserve, run, cleanup, release of the range
}

func (r *reserver) Reserve(ctx context.Context, j *queue.Job) (func(), string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, _ := r.store.Job(j.Repo, j.ID)
	r.states = append(r.states, cur.State)
	if r.looks > 0 {
		r.waiting = append(r.waiting, r.store.Waiting(j.Repo, j.ID))
	}
	// The job must hold the only slot while it reserves.
	other := newJob("other", "other")
	other.QueuedAt = time.Now()
	sw := r.store.WaitForSlot("other", other)
	slot, _, err := sw.Try(1, 1)
	r.slotFree = append(r.slotFree, err != nil || slot != nil)
	if slot != nil {
		slot.Release()
	}
	sw.Leave()
	if r.looks++; r.looks <= r.waits {
		return nil, "waiting for an ID range: all 1 in use", nil
	}
	r.events = append(r.events, "reserve")
	return func() {
		r.mu.Lock()
		r.events = append(r.events, "release")
		r.mu.Unlock()
	}, "", nil
}

func (r *reserver) event(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// A job waits for its runner's reservation (an ID range) queued, with its
// reason in the listing and its log, while it holds its slot; its timeout
// counts from its start, not from its wait: a job that waited longer than
// its timeout for a range still runs to its end. The range is let go
// after the job's clean-up, before its slot.
func TestReserveBeforeClaim(t *testing.T) {
	s := newStore(t)
	r := &reserver{store: s, waits: 4}
	r.testRunner = testRunner{
		run: func(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
			r.event("run")
			select {
			case <-ctx.Done():
				return 0, context.Cause(ctx)
			case <-time.After(50 * time.Millisecond):
			}
			return 0, nil
		},
		cleanup: func(ctx context.Context, j runner.Job) error {
			r.event("cleanup")
			return nil
		},
	}
	j := newJob("r", "q")
	j.Options.Timeout = 150 * time.Millisecond
	s.Enqueue(j)
	w := &Worker{Store: s, Slots: 1, Runners: map[string]runner.Runner{"exec": r},
		pause: func(ctx context.Context, d time.Duration) bool {
			time.Sleep(60 * time.Millisecond) // 4 waits: longer than the timeout
			return ctx.Err() == nil
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Drain(ctx, "q", false); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Job("r", 0)
	if got.State != queue.Succeeded {
		t.Errorf("job %s (%s), want succeeded", got.State, got.Error)
	}
	for i, st := range r.states {
		if st != queue.Queued {
			t.Errorf("look %d: the job was %s while it waited for its range", i, st)
		}
	}
	for i, free := range r.slotFree {
		if free {
			t.Errorf("look %d: the job did not hold its slot", i)
		}
	}
	for _, why := range r.waiting {
		if why != "waiting for an ID range: all 1 in use" {
			t.Errorf("listing while waiting: %q", why)
		}
	}
	if len(r.waiting) != r.waits {
		t.Errorf("%d looks at the listing, want %d", len(r.waiting), r.waits)
	}
	if s.Waiting("r", 0) != "" {
		t.Error("still waiting")
	}
	if want := "reserve run cleanup release"; strings.Join(r.events, " ") != want {
		t.Errorf("events %q, want %q", r.events, want)
	}
	log, _ := os.ReadFile(s.LogPath("r", 0))
	if !strings.HasPrefix(string(log), "jobq: job 0 waits to start: waiting for an ID range: all 1 in use\njobq: job 0 of r") ||
		strings.Count(string(log), "waits to start") != 1 {
		t.Errorf("log:\n%s", log)
	}
	// Its slot is free again.
	sw := s.WaitForSlot("other", newJob("o", "other"))
	if slot, why, err := sw.Try(1, 1); slot == nil || err != nil {
		t.Errorf("slot after the job: %q %v", why, err)
	} else {
		slot.Release()
	}
	sw.Leave()
}

// A job cancelled while it waits for its range never starts, and what was
// reserved is let go.
func TestReserveCancelled(t *testing.T) {
	s := newStore(t)
	r := &reserver{store: s, waits: 1 << 30}
	ran := false
	r.testRunner = testRunner{run: func(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
		ran = true
		return 0, nil
	}}
	s.Enqueue(newJob("r", "q"))
	w := &Worker{Store: s, Slots: 1, Runners: map[string]runner.Runner{"exec": r},
		pause: func(ctx context.Context, d time.Duration) bool {
			r.mu.Lock()
			looks := r.looks
			r.mu.Unlock()
			if looks == 3 {
				if _, err := s.Cancel("r", 0); err != nil {
					t.Error(err)
				}
			}
			return ctx.Err() == nil
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Drain(ctx, "q", false); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Job("r", 0); got.State != queue.Cancelled || ran {
		t.Errorf("job %s, ran %v", got.State, ran)
	}
}

// unreachablePlacer answers every look with an unreachable pool (the
// detail naming an address and a known_hosts path), or with every host
// busy for its first busy looks.
type unreachablePlacer struct {
	testRunner
	busy    int
	mu      sync.Mutex
	looks   int
	busied  int // looks of the busy pool
	waiting []string
	store   *queue.Store
}

func (p *unreachablePlacer) Place(ctx context.Context, j *queue.Job) (string, func(), string, error) {
	if j.Options.Connection == "" {
		return "", nil, "", nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.looks++; p.looks > 1 {
		p.waiting = append(p.waiting, p.store.Waiting(j.Repo, j.ID))
	}
	if j.Options.Connection == "busy" {
		if p.busied++; p.busied <= p.busy {
			return "", nil, "waiting for a build host: all 2 busy", nil
		}
		return "b0", func() {}, "", nil
	}
	return "", nil, "", fmt.Errorf("no build host of %s can be reached (b0: build host localhost:2299 is not in /home/git/.ssh/known_hosts): %w",
		j.Options.Connection, runner.ErrUnreachable)
}

// A job none of whose build hosts can be reached waits, queued, with a
// reason that names no address or path (those go to the worker's log),
// then fails after its timeout without running: its queue's next job runs.
// A job whose hosts are all busy waits on, past its timeout, and runs.
func TestUnreachableHostFails(t *testing.T) {
	s := newStore(t)
	var ran []string
	p := &unreachablePlacer{store: s, busy: 20}
	p.testRunner = testRunner{run: func(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
		ran = append(ran, j.Repo)
		return 0, nil
	}}
	var mu sync.Mutex
	var logged []string
	w := &Worker{Store: s, Slots: 1, Runners: map[string]runner.Runner{"exec": p},
		Logf: func(f string, a ...any) {
			mu.Lock()
			logged = append(logged, fmt.Sprintf(f, a...))
			mu.Unlock()
		},
		pause: func(ctx context.Context, d time.Duration) bool {
			time.Sleep(10 * time.Millisecond)
			return ctx.Err() == nil
		}}
	down := newJob("down", "q")
	down.Options.Connection = "pool"
	down.Options.Timeout = 100 * time.Millisecond
	s.Enqueue(down)
	busy := newJob("busy", "q")
	busy.Options.Connection = "busy"
	busy.Options.Timeout = 100 * time.Millisecond // 20 busy looks take longer
	s.Enqueue(busy)
	s.Enqueue(newJob("next", "q"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := w.Drain(ctx, "q", false); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Job("down", 0)
	if got.State != queue.Failed || got.ExitCode != nil || !strings.HasPrefix(got.Error, "build host unreachable: ") {
		t.Errorf("unreachable job: %s %v %q", got.State, got.ExitCode, got.Error)
	}
	if d := got.FinishedAt.Sub(start); d < down.Options.Timeout {
		t.Errorf("failed after %s, before its timeout", d)
	}
	if b, _ := s.Job("busy", 0); b.State != queue.Succeeded || b.Host != "b0" {
		t.Errorf("busy pool's job: %s on %q", b.State, b.Host)
	}
	if n, _ := s.Job("next", 0); n.State != queue.Succeeded {
		t.Errorf("next job: %s", n.State)
	}
	if strings.Join(ran, " ") != "busy next" {
		t.Errorf("ran %q", ran)
	}
	log, _ := os.ReadFile(s.LogPath("down", 0))
	for _, want := range []string{"jobq: job 0 waits to start: build host unreachable\n", "jobq: job 0 of down",
		"\njobq: failed: build host unreachable: none of its build hosts could be reached within JOBQ_TIMEOUT=100ms; it never started, after "} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	for _, secret := range []string{"localhost", "2299", "/home", "known_hosts"} {
		if strings.Contains(string(log), secret) || strings.Contains(got.Error, secret) {
			t.Errorf("a reader sees %q:\n%s\n%s", secret, log, got.Error)
		}
		for _, why := range p.waiting {
			if strings.Contains(why, secret) {
				t.Errorf("the listing shows %q: %q", secret, why)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(strings.Join(logged, "\n"), "is not in /home/git/.ssh/known_hosts"); n != 1 {
		t.Errorf("the worker's log has the detail %d times, want once: %q", n, logged)
	}
}
