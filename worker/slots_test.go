package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq/jobq/queue"
)

// 7d: a slot directory that cannot be used (here a file) is logged once,
// and Drain pauses between tries instead of spinning.
func TestSlotFailureBacksOff(t *testing.T) {
	s := newStore(t)
	s.Enqueue(newJob("r", "q"))
	slots := filepath.Join(s.Dir(), "slots")
	os.RemoveAll(slots)
	os.WriteFile(slots, []byte("not a directory"), 0o600)
	var logged []string
	var pauses []time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &Worker{Store: s, Runners: runWith((&recorder{}).run), Poll: 10 * time.Millisecond,
		Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }}
	w.pause = func(ctx context.Context, d time.Duration) bool {
		pauses = append(pauses, d)
		if len(pauses) == 8 {
			cancel()
		}
		return ctx.Err() == nil
	}
	// A Drain that spins never pauses: stopped here, it fails below.
	spin := time.AfterFunc(time.Minute, cancel)
	defer spin.Stop()
	if err := w.Drain(ctx, "q", false); !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain: %v", err)
	}
	if len(pauses) < 8 {
		t.Fatalf("%d pauses in a minute of failing tries: it spins", len(pauses))
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "not a directory") {
		t.Errorf("logged %q, want the error once", logged)
	}
	for i := 1; i < len(pauses); i++ {
		if pauses[i] < pauses[i-1] || pauses[i] > maxBackoff {
			t.Errorf("pauses %v: not backing off", pauses)
			break
		}
	}
	if pauses[len(pauses)-1] <= w.Poll {
		t.Errorf("pauses %v: not backing off", pauses)
	}
}

// 5d: while the data directory's filesystem has less than MinFree, jobs
// wait, say why in the listing and the log, and can be cancelled; they
// start once space returns.
func TestWaitForSpace(t *testing.T) {
	s := newStore(t)
	s.Enqueue(newJob("r", "q"))
	s.Enqueue(newJob("r", "q"))
	var mu sync.Mutex
	free := int64(200 << 20)
	waits := make(chan struct{}) // each pause waits for the test
	rec := &recorder{}
	w := &Worker{Store: s, Runners: runWith(rec.run), MinFree: 1 << 30,
		FreeSpace: func(string) (int64, error) {
			mu.Lock()
			defer mu.Unlock()
			return free, nil
		}}
	w.pause = func(ctx context.Context, d time.Duration) bool {
		waits <- struct{}{}
		return ctx.Err() == nil
	}
	done := make(chan error)
	go func() { done <- w.Drain(context.Background(), "q", false) }()
	select {
	case <-waits:
	case err := <-done:
		t.Fatalf("Drain returned (%v) without waiting for space: ran %v", err, rec.runs())
	}
	const why = "200 MiB free, JOBQ_MIN_FREE=1g"
	if got := s.Waiting("r", 0); got != why {
		t.Errorf("listing: waiting %q, want %q", got, why)
	}
	if log, _ := os.ReadFile(s.LogPath("r", 0)); string(log) != "jobq: job 0 waits to start: "+why+"\n" {
		t.Errorf("log of the waiting job: %q", log)
	}
	if j, _ := s.Job("r", 0); j.State != queue.Queued {
		t.Errorf("a job waiting for space is %s", j.State)
	}
	if _, err := s.Cancel("r", 0); err != nil {
		t.Fatal(err)
	}
	// Job 0 is skipped at its next look; then job 1 waits.
	for i := 0; s.Waiting("r", 1) == ""; i++ {
		if i == 10 {
			t.Fatal("job 1 does not wait after job 0 was cancelled")
		}
		<-waits
	}
	if got := s.Waiting("r", 1); got != why {
		t.Errorf("job 1: waiting %q", got)
	}
	mu.Lock()
	free = 2 << 30
	mu.Unlock()
	go func() {
		for range waits {
		}
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(waits)
	if got := rec.runs(); !slices.Equal(got, []string{"r/1"}) {
		t.Errorf("ran %v, want r/1 only", got)
	}
	j0, _ := s.Job("r", 0)
	j1, _ := s.Job("r", 1)
	if j0.State != queue.Cancelled || j1.State != queue.Succeeded {
		t.Errorf("states %s, %s", j0.State, j1.State)
	}
	log, _ := os.ReadFile(s.LogPath("r", 1))
	if !strings.HasPrefix(string(log), "jobq: job 1 waits to start: "+why+"\njobq: job 1 of r") {
		t.Errorf("log of the job that waited:\n%s", log)
	}
	if got := s.Waiting("r", 1); got != "" {
		t.Errorf("a finished job still waits: %q", got)
	}
}

// A job's claim lock that cannot be taken (here a directory where the
// lock file goes) is jobq's own files failing: logged once, tried again
// with pauses between, never run without its lock, and run once the lock
// can be taken.
func TestClaimLockFailureBacksOff(t *testing.T) {
	s := newStore(t)
	s.Enqueue(newJob("r", "q"))
	lock := filepath.Join(s.Dir(), "repos", "r", "0", "lock")
	if err := os.Mkdir(lock, 0o700); err != nil {
		t.Fatal(err)
	}
	var logged []string
	pauses := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{}
	w := &Worker{Store: s, Runners: runWith(rec.run), Poll: time.Millisecond,
		Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }}
	w.pause = func(ctx context.Context, d time.Duration) bool {
		if pauses++; pauses == 5 {
			cancel()
		}
		return ctx.Err() == nil
	}
	spin := time.AfterFunc(time.Minute, cancel)
	defer spin.Stop()
	if err := w.Drain(ctx, "q", false); !errors.Is(err, context.Canceled) || pauses < 5 {
		t.Fatalf("Drain: %v after %d pauses", err, pauses)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "is a directory") || len(rec.runs()) != 0 {
		t.Fatalf("logged %q, ran %v; want the error once and nothing run", logged, rec.runs())
	}
	os.Remove(lock)
	w.pause = nil
	if err := w.Drain(context.Background(), "q", false); err != nil {
		t.Fatal(err)
	}
	if got := rec.runs(); len(got) != 1 {
		t.Errorf("ran %v once the lock could be taken, want the job", got)
	}
}
