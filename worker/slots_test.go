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
	"syscall"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/termsafe"
	"github.com/jobq/jobq/queue"
)

// A slot directory that cannot be used (here a file) is logged once,
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

// While the data directory's filesystem has less than MinFree, jobs
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
		FreeSpace: func(string) (Free, error) {
			mu.Lock()
			defer mu.Unlock()
			return Free{Bytes: free, Inodes: -1}, nil
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
	const why = "200.0 MiB free, JOBQ_MIN_FREE=1g"
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

// The store failing for a while (here the repository's lock is a
// directory: flock fails, as it would on EMFILE or EIO) leaves the job's
// entry where it is: logged once, tried again after pauses, run once the
// store works again, rather than the entry removed and the job queued
// for ever.
func TestStoreFailureKeepsEntry(t *testing.T) {
	s := newStore(t)
	s.Enqueue(newJob("r", "q"))
	lock := filepath.Join(s.Dir(), "repos", "r", "lock")
	os.Remove(lock)
	if err := os.Mkdir(lock, 0o700); err != nil {
		t.Fatal(err)
	}
	var logged []string
	pauses := 0
	rec := &recorder{}
	w := &Worker{Store: s, Runners: runWith(rec.run), Poll: time.Millisecond,
		Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }}
	w.pause = func(ctx context.Context, d time.Duration) bool {
		if pauses++; pauses == 3 {
			os.Remove(lock) // the store works again
		}
		return pauses < 100
	}
	if err := w.Drain(context.Background(), "q", false); err != nil {
		t.Fatal(err)
	}
	if got := rec.runs(); len(got) != 1 || pauses < 3 || len(logged) != 1 {
		t.Fatalf("ran %v after %d pauses, logged %q; want the job once, after the store worked again, one line", got, pauses, logged)
	}
}

// A claim lock path that is not a file (a directory, a dangling symlink, a
// fifo) is replaced: the job and the jobs behind it run, where a dangling
// symlink could lose the job and a directory stop the queue.
func TestBadClaimLockPath(t *testing.T) {
	for name, make := range map[string]func(string) error{
		"directory":        func(p string) error { return os.Mkdir(p, 0o700) },
		"dangling symlink": func(p string) error { return os.Symlink("/nonexistent-jobq/x", p) },
		"fifo":             func(p string) error { return syscall.Mkfifo(p, 0o600) },
	} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			s.Enqueue(newJob("r", "q"))
			s.Enqueue(newJob("other", "q"))
			if err := make(filepath.Join(s.Dir(), "repos", "r", "0", "lock")); err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			w := &Worker{Store: s, Runners: runWith(rec.run)}
			w.pause = func(context.Context, time.Duration) bool { return false }
			if err := w.Drain(context.Background(), "q", false); err != nil {
				t.Fatal(err)
			}
			if got := rec.runs(); !slices.Equal(got, []string{"r/0", "other/0"}) {
				t.Errorf("ran %v, want both jobs in order", got)
			}
		})
	}
}

// A claim whose record cannot be marked running after its entry moved
// puts the entry back: the job runs at the next try, not when some later
// push wakes the queue (left in running/, it would stay there after the
// worker exits).
func TestClaimFailurePutsEntryBack(t *testing.T) {
	s := newStore(t)
	s.Enqueue(newJob("r", "q"))
	lock := filepath.Join(s.Dir(), "repos", "r", "lock")
	looks, pauses := 0, 0
	rec := &recorder{}
	w := &Worker{Store: s, Runners: runWith(rec.run), MinFree: 1,
		// Called between Peek and Claim: the first time, the repository's
		// lock breaks there, so Claim's update fails after its rename.
		FreeSpace: func(string) (Free, error) {
			if looks++; looks == 1 {
				os.Remove(lock)
				os.Mkdir(lock, 0o700)
			}
			return Free{Bytes: 1 << 40, Inodes: -1}, nil
		}}
	w.pause = func(context.Context, time.Duration) bool {
		pauses++
		os.Remove(lock)
		return pauses < 100
	}
	if err := w.Drain(context.Background(), "q", false); err != nil {
		t.Fatal(err)
	}
	j, _ := s.Job("r", 0)
	if got := rec.runs(); len(got) != 1 || j.State != queue.Succeeded || pauses == 0 {
		t.Fatalf("ran %v, job %s, %d pauses; want it run once, after a pause", got, j.State, pauses)
	}
}

// A follower of a job cut at the log limit ends with the job's result
// line, though the log was truncated below what it had already read:
// otherwise the push's output just stops.
func TestFollowerSeesResultAfterLogCut(t *testing.T) {
	s := newStore(t)
	s.Enqueue(newJob("r", "q"))
	w := &Worker{Store: s, LogLimit: 4096, Poll: 20 * time.Millisecond,
		Runners: runWith(func(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
			line := strings.Repeat("x", 1023) + "\n"
			for ctx.Err() == nil {
				log.WriteString(line)
				time.Sleep(time.Millisecond)
			}
			return 137, nil
		})}
	drained := make(chan error, 1)
	go func() { drained <- w.Drain(context.Background(), "q", false) }()
	defer func() { <-drained }() // the worker's last writes before the test's clean-up
	// As jobq REPO ID follows it: the result line, read again from where
	// the cut log has it, is shown as jobq's, not marked as the job's.
	var out syncBuffer
	own := queue.OpenOwn(s.LogPath("r", 0))
	defer own.Close()
	shown := termsafe.NewLogWriter(&out, own)
	j, err := s.Follow(context.Background(), "r", 0, shown, 5*time.Millisecond, nil)
	shown.Close()
	if err != nil || j.State != queue.Failed {
		t.Fatalf("follow: %+v, %v", j, err)
	}
	text := strings.TrimRight(out.String(), "\n")
	last := text[strings.LastIndexByte(text, '\n')+1:]
	if !strings.HasPrefix(last, "jobq: failed") || !strings.Contains(last, "log limit") {
		t.Errorf("the follower's last line is %.120q, want the result", last)
	}
}

// A queue entry that names no job and cannot be removed (here a
// directory with something in it) is logged once and tried again after
// pauses, not taken again at once for ever (Drain would spin at full
// CPU).
func TestUnremovableEntryBacksOff(t *testing.T) {
	s := newStore(t)
	s.Enqueue(newJob("r", "q")) // makes the queue
	bad := filepath.Join(s.Dir(), "queues", "q", "pending", "00000000000000000001-7-r")
	if err := os.MkdirAll(filepath.Join(bad, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	var logged []string
	pauses := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &Worker{Store: s, Runners: runWith((&recorder{}).run), Poll: time.Millisecond,
		Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }}
	w.pause = func(ctx context.Context, d time.Duration) bool {
		if pauses++; pauses == 5 {
			cancel()
		}
		return ctx.Err() == nil
	}
	spin := time.AfterFunc(30*time.Second, cancel) // it spins: stop it, and fail below
	defer spin.Stop()
	w.Drain(ctx, "q", false)
	if pauses < 5 || len(logged) != 1 {
		t.Errorf("%d pauses, logged %q; want pauses between tries and one line", pauses, logged)
	}
}
