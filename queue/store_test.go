package queue

import (
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
