package queue

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkEnqueue is the hook's store work for one job (with fsync), into
// a queue with a steady backlog of 5 jobs (a worker takes them away).
func BenchmarkEnqueue(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "data"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Enqueue(newJob("r", "q")); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if es, _ := s.entries("q", "pending"); len(es) > 5 {
			os.Remove(filepath.Join(s.queueDir("q"), "pending", es[0].name))
		}
		b.StartTimer()
	}
}
