package queue

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// bareRepo makes a stand-in for a bare repository: jobq only keeps its
// incarnation file there.
func bareRepo(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo.git")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func enqueueIn(t *testing.T, s *Store, gitDir string) *Job {
	t.Helper()
	j := newJob("r", "q")
	j.GitDir = gitDir
	if _, err := s.Enqueue(j); err != nil {
		t.Fatal(err)
	}
	return j
}

// visible is what a reader may see of repo: the IDs of the live
// incarnation's jobs, or nil if none may be shown.
func visible(t *testing.T, s *Store, repo string) []int64 {
	t.Helper()
	view, err := s.View(repo)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	ls, err := s.Jobs(repo, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids := []int64{}
	for _, l := range ls {
		if l.Job != nil && view.Shows(l.Job) {
			ids = append(ids, l.ID)
		}
	}
	return ids
}

func setState(t *testing.T, s *Store, id int64, st State) {
	t.Helper()
	if _, err := s.Update("r", id, func(j *Job) error { j.State = st; return nil }); err != nil {
		t.Fatal(err)
	}
}

// The attack: a repository is deleted and another user creates
// one of the same name; the old history must not show, the old queued job
// must not run, and no ID is handed out twice.
func TestIncarnationDeletedAndCreatedAgain(t *testing.T) {
	s := newStore(t)
	git := bareRepo(t)
	for range 4 {
		enqueueIn(t, s, git)
	}
	setState(t, s, 0, Succeeded)
	setState(t, s, 1, Failed)
	setState(t, s, 2, Running) // job 3 stays queued
	if got := visible(t, s, "r"); len(got) != 4 {
		t.Fatalf("before: visible %v, want 4 jobs", got)
	}
	oldView, _ := s.View("r")
	old := oldView.token

	// Deleted: nothing shows, before any new push.
	if err := os.RemoveAll(git); err != nil {
		t.Fatal(err)
	}
	if got := visible(t, s, "r"); got != nil {
		t.Fatalf("deleted: visible %v", got)
	}
	// Created again, not pushed to yet: still nothing.
	os.Mkdir(git, 0o755)
	if got := visible(t, s, "r"); got != nil {
		t.Fatalf("created again: visible %v", got)
	}
	// The first push of the new one retires the old history.
	j := enqueueIn(t, s, git)
	if j.ID != 4 {
		t.Errorf("new incarnation's first job has ID %d, want 4 (IDs are never reused)", j.ID)
	}
	if got := visible(t, s, "r"); len(got) != 1 || got[0] != 4 {
		t.Errorf("after the new push: visible %v, want [4]", got)
	}
	for _, id := range []int64{0, 1, 3} {
		if _, err := os.Stat(s.jobDir("r", id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("job %d not moved out of the history: %v", id, err)
		}
		b, err := os.ReadFile(filepath.Join(s.retiredDir("r", old), strconv.Itoa(int(id)), "job.json"))
		if err != nil {
			t.Errorf("job %d not kept for the administrator: %v", id, err)
			continue
		}
		if rj, _ := decodeJob(b); id == 3 && rj.State != Cancelled {
			t.Errorf("old queued job: %s, want cancelled", rj.State)
		}
	}
	// The running one stays for its worker, hidden, and goes when it ends.
	if rj, err := s.Job("r", 2); err != nil || (View{token: j.Incarnation}).Shows(rj) {
		t.Fatalf("old running job: %+v, %v; want kept in place and hidden", rj, err)
	}
	setState(t, s, 2, Succeeded)
	if err := s.Prune("r", DefaultKeep); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.retiredDir("r", old), "2")); err != nil {
		t.Errorf("old running job not retired after it ended: %v", err)
	}
	// Even with next lost, retired IDs are not handed out again.
	os.Remove(filepath.Join(s.repoDir("r"), "next"))
	os.RemoveAll(s.jobDir("r", 4))
	if j := enqueueIn(t, s, git); j.ID <= 3 {
		t.Errorf("after next was lost: ID %d reused", j.ID)
	}
}

