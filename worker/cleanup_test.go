package worker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// A runner records what a job uses in run/; a job whose clean-up
// failed keeps its records, Prune keeps the job, and Tidy (jobq gc) retries
// the clean-up and then prunes it.
func TestPruneKeepsUncleanJobs(t *testing.T) {
	s := newStore(t)
	for range 3 {
		j := newJob("r", "q")
		j.Options.Keep = 1
		s.Enqueue(j)
	}
	failures := map[int64]int{0: 1} // job 0's clean-up fails once
	var cleaned []int64
	w := &Worker{Store: s, Runners: map[string]runner.Runner{"exec": testRunner{
		run: func(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
			return 0, os.WriteFile(filepath.Join(s.RunDir(j), "checkout"), []byte("/tmp/jobq-checkout-x"), 0o600)
		},
		cleanup: func(ctx context.Context, j runner.Job) error {
			cleaned = append(cleaned, j.ID)
			if failures[j.ID] > 0 {
				failures[j.ID]--
				return errors.New("permission denied")
			}
			return os.Remove(filepath.Join(j.Dir, "checkout"))
		},
	}}}
	if err := w.Drain(context.Background(), "q", false); err != nil {
		t.Fatal(err)
	}
	ids := func() []int64 {
		ls, _ := s.Jobs("r", 0)
		var ids []int64
		for _, l := range ls {
			ids = append(ids, l.ID)
		}
		return ids
	}
	if got := ids(); len(got) != 2 || got[0] != 2 || got[1] != 0 {
		t.Fatalf("after the jobs: jobs %v, want [2 0] (job 0 not cleaned up)", got)
	}
	if un, _ := s.Unclean("r"); len(un) != 1 || un[0].ID != 0 {
		t.Fatalf("unclean: %+v", un)
	}
	cleaned = nil
	if err := w.Tidy(context.Background(), "r", 1); err != nil {
		t.Fatal(err)
	}
	if len(cleaned) != 1 || cleaned[0] != 0 {
		t.Errorf("Tidy cleaned up %v, want [0]", cleaned)
	}
	if got := ids(); len(got) != 1 || got[0] != 2 {
		t.Errorf("after Tidy: jobs %v, want [2]", got)
	}
}
