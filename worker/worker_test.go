package worker

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/faults"
	"github.com/jobq/jobq/internal/testenv"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

func newStore(t *testing.T) *queue.Store {
	t.Helper()
	s, err := queue.Open(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newJob(repo, q string) *queue.Job {
	return &queue.Job{Repo: repo, Queue: q, Ref: "refs/heads/main", NewRev: strings.Repeat("a", 40),
		Options: queue.Options{Command: "x", Runner: "exec", Timeout: time.Minute, Keep: queue.DefaultKeep}}
}

// runFunc runs a job in a test: a Runner with nothing to clean up.
type runFunc func(ctx context.Context, j *queue.Job, log *os.File) (int, error)

func (f runFunc) Run(ctx context.Context, j runner.Job) (int, error) {
	return f(ctx, j.Job, j.Log)
}
func (f runFunc) Adopt(context.Context, runner.Job, string) (int, error) {
	return 0, runner.ErrGone
}
func (f runFunc) Cleanup(context.Context, runner.Job) error { return nil }

// testRunner runs jobs with run, adopts them with adopt (nil: gone) and
// cleans up with cleanup (nil: nothing).
type testRunner struct {
	run     runFunc
	adopt   func(ctx context.Context, j *queue.Job, log *os.File, notice string) (int, error)
	cleanup func(ctx context.Context, j runner.Job) error
}

func (r testRunner) Run(ctx context.Context, j runner.Job) (int, error) {
	return r.run(ctx, j.Job, j.Log)
}

func (r testRunner) Adopt(ctx context.Context, j runner.Job, notice string) (int, error) {
	if r.adopt == nil {
		return 0, runner.ErrGone
	}
	return r.adopt(ctx, j.Job, j.Log, notice)
}

func (r testRunner) Cleanup(ctx context.Context, j runner.Job) error {
	if r.cleanup == nil {
		return nil
	}
	return r.cleanup(ctx, j)
}

// runWith runs the tests' jobs (JOBQ_RUNNER=exec) with f.
func runWith(f runFunc) map[string]runner.Runner { return map[string]runner.Runner{"exec": f} }

// recorder runs jobs by recording the order they ran in.
type recorder struct {
	mu  sync.Mutex
	ran []string
}

func (r *recorder) run(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
	r.mu.Lock()
	r.ran = append(r.ran, fmt.Sprintf("%s/%d", j.Repo, j.ID))
	r.mu.Unlock()
	fmt.Fprintf(log, "ran %s %d\n", j.Repo, j.ID)
	return 0, nil
}

func (r *recorder) runs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ran)
}

func TestSharedQueueFIFO(t *testing.T) {
	s := newStore(t)
	var want []string
	for i := range 20 {
		repo := []string{"a", "b", "c/d"}[i%3]
		j := newJob(repo, "shared")
		ahead, err := s.Enqueue(j)
		if err != nil {
			t.Fatal(err)
		}
		if ahead != i {
			t.Errorf("job %d: %d ahead, want %d", i, ahead, i)
		}
		want = append(want, fmt.Sprintf("%s/%d", repo, j.ID))
	}
	rec := &recorder{}
	w := &Worker{Store: s, Runners: runWith(rec.run), Poll: time.Millisecond}
	if err := w.Drain(context.Background(), "shared", false); err != nil {
		t.Fatal(err)
	}
	if got := rec.runs(); !slices.Equal(got, want) {
		t.Errorf("ran %v\nwant %v", got, want)
	}
	j, _ := s.Job("c/d", 0)
	if j.State != queue.Succeeded || *j.ExitCode != 0 {
		t.Errorf("job c/d 0: %+v", j)
	}
	log, _ := os.ReadFile(s.LogPath("c/d", 0))
	if !strings.HasPrefix(string(log), "jobq: job 0 of c/d") || !strings.HasSuffix(string(log), "\n") || !strings.Contains(string(log), "ran c/d 0\njobq: succeeded, exit code 0") {
		t.Errorf("log:\n%s", log)
	}
}