// History recorded before incarnations were: it shows while the repository
// it was recorded in exists, and goes to the first incarnation only what
// was queued since that repository came to be (the attack: an old
// history passed to whoever creates the repository again).
func TestIncarnationLegacyHistory(t *testing.T) {
	s := newStore(t)
	git := bareRepo(t)
	legacy := func() {
		t.Helper()
		j := newJob("r", "q")
		j.GitDir = git
		if err := s.lockAndEnqueueLegacy(j); err != nil {
			t.Fatal(err)
		}
	}
	legacy()
	legacy()
	if got := visible(t, s, "r"); len(got) != 2 {
		t.Fatalf("legacy: visible %v", got)
	}
	enqueueIn(t, s, git)
	if got := visible(t, s, "r"); len(got) != 3 {
		t.Errorf("first push with an incarnation: visible %v, want all 3", got)
	}

	// Legacy history of a repository deleted and created again.
	s = newStore(t)
	legacy()
	os.RemoveAll(git)
	if got := visible(t, s, "r"); got != nil {
		t.Errorf("deleted: legacy history visible %v", got)
	}
	time.Sleep(10 * time.Millisecond) // birth times are in nanoseconds, some filesystems' less fine
	os.Mkdir(git, 0o755)
	if got := visible(t, s, "r"); len(got) != 0 {
		t.Errorf("created again: legacy history visible %v", got)
	}
	enqueueIn(t, s, git)
	if got := visible(t, s, "r"); len(got) != 1 || got[0] != 1 {
		t.Errorf("created again and pushed: visible %v, want [1]", got)
	}
	if _, err := os.Stat(filepath.Join(s.retiredDir("r", legacyToken), "0", "job.json")); err != nil {
		t.Errorf("legacy job not retired: %v", err)
	}
}

// lockAndEnqueueLegacy enqueues j as a jobq without incarnations did.
func (s *Store) lockAndEnqueueLegacy(j *Job) error {
	lock, err := s.lockRepo(j.Repo)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	_, err = s.enqueueLocked(j)
	return err
}

// Two first pushes at once agree on one token.
func TestIncarnationFirstPushesAgree(t *testing.T) {
	git := bareRepo(t)
	toks := make([]string, 20)
	var wg sync.WaitGroup
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], _ = readIncarnation(git, true)
		}()
	}
	wg.Wait()
	for _, tok := range toks {
		if tok != toks[0] || !validToken(tok) {
			t.Fatalf("tokens %v", toks)
		}
	}
}

// A token file that is not one (written by hand, truncated) is an error,
// never a match.
func TestIncarnationBadToken(t *testing.T) {
	s := newStore(t)
	git := bareRepo(t)
	enqueueIn(t, s, git)
	for _, content := range []string{"", "x\n", "../../etc\n"} {
		os.WriteFile(filepath.Join(git, IncarnationFile), []byte(content), 0o600)
		if v, err := s.View("r"); err == nil {
			t.Errorf("token file %q: incarnation %+v accepted", content, v)
		}
	}
}

func TestPruneRetired(t *testing.T) {
	s := newStore(t)
	git := bareRepo(t)
	for range 5 {
		j := newJob("r", "q")
		j.GitDir, j.Options.Keep = git, 2
		if _, err := s.Enqueue(j); err != nil {
			t.Fatal(err)
		}
	}
	os.RemoveAll(git)
	os.Mkdir(git, 0o755)
	enqueueIn(t, s, git)
	r, err := s.PruneRetired()
	if err != nil || r != (Retired{Incarnations: 1, Jobs: 2, Removed: 3}) {
		t.Errorf("PruneRetired: %+v, %v; want 1 incarnation, 2 jobs kept, 3 removed", r, err)
	}
}

func BenchmarkView(b *testing.B) {
	s, _ := Open(filepath.Join(b.TempDir(), "data"))
	git := filepath.Join(b.TempDir(), "repo.git")
	os.Mkdir(git, 0o755)
	j := newJob("r", "q")
	j.GitDir = git
	s.Enqueue(j)
	for b.Loop() {
		if _, err := s.View("r"); err != nil {
			b.Fatal(err)
		}
	}
}

// A job queued in a deleted repository must not run in the one created
// again under its name, whose own push queued nothing (so
// nothing was retired).
func TestQueuedJobOfDeletedRepositoryIsNotRun(t *testing.T) {
	s := newStore(t)
	git := bareRepo(t)
	enqueueIn(t, s, git)
	os.RemoveAll(git)
	os.Mkdir(git, 0o755)
	j := claimNext(t, s, "q")
	if j.State != Cancelled || !j.StartedAt.IsZero() {
		t.Errorf("claimed job of the deleted repository: %+v; want cancelled, never started", j)
	}
	if j, err := s.Job("r", 0); err != nil || j.State != Cancelled {
		t.Errorf("its record: %+v, %v", j, err)
	}
}
