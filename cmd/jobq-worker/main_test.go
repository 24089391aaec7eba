package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
	"github.com/jobq/jobq/runner/host"
	"github.com/jobq/jobq/worker"
)

func TestMain(m *testing.M) {
	// Exec jobs run under this program as their supervisor: the test binary.
	if len(os.Args) > 1 && os.Args[1] == "supervise" {
		os.Exit(host.Supervise(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func testWorker(t *testing.T) *worker.Worker {
	t.Helper()
	t.Setenv("JOBQ_HOME", t.TempDir())
	w, err := newWorker()
	if err != nil {
		t.Fatal(err)
	}
	w.Poll = 10 * time.Millisecond
	return w
}

func execJob(repo, q, command string, keep int) *queue.Job {
	return &queue.Job{Repo: repo, Queue: q, Ref: "refs/heads/main", NewRev: strings.Repeat("a", 40), GitDir: os.TempDir(),
		Options: queue.Options{Command: command, Runner: "exec", Timeout: time.Minute, Keep: keep}}
}

// jobq worker --all serves every queue, also those created after it
// started, until it is stopped.
func TestServe(t *testing.T) {
	w := testWorker(t)
	w.Store.Enqueue(execJob("a", "qa", "echo a", 10))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Serve(ctx) }()
	w.Store.Enqueue(execJob("b", "qb", "echo b", 10))
	for _, r := range []string{"a", "b"} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			j, err := w.Store.Job(r, 0)
			if err == nil && j.State == queue.Succeeded {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s 0 did not run: %+v %v", r, j, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"drain"}, {"drain", "--bogus"}} {
		root := newRoot()
		root.SetArgs(args)
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		var stderr strings.Builder
		if code := cli.Exit(&stderr, "jobq-worker", root.Execute()); code != cli.Usage || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("jobq-worker %v: exit %d, %q; want %d and one line", args, code, stderr.String(), cli.Usage)
		}
	}
}

// gc applies JOBQ_KEEP, settles what a dead worker left, and runs queued
// jobs no worker is running.
func TestGC(t *testing.T) {
	w := testWorker(t)
	for range 4 {
		w.Store.Enqueue(execJob("r", "q", "true", 2))
	}
	if err := w.GC(context.Background(), io.Discard); err != nil {
		t.Fatal(err)
	}
	jobs, _ := w.Store.Jobs("r", 0)
	if len(jobs) != 2 || jobs[0].Job.State != queue.Succeeded || jobs[0].ID != 3 {
		t.Errorf("after gc: %+v", jobs)
	}
}

// The worker's settings: a bad value is one clear error, never a default
// taken silently.
func TestWorkerSettings(t *testing.T) {
	for _, tt := range []struct {
		name, value string
		ok          func(w *worker.Worker) bool // nil: an error naming the variable
	}{
		{"JOBQ_USER_SLOTS", "", func(w *worker.Worker) bool { return w.UserSlots == 0 }},
		{"JOBQ_USER_SLOTS", "3", func(w *worker.Worker) bool { return w.UserSlots == 3 }},
		{"JOBQ_USER_SLOTS", "0", nil},
		{"JOBQ_USER_SLOTS", "many", nil},
		{"JOBQ_MIN_FREE", "", func(w *worker.Worker) bool { return w.MinFree == runner.DefaultMinFree }},
		{"JOBQ_MIN_FREE", "0", func(w *worker.Worker) bool { return w.MinFree == 0 }},
		{"JOBQ_MIN_FREE", "512m", func(w *worker.Worker) bool { return w.MinFree == 512<<20 }},
		{"JOBQ_MIN_FREE", "-1", nil},
		{"JOBQ_MIN_FREE", "1x", nil},
		{"JOBQ_MIN_FREE_INODES", "", func(w *worker.Worker) bool { return w.MinFreeInodes == worker.DefaultMinFreeInodes }},
		{"JOBQ_MIN_FREE_INODES", "0", func(w *worker.Worker) bool { return w.MinFreeInodes == 0 }},
		{"JOBQ_MIN_FREE_INODES", "1000", func(w *worker.Worker) bool { return w.MinFreeInodes == 1000 }},
		{"JOBQ_MIN_FREE_INODES", "-1", nil},
		{"JOBQ_MIN_FREE_INODES", "1k", nil},
	} {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			t.Setenv("JOBQ_HOME", t.TempDir())
			t.Setenv(tt.name, tt.value)
			w, err := newWorker()
			switch {
			case tt.ok == nil && (err == nil || !strings.Contains(err.Error(), tt.name)):
				t.Errorf("%v, want an error naming %s", err, tt.name)
			case tt.ok != nil && (err != nil || !tt.ok(w)):
				t.Errorf("%+v, %v", w, err)
			}
		})
	}
}

