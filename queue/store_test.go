package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newJob(repo, q string) *Job {
	return &Job{Repo: repo, Queue: q, Ref: "refs/heads/main", NewRev: strings.Repeat("a", 40),
		Options: Options{Command: "x", Runner: "exec", Timeout: time.Minute, Keep: DefaultKeep}}
}

func TestConcurrentEnqueueIDs(t *testing.T) {
	s := newStore(t)
	const n = 50
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A store of its own per enqueuer: separate open files, as
			// separate hook processes have.
			s2, err := Open(s.Dir())
			if err != nil {
				t.Error(err)
				return
			}
			j := newJob("repo", "q")
			if _, err := s2.Enqueue(j); err != nil {
				t.Error(err)
			}
			ids[i] = j.ID
		}()
	}
	wg.Wait()
	slices.Sort(ids)
	for i, id := range ids {
		if id != int64(i) {
			t.Fatalf("IDs are not 0..%d without gaps or repeats: %v", n-1, ids)
		}
	}
	es, _ := s.entries("q", "pending")
	if len(es) != n {
		t.Errorf("%d queue entries, want %d", len(es), n)
	}
}

func TestJobsListing(t *testing.T) {
	s := newStore(t)
	for range 5 {
		if _, err := s.Enqueue(newJob("r", "q")); err != nil {
			t.Fatal(err)
		}
	}
	// A corrupt record is listed as unreadable, the rest still are.
	os.WriteFile(filepath.Join(s.jobDir("r", 2), "job.json"), []byte("{garbage"), 0o600)
	ls, err := s.Jobs("r", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 5 || ls[0].ID != 4 || ls[4].ID != 0 || ls[2].Err == nil || ls[1].Job == nil {
		t.Errorf("listing %+v", ls)
	}
	if ls, _ := s.Jobs("r", 2); len(ls) != 2 || ls[0].ID != 4 {
		t.Errorf("limit 2: %+v", ls)
	}
	if _, err := s.Jobs("nope", 0); err == nil {
		t.Error("a repository without jobs is listed")
	}
}

// next is a hint: lost or corrupt (a crash before its sync), the next ID
// still comes after every job there is.
func TestNextIDWithoutNextFile(t *testing.T) {
	for _, content := range []string{"", "garbage", "-5"} {
		s := newStore(t)
		for range 3 {
			s.Enqueue(newJob("r", "q"))
		}
		os.WriteFile(filepath.Join(s.repoDir("r"), "next"), []byte(content), 0o600)
		j := newJob("r", "q")
		if _, err := s.Enqueue(j); err != nil || j.ID != 3 {
			t.Errorf("next %q: ID %d, %v; want 3", content, j.ID, err)
		}
	}
}

func TestQueueNames(t *testing.T) {
	for q, ok := range map[string]bool{
		"deploy": true, "team/deploy": true, DefaultQueue("r"): true, DefaultQueue("team/app"): true,
		"repo:": false, "repo:../x": false, "repo:repo:x": false, ":x": false, "repo:/x": false, "x:y": false, "": false,
	} {
		if err := ValidQueue(q); (err == nil) != ok {
			t.Errorf("ValidQueue(%q) = %v", q, err)
		}
	}
	// Every queue name is one directory entry of its own.
	if escape(DefaultQueue("a/b")) == escape("a/b") || strings.Contains(escape(DefaultQueue("a/b")), "/") {
		t.Errorf("DefaultQueue(a/b) escapes to %q", escape(DefaultQueue("a/b")))
	}
}

// A repository's own queue had its bare name before; while jobs of it
// queued then wait or run there, new ones join them, so that the queue
// still runs them one at a time, in order; then the repository's jobs go
// to its own queue. Jobs of other repositories in a queue of that name
// (one the administrator named) do not draw it there.
func TestQueueForOldQueue(t *testing.T) {
	s, _ := Open(t.TempDir())
	own := DefaultQueue("r")
	if q := s.QueueFor("r", own); q != own {
		t.Fatalf("QueueFor with no old queue = %q", q)
	}
	other := &Job{Repo: "other", Queue: "r", Ref: "refs/heads/x", Options: Options{Keep: 5}}
	if _, err := s.Enqueue(other); err != nil {
		t.Fatal(err)
	}
	if q := s.QueueFor("r", own); q != own {
		t.Errorf("another repository's job in queue r drew r's jobs there: %q", q)
	}
	old := &Job{Repo: "r", Queue: "r", Ref: "refs/heads/x", Options: Options{Keep: 5}}
	if _, err := s.Enqueue(old); err != nil {
		t.Fatal(err)
	}
	if q := s.QueueFor("r", own); q != "r" {
		t.Errorf("QueueFor with an old job waiting = %q, want r", q)
	}
	if q := s.QueueFor("r", "deploy"); q != "deploy" {
		t.Errorf("QueueFor a named queue = %q", q)
	}
	// The jobs are claimed (running/), then done, oldest first.
	h, err := s.HoldQueue("r", false)
	if err != nil || h == nil {
		t.Fatal(h, err)
	}
	defer h.Release()
	es, err := h.Pending()
	if err != nil || len(es) != 2 {
		t.Fatal(es, err)
	}
	for _, e := range es {
		c, err := h.Peek(e)
		if err != nil || c == nil {
			t.Fatal(c, err)
		}
		if err := h.Claim(c); err != nil {
			t.Fatal(err)
		}
		if q := s.QueueFor("r", own); q != "r" {
			t.Errorf("QueueFor with an old job of r in queue r (%s running) = %q, want r", e.Repo, q)
		}
		h.Done(c)
	}
	if q := s.QueueFor("r", own); q != own {
		t.Errorf("QueueFor once the old queue has none of r's jobs = %q", q)
	}
}

// finished enqueues a job of repo on ref by user and ends it.
func finished(t *testing.T, s *Store, repo, ref, user string) int64 {
	t.Helper()
	j := newJob(repo, DefaultQueue(repo))
	j.Ref, j.User = ref, user
	if _, err := s.Enqueue(j); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(repo, j.ID, func(j *Job) error { j.State = Succeeded; return nil }); err != nil {
		t.Fatal(err)
	}
	return j.ID
}

func keptIDs(t *testing.T, s *Store, repo string) []int64 {
	t.Helper()
	ls, err := s.Jobs(repo, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, l := range ls {
		ids = append(ids, l.ID)
	}
	slices.Sort(ids)
	return ids
}

// A writer of one ref cannot erase another ref's recent history: with
// "RW dev = carol", carol's pushes to dev removed the records and logs of
// bob's master (deploy) jobs. Beyond the newest JOBQ_KEEP, each ref keeps
// its newest few, shared out among their pushers; and a flood of refs
// keeps at most 2 × JOBQ_KEEP.
func TestPruneKeepsEachRefsNewest(t *testing.T) {
	t.Run("another ref", func(t *testing.T) {
		s := newStore(t)
		finished(t, s, "r", "refs/heads/master", "bob")
		finished(t, s, "r", "refs/heads/master", "bob")
		for range 10 {
			finished(t, s, "r", "refs/heads/dev", "carol")
		}
		if err := s.Prune("r", 3); err != nil {
			t.Fatal(err)
		}
		if got, want := keptIDs(t, s, "r"), []int64{0, 1, 9, 10, 11}; !slices.Equal(got, want) {
			t.Errorf("kept %v, want %v", got, want)
		}
	})
	t.Run("a flood of refs", func(t *testing.T) {
		s := newStore(t)
		finished(t, s, "r", "refs/heads/master", "bob")
		finished(t, s, "r", "refs/heads/master", "bob")
		for i := range 100 {
			finished(t, s, "r", fmt.Sprintf("refs/heads/dev%d", i), "carol")
		}
		if err := s.Prune("r", 4); err != nil {
			t.Fatal(err)
		}
		// The newest 4, and a share of 4 more: carol's newest two of
		// the older ones, bob's two.
		if got, want := keptIDs(t, s, "r"), []int64{0, 1, 96, 97, 98, 99, 100, 101}; !slices.Equal(got, want) {
			t.Errorf("kept %v, want %v", got, want)
		}
	})
	t.Run("many pushers", func(t *testing.T) {
		s := newStore(t)
		for range 3 {
			for u := range 10 {
				for r := range 10 {
					finished(t, s, "r", fmt.Sprintf("refs/heads/u%d-%d", u, r), fmt.Sprintf("u%d", u))
				}
			}
		}
		if err := s.Prune("r", 20); err != nil {
			t.Fatal(err)
		}
		ls, _ := s.Jobs("r", 0)
		per := map[string]int{}
		for _, l := range ls[20:] {
			per[l.Job.User]++
		}
		// 20 beyond the newest 20, two for each of the 10 pushers.
		if len(ls) != 40 || len(per) != 10 {
			t.Errorf("kept %d jobs, beyond the newest 20 by pusher %v", len(ls), per)
		}
		for u, n := range per {
			if n != 2 {
				t.Errorf("%s keeps %d beyond the newest 20, want 2", u, n)
			}
		}
	})
	t.Run("a ref's newest few at most", func(t *testing.T) {
		s := newStore(t)
		for range 12 {
			finished(t, s, "r", "refs/heads/master", "bob")
		}
		for range 10 {
			finished(t, s, "r", "refs/heads/dev", "carol")
		}
		if err := s.Prune("r", 8); err != nil {
			t.Fatal(err)
		}
		// The newest 8 (carol's 14-21), master's newest 5 (7-11).
		want := []int64{7, 8, 9, 10, 11, 14, 15, 16, 17, 18, 19, 20, 21}
		if got := keptIDs(t, s, "r"); !slices.Equal(got, want) {
			t.Errorf("kept %v, want %v", got, want)
		}
	})
	t.Run("unended and unreadable", func(t *testing.T) {
		s := newStore(t)
		queued := newJob("r", DefaultQueue("r"))
		s.Enqueue(queued)
		bad := finished(t, s, "r", "refs/heads/x", "bob")
		os.WriteFile(filepath.Join(s.jobDir("r", bad), "job.json"), []byte("{garbage"), 0o600)
		for range 6 {
			finished(t, s, "r", "refs/heads/dev", "carol")
		}
		if err := s.Prune("r", 2); err != nil {
			t.Fatal(err)
		}
		// The queued job stays until it ends; the unreadable record,
		// which names no ref, goes; dev keeps its newest 2.
		if got, want := keptIDs(t, s, "r"), []int64{0, 6, 7}; !slices.Equal(got, want) {
			t.Errorf("kept %v, want %v", got, want)
		}
	})
}

func TestEscape(t *testing.T) {
	for _, name := range []string{"r", "team/app", "a/b/c", "%", "%2F", "%25", "/%/", "a%2Fb/c"} {
		e := escape(name)
		if strings.Contains(e, "/") || unescape(e) != name {
			t.Errorf("escape(%q) = %q, back %q", name, e, unescape(e))
		}
	}
	if escape("a/b") == escape("a%2Fb") {
		t.Error("two names, one entry")
	}
}