func TestCancelQueuedAndRunning(t *testing.T) {
	s := newStore(t)
	j0, j1 := newJob("r", "q"), newJob("r", "q")
	s.Enqueue(j0)
	s.Enqueue(j1)
	if j, err := s.Cancel("r", 1); err != nil || j.State != queue.Cancelled {
		t.Fatalf("cancel queued: %+v %v", j, err)
	}
	started := make(chan struct{})
	run := func(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
		close(started)
		<-ctx.Done()
		return 143, nil
	}
	w := &Worker{Store: s, Runners: runWith(run), Poll: 10 * time.Millisecond}
	done := make(chan error)
	go func() { done <- w.Drain(context.Background(), "q", false) }()
	<-started
	if _, err := s.Cancel("r", 0); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for id, want := range []queue.State{queue.Cancelled, queue.Cancelled} {
		if j, _ := s.Job("r", int64(id)); j.State != want {
			t.Errorf("job %d: %s, want %s", id, j.State, want)
		}
	}
	if _, err := os.Stat(s.LogPath("r", 1)); err == nil {
		t.Error("a job cancelled while queued has a log: it ran")
	}
}

func TestTimeoutState(t *testing.T) {
	s := newStore(t)
	j := newJob("r", "q")
	j.Options.Timeout = 50 * time.Millisecond
	s.Enqueue(j)
	w := &Worker{Store: s, Runners: runWith(func(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
		<-ctx.Done()
		return 137, nil
	})}
	if err := w.Drain(context.Background(), "q", false); err != nil {
		t.Fatal(err)
	}
	if j, _ := s.Job("r", 0); j.State != queue.TimedOut {
		t.Errorf("state %s", j.State)
	}
}

func TestPrune(t *testing.T) {
	s := newStore(t)
	for range 6 {
		j := newJob("r", "q")
		j.Options.Keep = 2
		s.Enqueue(j)
	}
	w := &Worker{Store: s, Runners: runWith((&recorder{}).run)}
	if err := w.Drain(context.Background(), "q", false); err != nil {
		t.Fatal(err)
	}
	ls, _ := s.Jobs("r", 0)
	if len(ls) != 2 || ls[0].ID != 5 || ls[1].ID != 4 {
		t.Errorf("kept %+v", ls)
	}
	// IDs are never reused after pruning.
	j := newJob("r", "q")
	s.Enqueue(j)
	if j.ID != 6 {
		t.Errorf("next ID %d, want 6", j.ID)
	}
}

// A hook, as cmd/jobq is one: the early start of a worker, the enqueue,
// then, unless it started one, the store's wake-up call; workers are
// goroutines here.
func hookEnqueue(t *testing.T, s *queue.Store, w *Worker, wg *sync.WaitGroup) {
	start := func() error {
		started := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			close(started)
			w.Drain(context.Background(), "q", true)
		}()
		<-started
		return nil
	}
	done, early, err := s.StartWorker("q", start)
	if err != nil {
		t.Error(err)
	}
	_, err = s.Enqueue(newJob("r", "q"))
	done()
	if err != nil {
		t.Error(err)
		return
	}
	if early {
		return
	}
	if err := s.EnsureWorker("q", start); err != nil {
		t.Error(err)
	}
}

// Jobs enqueued while a worker decides to exit are still run: every job
// ends without anyone draining the queue by hand.
func TestNoLostWakeUp(t *testing.T) {
	for round := range 30 {
		s := newStore(t)
		rec := &recorder{}
		w := &Worker{Store: s, Runners: runWith(rec.run), Poll: time.Millisecond}
		var wg sync.WaitGroup
		var hooks sync.WaitGroup
		for range 20 {
			hooks.Add(1)
			go func() {
				defer hooks.Done()
				hookEnqueue(t, s, w, &wg)
			}()
		}
		hooks.Wait()
		wg.Wait() // every worker has exited: nothing more will run
		if n := len(rec.runs()); n != 20 {
			es, _ := os.ReadDir(filepath.Join(s.Dir(), "queues", "q", "pending"))
			t.Fatalf("round %d: %d of 20 jobs ran; %d left pending with no worker", round, n, len(es))
		}
	}
}

// Crash tests: a child process (this test binary, built with the
// faultinject tag) does the work with JOBQ_CRASH_AT set and is SIGKILLed
// there; then a fresh worker recovers.

const crashEnv = "JOBQ_TEST_CRASH"

