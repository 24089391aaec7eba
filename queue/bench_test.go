package queue

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
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

// seedFinished writes n finished jobs of repo's live incarnation straight
// into the store, on refs of refs users, as a long history leaves them.
func seedFinished(tb testing.TB, s *Store, repo string, n, refs, users int) {
	tb.Helper()
	if err := os.MkdirAll(s.repoDir(repo), 0o700); err != nil {
		tb.Fatal(err)
	}
	token := strings.Repeat("ab", 16)
	if err := os.WriteFile(filepath.Join(s.repoDir(repo), "incarnation"), []byte(token+"\n/srv/git/"+repo+".git\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	for id := range n {
		j := newJob(repo, DefaultQueue(repo))
		j.ID, j.State, j.Incarnation = int64(id), Succeeded, token
		j.Ref = "refs/heads/b" + strconv.Itoa(id%refs)
		j.User = "u" + strconv.Itoa(id%users)
		data, err := json.Marshal(j)
		if err != nil {
			tb.Fatal(err)
		}
		dir := s.jobDir(repo, int64(id))
		if err := os.Mkdir(dir, 0o700); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "job.json"), data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkPrune is Prune of a repository that holds n jobs and keeps
// them all (JOBQ_KEEP = n): the look every job's end takes, which removes
// nothing in the steady state. 400 is the default's bound (2 × 200).
func BenchmarkPrune(b *testing.B) {
	for _, n := range []int{400, 10_000, 100_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "data"))
			if err != nil {
				b.Fatal(err)
			}
			seedFinished(b, s, "r", n, 50, 5)
			for b.Loop() {
				if err := s.Prune("r", n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
