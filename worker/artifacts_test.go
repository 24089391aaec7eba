package worker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// collector is a runFunc that collects artifacts with collect.
type collector struct {
	runFunc
	collect func(ctx context.Context, j runner.Job) error
}

func (c collector) Collect(ctx context.Context, j runner.Job) error { return c.collect(ctx, j) }

// Artifacts are collected after the job exits and before its result is
// recorded, whatever the result; a deadline or a cancel request that
// comes during the collection does not change the result; Room is the
// data directory's JOBQ_MIN_FREE.
func TestCollectBeforeResult(t *testing.T) {
	for _, tt := range []struct {
		name  string
		exit  int
		state queue.State
	}{{"succeeded", 0, queue.Succeeded}, {"failed", 3, queue.Failed}} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			j := newJob("r", "q")
			j.Options.Runner = "podman"
			j.Options.Timeout = 300 * time.Millisecond
			j.Options.Artifacts = []string{"out"}
			s.Enqueue(j)
			disk := &fakeDisk{free: map[string]Free{s.Dir(): {Bytes: 10 << 20, Inodes: 1000}}}
			var room string
			c := collector{
				runFunc: func(ctx context.Context, j *queue.Job, log *os.File) (int, error) { return tt.exit, nil },
				collect: func(ctx context.Context, rj runner.Job) error {
					if got, _ := s.Job("r", 0); got.State != queue.Running {
						t.Errorf("collected in state %s, want running", got.State)
					}
					// Past the job's deadline, and asked to cancel.
					time.Sleep(500 * time.Millisecond)
					s.Cancel("r", 0)
					time.Sleep(100 * time.Millisecond)
					if ctx.Err() != nil {
						t.Errorf("the collection's context ended: %v", context.Cause(ctx))
					}
					room = rj.Room(9 << 20)
					queue.WriteOwn(rj.Log, "jobq: artifacts: 1 files\n")
					return os.WriteFile(filepath.Join(rj.Artifacts, "out"), []byte("x"), 0o600)
				},
			}
			w := &Worker{Store: s, MinFree: 2 << 20, FreeSpace: disk.FreeSpace, Poll: 5 * time.Millisecond,
				Runners: map[string]runner.Runner{"podman": c}}
			if err := w.Drain(context.Background(), "q", false); err != nil {
				t.Fatal(err)
			}
			got, _ := s.Job("r", 0)
			if got.State != tt.state || got.Error != "" {
				t.Errorf("state %s (%q), want %s", got.State, got.Error, tt.state)
			}
			if l, _ := s.Artifacts("r", 0); len(l) != 1 || l[0].Path != "out" {
				t.Errorf("artifacts %v", l)
			}
			b, _ := os.ReadFile(s.LogPath("r", 0))
			if i, k := strings.Index(string(b), "jobq: artifacts: 1 files"), strings.Index(string(b), "jobq: "+string(tt.state)); i < 0 || k < i {
				t.Errorf("log:\n%s", b)
			}
			if room != "10.0 MiB free in the data directory, a file of 9.0 MiB next, JOBQ_MIN_FREE=2m" {
				t.Errorf("Room: %q", room)
			}
		})
	}
}

// A runner that collects nothing (exec) says so in the job's log.
func TestCollectNotSupported(t *testing.T) {
	s := newStore(t)
	j := newJob("r", "q")
	j.Options.Artifacts = []string{"out"}
	s.Enqueue(j)
	w := &Worker{Store: s, Poll: 5 * time.Millisecond,
		Runners: runWith(func(ctx context.Context, j *queue.Job, log *os.File) (int, error) { return 0, nil })}
	if err := w.Drain(context.Background(), "q", false); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(s.LogPath("r", 0))
	if !strings.Contains(string(b), "jobq: JOBQ_ARTIFACTS: the exec runner collects no artifacts") {
		t.Errorf("log:\n%s", b)
	}
}

func TestRoom(t *testing.T) {
	for _, tt := range []struct {
		name              string
		minFree, minNodes int64
		free              Free
		size              int64
		want              string
	}{
		{"enough", 1 << 20, 10, Free{3 << 20, 100}, 1 << 20, ""},
		{"bytes", 1 << 20, 10, Free{3 << 20, 100}, 2<<20 + 1, "3.0 MiB free in the data directory, a file of 2.0 MiB next, JOBQ_MIN_FREE=1m"},
		{"inodes", 1 << 20, 10, Free{3 << 20, 10}, 1, "10 inodes free in the data directory, JOBQ_MIN_FREE_INODES=10"},
		{"inodes not counted", 1 << 20, 10, Free{3 << 20, -1}, 1, ""},
		{"unchecked", 0, 0, Free{0, 0}, 1 << 30, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			disk := &fakeDisk{free: map[string]Free{s.Dir(): tt.free}}
			w := &Worker{Store: s, MinFree: tt.minFree, MinFreeInodes: tt.minNodes, FreeSpace: disk.FreeSpace}
			if got := w.room(tt.size); got != tt.want {
				t.Errorf("room(%d) = %q, want %q", tt.size, got, tt.want)
			}
		})
	}
}

// stoppedCollector exits at once; its first collection is cut short by
// the worker's stop (it returns ErrDetached, as a backend must), and its
// adoption finds the job exited.
type stoppedCollector struct {
	collecting chan struct{}
	collects   int
}

func (c *stoppedCollector) Run(ctx context.Context, j runner.Job) (int, error) { return 3, nil }
func (c *stoppedCollector) Adopt(ctx context.Context, j runner.Job, notice string) (int, error) {
	queue.WriteOwn(j.Log, notice)
	return 3, nil
}
func (c *stoppedCollector) Cleanup(context.Context, runner.Job) error { return nil }
func (c *stoppedCollector) Collect(ctx context.Context, j runner.Job) error {
	c.collects++
	os.WriteFile(filepath.Join(j.Artifacts, "out"), []byte(strings.Repeat("x", c.collects)), 0o600)
	if c.collects == 1 {
		close(c.collecting)
		<-ctx.Done()
		return runner.ErrDetached
	}
	queue.WriteOwn(j.Log, "jobq: artifacts: 1 file\n")
	return nil
}

// A worker that stops while it collects leaves the job running, for the
// next worker: it adopts the job and collects again, from scratch, before
// it records the result.
func TestCollectStoppedThenAdopted(t *testing.T) {
	s := newStore(t)
	j := newJob("r", "q")
	j.Options.Artifacts = []string{"out"}
	s.Enqueue(j)
	c := &stoppedCollector{collecting: make(chan struct{})}
	w := &Worker{Store: s, Runners: map[string]runner.Runner{"exec": c}, Poll: 10 * time.Millisecond}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Drain(ctx, "q", false) }()
	<-c.collecting
	stop()
	<-done
	if got, _ := s.Job("r", 0); got.State != queue.Running {
		t.Fatalf("after the stop the job is %s, want running", got.State)
	}
	if l, _ := s.Artifacts("r", 0); len(l) != 0 {
		t.Errorf("a cut-short collection was published: %v", l)
	}
	if err := w.Drain(context.Background(), "q", false); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Job("r", 0)
	if got.State != queue.Failed || c.collects != 2 {
		t.Errorf("job %s after %d collections", got.State, c.collects)
	}
	if l, _ := s.Artifacts("r", 0); len(l) != 1 || l[0].Size != 2 {
		t.Errorf("artifacts %v, want the second collection's", l)
	}
	b, _ := os.ReadFile(s.LogPath("r", 0))
	if strings.Count(string(b), "jobq: artifacts:") != 1 {
		t.Errorf("log:\n%s", b)
	}
}