func TestCrashHelper(t *testing.T) {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		return // only as a child of the crash tests
	}
	parts := strings.SplitN(spec, ":", 4) // DIR:OP:POINT:RANFILE
	s, err := queue.Open(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	switch parts[1] {
	case "enqueue":
		s.Enqueue(newJob("r", "q"))
	case "drain":
		w := &Worker{Store: s, Runners: runWith(func(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
			f, _ := os.OpenFile(parts[3], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			fmt.Fprintf(f, "%d\n", j.ID)
			f.Close()
			return 0, nil
		})}
		w.Drain(context.Background(), "q", false)
	}
	t.Fatalf("did not crash at %s", parts[2])
}

func crashChild(t *testing.T, dir, op, point, ranFile string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
	if !faults.Enabled {
		testenv.Require(t, false, "a test binary with fault points (go test -tags faultinject, as make test runs it)")
	}
	cmd.Env = append(os.Environ(), crashEnv+"="+strings.Join([]string{dir, op, point, ranFile}, ":"), "JOBQ_CRASH_AT="+point)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != -1 {
		t.Fatalf("child did not die by signal at %s: %v\n%s", point, err, out)
	}
}

func TestCrashDuringEnqueue(t *testing.T) {
	for _, tt := range []struct {
		point   string
		wantJob bool
	}{
		{"enqueue-id-spent", false},
		{"enqueue-entry-added", false},
		{"enqueue-committed", true},
	} {
		t.Run(tt.point, func(t *testing.T) {
			s := newStore(t)
			crashChild(t, s.Dir(), "enqueue", tt.point, "")
			ls, _ := s.Jobs("r", 0)
			if got := len(ls) == 1; got != tt.wantJob {
				t.Fatalf("after a crash at %s: jobs %+v", tt.point, ls)
			}
			// The queue and the next push work; no ID is used twice.
			j := newJob("r", "q")
			if _, err := s.Enqueue(j); err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			w := &Worker{Store: s, Runners: runWith(rec.run)}
			if err := w.Drain(context.Background(), "q", false); err != nil {
				t.Fatal(err)
			}
			want := []string{fmt.Sprintf("r/%d", j.ID)}
			if tt.wantJob {
				want = []string{"r/0", "r/1"}
			}
			if !slices.Equal(rec.runs(), want) {
				t.Errorf("ran %v, want %v", rec.runs(), want)
			}
			if err := s.Prune("r", 10); err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(filepath.Join(s.Dir(), "repos", "r"))
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") {
					t.Errorf("left behind: %s", e.Name())
				}
			}
		})
	}
}

