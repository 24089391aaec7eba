package worker

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jobq/jobq/queue"
)

// BenchmarkListNewest50 lists the newest 50 jobs of a long history.
func BenchmarkListNewest50(b *testing.B) {
	s, _ := queue.Open(filepath.Join(b.TempDir(), "data"))
	w := &Worker{Store: s, Runners: runWith(func(ctx context.Context, j *queue.Job, log *os.File) (int, error) { return 0, nil })}
	for range 500 {
		j := newJob("r", "q")
		j.Options.Keep = 100000
		s.Enqueue(j)
	}
	w.Drain(context.Background(), "q", false)
	for b.Loop() {
		if ls, err := s.Jobs("r", 50); err != nil || len(ls) != 50 {
			b.Fatal(err, len(ls))
		}
	}
}

// BenchmarkFreeSpace is one look at a filesystem's free space and inodes,
// which a running job's poll makes at most every spaceEvery per directory.
func BenchmarkFreeSpace(b *testing.B) {
	dir := b.TempDir()
	for b.Loop() {
		if _, err := FreeSpace(dir); err != nil {
			b.Fatal(err)
		}
	}
}
