package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// adoptCounter is a runner whose jobs run until ctx ends (then they
// detach if the worker stops, else end with 143), and whose adoptions
// write "more\n" and end as adopt says.
type adoptCounter struct {
	mu           sync.Mutex
	runs, adopts int
	started      chan struct{}
	adopt        func(ctx context.Context) (int, error)
}

func (a *adoptCounter) Run(ctx context.Context, j runner.Job) (int, error) {
	a.mu.Lock()
	a.runs++
	a.mu.Unlock()
	fmt.Fprint(j.Log, "partial line")
	close(a.started)
	<-ctx.Done()
	if errors.Is(context.Cause(ctx), runner.ErrStopping) {
		return 0, runner.ErrDetached
	}
	return 143, nil
}

func (a *adoptCounter) Adopt(ctx context.Context, j runner.Job, notice string) (int, error) {
	a.mu.Lock()
	a.adopts++
	a.mu.Unlock()
	fmt.Fprint(j.Log, notice+"more\n")
	return a.adopt(ctx)
}

func (a *adoptCounter) Cleanup(context.Context, runner.Job) error { return nil }

// A worker that stops (SIGTERM: its context ends) leaves its running job
// running, its entry in running/ and its state running; the next worker
// adopts it, once, and records the result the adoption returns. Before
// adoption the stop cancelled the job ("the worker was stopped").
func TestStopLeavesJobForAdoption(t *testing.T) {
	for _, tt := range []struct {
		name      string
		adopt     func(ctx context.Context) (int, error)
		prepare   func(s *queue.Store) // before the next worker starts
		wantState queue.State
		wantExit  *int
	}{
		{"exits 3", func(context.Context) (int, error) { return 3, nil }, nil, queue.Failed, ptr(3)},
		{"exits 0", func(context.Context) (int, error) { return 0, nil }, nil, queue.Succeeded, ptr(0)},
		{"gone", func(context.Context) (int, error) { return 0, runner.ErrGone }, nil, queue.Lost, nil},
		// The deadline counts from the job's start, not the adoption's.
		{"timed out before adoption", func(ctx context.Context) (int, error) { <-ctx.Done(); return 137, nil },
			func(s *queue.Store) {
				s.Update("r", 0, func(j *queue.Job) error { j.StartedAt = j.StartedAt.Add(-time.Hour); return nil })
			}, queue.TimedOut, ptr(137)},
		{"cancelled", func(ctx context.Context) (int, error) { <-ctx.Done(); return 143, nil },
			func(s *queue.Store) {
				if _, err := s.Cancel("r", 0); err != nil {
					t.Fatal(err)
				}
			}, queue.Cancelled, ptr(143)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			s.Enqueue(newJob("r", "q"))
			r := &adoptCounter{started: make(chan struct{}), adopt: tt.adopt}
			w := &Worker{Store: s, Runners: map[string]runner.Runner{"exec": r}, Poll: 10 * time.Millisecond}
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Drain(ctx, "q", false) }()
			<-r.started
			stop() // SIGTERM
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("drain: %v", err)
			}
			j, _ := s.Job("r", 0)
			if j.State != queue.Running {
				t.Fatalf("after the worker stopped, the job is %s (%s), want running", j.State, j.Error)
			}
			if es, _ := os.ReadDir(filepath.Join(s.Dir(), "queues", "q", "running")); len(es) != 1 {
				t.Errorf("running entries: %v", es)
			}
			if s.Handled("r", 0) {
				t.Error("the stopped worker still holds the job")
			}
			if tt.prepare != nil {
				tt.prepare(s)
			}
			if err := w.Drain(context.Background(), "q", false); err != nil {
				t.Fatal(err)
			}
			j, _ = s.Job("r", 0)
			if j.State != tt.wantState || fmt.Sprint(deref(j.ExitCode)) != fmt.Sprint(deref(tt.wantExit)) {
				t.Errorf("job %s exit %v (%s), want %s exit %v", j.State, deref(j.ExitCode), j.Error, tt.wantState, deref(tt.wantExit))
			}
			if r.runs != 1 || r.adopts != 1 || j.Adopted != 1 {
				t.Errorf("runs %d, adoptions %d, recorded adoptions %d; want 1 each", r.runs, r.adopts, j.Adopted)
			}
			log, _ := os.ReadFile(s.LogPath("r", 0))
			if strings.Count(string(log), "jobq: job 0 of r") != 1 || !strings.Contains(string(log), "partial line"+runner.Notice+"more\n") {
				t.Errorf("log:\n%s", log)
			}
			for _, sub := range []string{"pending", "running"} {
				if es, _ := os.ReadDir(filepath.Join(s.Dir(), "queues", "q", sub)); len(es) != 0 {
					t.Errorf("%s entries left: %v", sub, es)
				}
			}
		})
	}
}

// An adopted job holds a slot: with JOBQ_SLOTS=1, another queue's job
// waits until the adoption ends.
func TestAdoptedJobHoldsSlot(t *testing.T) {
	s := newStore(t)
	j0 := newJob("r", "q")
	j0.User = "alice"
	s.Enqueue(j0)
	r := &adoptCounter{started: make(chan struct{})}
	release, adopting := make(chan struct{}), make(chan struct{})
	r.adopt = func(context.Context) (int, error) { close(adopting); <-release; return 0, nil }
	w := &Worker{Store: s, Runners: map[string]runner.Runner{"exec": r}, Poll: 10 * time.Millisecond, Slots: 1}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Drain(ctx, "q", false) }()
	<-r.started
	stop()
	<-done

	adopted := make(chan error, 1)
	go func() { adopted <- w.Drain(context.Background(), "q", false) }()
	<-adopting
	j1 := newJob("other", "q2")
	j1.User = "bob"
	s.Enqueue(j1)
	ran := make(chan struct{})
	w2 := &Worker{Store: s, Runners: runWith(func(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
		close(ran)
		return 0, nil
	}), Poll: 10 * time.Millisecond, Slots: 1}
	waited := make(chan error, 1)
	go func() { waited <- w2.Drain(context.Background(), "q2", false) }()
	// The other job waits for the slot the adoption holds.
	for deadline := time.Now().Add(10 * time.Second); s.Waiting("other", 0) == "" && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-ran:
		t.Fatal("a job started while an adopted job held the only slot")
	default:
	}
	if why := s.Waiting("other", 0); !strings.Contains(why, "all job slots taken") {
		t.Errorf("the other job waits because %q", why)
	}
	close(release)
	if err := <-adopted; err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
}

func ptr(n int) *int { return &n }

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