func TestCrashDuringClaimAndRun(t *testing.T) {
	for _, tt := range []struct {
		point     string
		wantState queue.State
		wantRuns  int // runs in all, before and after the crash
	}{
		{"claim-moved", queue.Succeeded, 1}, // never started: it goes back and runs
		{"claim-marked", queue.Lost, 0},     // may have started: never run again
		{"run-returned", queue.Lost, 1},     // ran; its end was not recorded
	} {
		t.Run(tt.point, func(t *testing.T) {
			s := newStore(t)
			ranFile := filepath.Join(t.TempDir(), "ran")
			s.Enqueue(newJob("r", "q"))
			crashChild(t, s.Dir(), "drain", tt.point, ranFile)
			var cleaned []int64
			w := &Worker{Store: s, Runners: map[string]runner.Runner{"exec": testRunner{
				run: func(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
					f, _ := os.OpenFile(ranFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
					fmt.Fprintf(f, "%d\n", j.ID)
					f.Close()
					return 0, nil
				},
				cleanup: func(ctx context.Context, j runner.Job) error {
					cleaned = append(cleaned, j.ID)
					return nil
				}}}}
			if err := w.Drain(context.Background(), "q", false); err != nil {
				t.Fatal(err)
			}
			j, _ := s.Job("r", 0)
			if j.State != tt.wantState {
				t.Errorf("state %s, want %s", j.State, tt.wantState)
			}
			ran, _ := os.ReadFile(ranFile)
			if n := strings.Count(string(ran), "\n"); n != tt.wantRuns {
				t.Errorf("ran %d times, want %d", n, tt.wantRuns)
			}
			if tt.wantState == queue.Lost {
				if len(cleaned) != 1 {
					t.Errorf("cleanup calls for the lost job: %v", cleaned)
				}
				if log, _ := os.ReadFile(s.LogPath("r", 0)); !strings.Contains(string(log), "jobq: lost:") {
					t.Errorf("log of a lost job:\n%s", log)
				}
			}
			for _, sub := range []string{"pending", "running"} {
				if es, _ := os.ReadDir(filepath.Join(s.Dir(), "queues", "q", sub)); len(es) != 0 {
					t.Errorf("%s entries left: %v", sub, es)
				}
			}
		})
	}
}

func TestFollow(t *testing.T) {
	s := newStore(t)
	s.Enqueue(newJob("r", "q"))
	release := make(chan struct{})
	w := &Worker{Store: s, Runners: runWith(func(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
		fmt.Fprint(log, "first\n")
		<-release
		fmt.Fprint(log, "second, no newline")
		return 3, nil
	})}
	drained := make(chan error, 1)
	go func() { drained <- w.Drain(context.Background(), "q", false) }()
	// The worker prunes after the result, which Follow sees first: the
	// test's directory is removed only after the worker is done with it.
	defer func() {
		if err := <-drained; err != nil {
			t.Error(err)
		}
	}()
	var out syncBuffer
	done := make(chan *queue.Job)
	go func() {
		j, err := s.Follow(context.Background(), "r", 0, &out, 5*time.Millisecond, nil)
		if err != nil {
			t.Error(err)
		}
		done <- j
	}()
	for !strings.Contains(out.String(), "first") {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	j := <-done
	if j.State != queue.Failed || *j.ExitCode != 3 {
		t.Errorf("followed job ended %+v", j)
	}
	if !strings.Contains(out.String(), "first\nsecond, no newline\njobq: failed, exit code 3, after ") {
		t.Errorf("followed output:\n%s", out.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// The host-wide slot limit holds across queues.
func TestSlotLimit(t *testing.T) {
	for _, slots := range []int{1, 2} {
		s := newStore(t)
		for _, q := range []string{"q1", "q2", "q3"} {
			for range 3 {
				j := newJob("r-"+q, q)
				j.User = "pusher-" + q // the per-pusher cap does not bind here
				s.Enqueue(j)
			}
		}
		var mu sync.Mutex
		running, peak := 0, 0
		w := &Worker{Store: s, Slots: slots, Poll: 5 * time.Millisecond, Runners: runWith(func(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
			mu.Lock()
			running++
			peak = max(peak, running)
			mu.Unlock()
			time.Sleep(30 * time.Millisecond)
			mu.Lock()
			running--
			mu.Unlock()
			return 0, nil
		})}
		var wg sync.WaitGroup
		for _, q := range []string{"q1", "q2", "q3"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A worker of its own per queue, as separate processes are.
				w2 := *w
				st, _ := queue.Open(s.Dir())
				w2.Store = st
				w2.Drain(context.Background(), q, false)
			}()
		}
		wg.Wait()
		if peak != slots {
			t.Errorf("%d slots: at most %d jobs ran at once", slots, peak)
		}
	}
}

// sweepRunner is a testRunner that records what jobq gc asks it to sweep.
type sweepRunner struct {
	testRunner
	swept *[]string
}

func (r sweepRunner) Sweep(_ context.Context, jobs []*queue.Job) error {
	for _, j := range jobs {
		*r.swept = append(*r.swept, fmt.Sprintf("%s/%d", j.Repo, j.ID))
	}
	return nil
}

// jobq gc has a Sweeper runner sweep the places its repositories' newest
// jobs name (build hosts), each repository once, even with no clean-up
// to retry: strays are left where no clean-up failed.
func TestGCSweeps(t *testing.T) {
	s := newStore(t)
	for _, repo := range []string{"a", "a", "b"} {
		j := newJob(repo, repo)
		s.Enqueue(j)
	}
	var swept []string
	w := &Worker{Store: s, Runners: map[string]runner.Runner{"exec": sweepRunner{testRunner{run: (&recorder{}).run}, &swept}}, Poll: time.Millisecond}
	for _, q := range []string{"a", "b"} {
		if err := w.Drain(context.Background(), q, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.GC(context.Background(), io.Discard); err != nil {
		t.Fatal(err)
	}
	slices.Sort(swept)
	if want := []string{"a/1", "b/0"}; !slices.Equal(swept, want) {
		t.Errorf("swept %v, want %v", swept, want)
	}
}
