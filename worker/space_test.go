package worker

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq/jobq/queue"
)

// fakeDisk is a filesystem a job fills: each write takes bytes and
// inodes, and FreeSpace reports what is left, per directory.
type fakeDisk struct {
	mu   sync.Mutex
	free map[string]Free
}

func (d *fakeDisk) FreeSpace(dir string) (Free, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.free[dir], nil
}

func (d *fakeDisk) take(dir string, bytes, inodes int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.free[dir]
	f.Bytes -= bytes
	if f.Inodes >= 0 {
		f.Inodes -= inodes
	}
	d.free[dir] = f
}

// A job that drives the data directory's filesystem, or a watched one,
// below half of JOBQ_MIN_FREE or JOBQ_MIN_FREE_INODES is stopped and
// fails, and its log's result line says why; a job that uses less, or a
// filesystem that does not count inodes, is left alone. Each job starts
// with the minimum free (else it would wait).
func TestStopJobOnLowSpace(t *testing.T) {
	const scratch = "/scratch"
	for _, tt := range []struct {
		name          string
		dir           string // where the job writes; "": the data directory
		bytes, inodes int64  // each step of the job takes
		uncounted     bool   // the filesystem counts no inodes
		want          string // the result line's reason; "": it succeeds
	}{
		{"bytes", "", 1 << 20, 0, false, "the job was stopped: 4.0 MiB free, under half of JOBQ_MIN_FREE=10m"},
		{"inodes", "", 0, 10, false, "the job was stopped: 40 inodes free, under half of JOBQ_MIN_FREE_INODES=100"},
		{"bytes elsewhere", scratch, 1 << 20, 0, false, "the job was stopped: 4.0 MiB free on /scratch, under half of JOBQ_MIN_FREE=10m"},
		{"inodes elsewhere", scratch, 0, 10, false, "the job was stopped: 40 inodes free on /scratch, under half of JOBQ_MIN_FREE_INODES=100"},
		{"inodes not counted", "", 0, 10, true, ""},
		{"within the margin", "", 512 << 10, 5, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			s.Enqueue(newJob("r", "q"))
			inodes := int64(100)
			if tt.uncounted {
				inodes = -1
			}
			disk := &fakeDisk{free: map[string]Free{
				s.Dir(): {Bytes: 10 << 20, Inodes: inodes},
				scratch: {Bytes: 10 << 20, Inodes: inodes},
			}}
			dir := tt.dir
			if dir == "" {
				dir = s.Dir()
			}
			w := &Worker{Store: s, MinFree: 10 << 20, MinFreeInodes: 100, WatchDirs: []string{scratch},
				FreeSpace: disk.FreeSpace, Poll: 5 * time.Millisecond,
				Runners: runWith(func(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
					// Ten steps: far past half the minimum if not stopped.
					for i := 0; i < 10 && ctx.Err() == nil; i++ {
						disk.take(dir, tt.bytes, tt.inodes)
						time.Sleep(3 * spaceEvery / 2)
					}
					if ctx.Err() != nil {
						return 143, nil
					}
					return 0, nil
				})}
			if err := w.Drain(context.Background(), "q", false); err != nil {
				t.Fatal(err)
			}
			j, _ := s.Job("r", 0)
			b, _ := os.ReadFile(s.LogPath("r", 0))
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			last := lines[len(lines)-1]
			if tt.want == "" {
				if j.State != queue.Succeeded {
					t.Errorf("job %s (%s), want it left to succeed", j.State, j.Error)
				}
				return
			}
			if j.State != queue.Failed || j.Error != tt.want || !strings.HasPrefix(last, "jobq: failed, exit code 143: "+tt.want+", after ") {
				t.Errorf("job %s (%q), log's last line %q; want failed: %s", j.State, j.Error, last, tt.want)
			}
		})
	}
}

// Before a job starts, each filesystem jobs write to must have
// JOBQ_MIN_FREE bytes and JOBQ_MIN_FREE_INODES inodes free; each limit
// works alone, and a filesystem that counts no inodes passes that check.
func TestLowSpaceBeforeStart(t *testing.T) {
	const scratch = "/scratch"
	for _, tt := range []struct {
		name              string
		minFree, minNodes int64
		data, other       Free
		want              string
	}{
		{"enough", 1 << 20, 100, Free{1 << 20, 100}, Free{1 << 20, 100}, ""},
		{"bytes", 1 << 20, 100, Free{1<<20 - 1, 100}, Free{1 << 20, 100}, "1023.9 KiB free, JOBQ_MIN_FREE=1m"},
		{"inodes", 1 << 20, 100, Free{1 << 20, 99}, Free{1 << 20, 100}, "99 inodes free, JOBQ_MIN_FREE_INODES=100"},
		{"inodes elsewhere", 1 << 20, 100, Free{1 << 20, 100}, Free{1 << 20, 0}, "0 inodes free on /scratch, JOBQ_MIN_FREE_INODES=100"},
		{"inodes not counted", 1 << 20, 100, Free{1 << 20, -1}, Free{1 << 20, -1}, ""},
		{"bytes unchecked", 0, 100, Free{0, 100}, Free{0, 100}, ""},
		{"inodes unchecked", 1 << 20, 0, Free{1 << 20, 0}, Free{1 << 20, 0}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			disk := &fakeDisk{free: map[string]Free{s.Dir(): tt.data, scratch: tt.other}}
			w := &Worker{Store: s, MinFree: tt.minFree, MinFreeInodes: tt.minNodes, WatchDirs: []string{scratch}, FreeSpace: disk.FreeSpace}
			if got, err := w.lowSpace(); got != tt.want || err != nil {
				t.Errorf("lowSpace() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