// jobq gc retries a clean-up that failed, then prunes the job it kept.
func TestGCRetriesCleanup(t *testing.T) {
	w := testWorker(t)
	for range 2 {
		w.Store.Enqueue(execJob("r", "q", "true", 1))
	}
	fail := 1
	w.Runners["exec"] = fakeRunner{
		run: func(ctx context.Context, j runner.Job) (int, error) {
			return 0, os.WriteFile(filepath.Join(j.Dir, "checkout"), []byte("x"), 0o600)
		},
		cleanup: func(ctx context.Context, j runner.Job) error {
			if fail > 0 {
				fail--
				return errors.New("permission denied")
			}
			return os.Remove(filepath.Join(j.Dir, "checkout"))
		},
	}
	if err := w.Drain(context.Background(), "q", false); err != nil {
		t.Fatal(err)
	}
	if jobs, _ := w.Store.Jobs("r", 0); len(jobs) != 2 {
		t.Fatalf("after the jobs: %d jobs, want 2 (job 0 kept for its clean-up)", len(jobs))
	}
	if err := w.GC(context.Background(), io.Discard); err != nil {
		t.Fatal(err)
	}
	if jobs, _ := w.Store.Jobs("r", 0); len(jobs) != 1 || jobs[0].ID != 1 {
		t.Errorf("after gc: %+v", jobs)
	}
}

// fakeRunner stands in for a backend whose clean-up fails once.
type fakeRunner struct {
	run     func(ctx context.Context, j runner.Job) (int, error)
	cleanup func(ctx context.Context, j runner.Job) error
}

func (f fakeRunner) Run(ctx context.Context, j runner.Job) (int, error) { return f.run(ctx, j) }

func (f fakeRunner) Adopt(context.Context, runner.Job, string) (int, error) {
	return 0, runner.ErrGone
}

func (f fakeRunner) Cleanup(ctx context.Context, j runner.Job) error { return f.cleanup(ctx, j) }

// A hook's worker reads its queue's name from standard input (--queue -):
// a name, then a newline. Anything else is one clear usage error.
func TestQueueNameFromStdin(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"team/app\n", "team/app", true},
		{"plain", "plain", true},
		{"repo:team/app\n", "repo:team/app", true}, // a repository's own queue
		{"repo:../etc\n", "", false},
		{"other:app\n", "", false},
		{"", "", false},
		{"\n", "", false},
		{"two\nlines\n", "", false},
		{"../etc\n", "", false},
		{"a b\n", "", false},
		{strings.Repeat("x", 5000), "", false},
	} {
		q, err := readQueueName(strings.NewReader(tt.in))
		if tt.ok && (err != nil || q != tt.want) {
			t.Errorf("%q: %q, %v; want %q", tt.in, q, err, tt.want)
		}
		var stderr strings.Builder
		if code := cli.Exit(&stderr, "jobq-worker", err); !tt.ok && (code != cli.Usage || strings.Count(stderr.String(), "\n") != 1) {
			t.Errorf("%q: exit %d, %q; want %d and one line", tt.in, code, stderr.String(), cli.Usage)
		}
	}
}
