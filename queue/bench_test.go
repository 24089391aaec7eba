package queue

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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

// BenchmarkListNewest50 lists the newest 50 jobs of a long history.
func BenchmarkListNewest50(b *testing.B) {
	s, _ := Open(filepath.Join(b.TempDir(), "data"))
	w := &Worker{Store: s, Run: func(ctx context.Context, j *Job, log *os.File) (int, error) { return 0, nil }}
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

func BenchmarkRefFilter(b *testing.B) {
	f, _ := ParseRefFilter("refs/heads/master refs/tags/** !refs/tags/wip-*")
	for b.Loop() {
		f.Match("refs/tags/release/" + strings.Repeat("v", 20))
	}
}

func BenchmarkParseOptions(b *testing.B) {
	env := map[string]string{"GL_OPTION_JOBQ_COMMAND": "docker.io/library/ubuntu make -f Makefile.ci deploy",
		"GL_OPTION_JOBQ_REF_FILTER": "refs/heads/master refs/tags/*", "GL_OPTION_JOBQ_TIMEOUT": "20m"}
	for b.Loop() {
		if _, err := ParseOptions(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, "r"); err != nil {
			b.Fatal(err)
		}
	}
}
