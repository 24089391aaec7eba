package podman

import (
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner/cache"
)

func cacheJob(id int64, ref string, nowait bool) *queue.Job {
	return &queue.Job{Repo: "r", ID: id, Ref: ref, Incarnation: strings.Repeat("a", 32),
		Options: queue.Options{Cache: []string{"/c"}, CacheNoWait: nowait}}
}

// One job at a time per cache: the second waits with a reason (or, with
// nowait, runs without); a ref's first job also holds the main cache while
// it copies it; a lock left by a job that still runs is not taken.
func TestReserveCaches(t *testing.T) {
	running := map[string]bool{}
	r := New(Config{Home: t.TempDir(), Active: func(repo string, id int64) bool { return running[jobKey(&queue.Job{Repo: repo, ID: id})] }})
	reserve := func(j *queue.Job) (*jobCaches, string) {
		t.Helper()
		c, wait, err := r.reserveCaches(j)
		if err != nil {
			t.Fatal(err)
		}
		return c, wait
	}
	master0, wait := reserve(cacheJob(0, "refs/heads/master", false))
	if master0 == nil || master0.lock == nil || master0.scope != cache.Main || wait != "" {
		t.Fatalf("first master job: %+v %q", master0, wait)
	}
	// Reserved again by the same worker: it does not wait for itself.
	r.keepReservedCaches(cacheJob(0, "", false), master0)
	if master0, wait = reserve(cacheJob(0, "refs/heads/master", false)); master0 == nil || master0.lock == nil || wait != "" {
		t.Fatalf("master job reserved again: %+v %q", master0, wait)
	}
	if c, wait := reserve(cacheJob(1, "refs/tags/v1", false)); c != nil || wait != "waiting for its cache: another job of the main cache uses it" {
		t.Errorf("second protected job: %+v %q", c, wait)
	}
	if c, wait := reserve(cacheJob(1, "refs/tags/v1", true)); c == nil || c.lock != nil || wait != "" || !strings.Contains(c.without, "nowait") {
		t.Errorf("nowait job: %+v %q", c, wait)
	}
	// No main cache yet: dev's first job needs only its own.
	dev, wait := reserve(cacheJob(2, "refs/heads/dev", false))
	if dev == nil || dev.main != nil || dev.scope != "refs/heads/dev" || wait != "" {
		t.Fatalf("dev job without a main cache: %+v %q", dev, wait)
	}
	dev.release(true)
	st := r.caches()
	if err := st.Save(&cache.Record{Repo: "r", Incarnation: strings.Repeat("a", 32), Scope: cache.Main, Volumes: []cache.Volume{{Path: "/c", Name: "v"}}}); err != nil {
		t.Fatal(err)
	}
	// A main cache to copy from, which master's job holds: dev waits.
	if c, wait := reserve(cacheJob(3, "refs/heads/dev", false)); c != nil || !strings.Contains(wait, "copy of the main cache, which another job uses") {
		t.Errorf("dev job while master's runs: %+v %q", c, wait)
	}
	master0.release(true)
	dev, _ = reserve(cacheJob(3, "refs/heads/dev", false))
	if dev == nil || dev.main == nil || dev.lock == nil {
		t.Fatalf("dev job after master's: %+v", dev)
	}
	if c, wait := reserve(cacheJob(4, "refs/heads/master", false)); c != nil || wait == "" {
		t.Errorf("master job while dev copies the main cache: %+v %q", c, wait)
	}
	dev.release(true)
	// Once dev has a cache of its own, it no longer touches the main one.
	if err := st.Save(&cache.Record{Repo: "r", Incarnation: strings.Repeat("a", 32), Scope: "refs/heads/dev"}); err != nil {
		t.Fatal(err)
	}
	master, _ := reserve(cacheJob(5, "refs/heads/master", false))
	dev, wait = reserve(cacheJob(6, "refs/heads/dev", false))
	if dev == nil || dev.main != nil || wait != "" {
		t.Errorf("dev job with its own cache beside master's: %+v %q", dev, wait)
	}
	dev.release(true)
	// A holder that died uncleanly while its job still runs (to adopt)
	// keeps the cache; once it no longer runs, the cache is free.
	master.release(false)
	running[jobKey(cacheJob(5, "", false))] = true
	for range 2 {
		if c, wait := reserve(cacheJob(7, "refs/heads/master", false)); c != nil || wait == "" {
			t.Errorf("master job while job 5 still runs: %+v %q", c, wait)
		}
	}
	running[jobKey(cacheJob(5, "", false))] = false
	if c, wait := reserve(cacheJob(7, "refs/heads/master", false)); c == nil || c.lock == nil || wait != "" {
		t.Errorf("master job after job 5 ended: %+v %q", c, wait)
	}
}

// jobq gc drops the caches of other incarnations, then the least recently
// used until the total is within the bound; a cache in use stays.
func TestGCCaches(t *testing.T) {
	r := New(Config{Home: t.TempDir(), CacheTotal: 300})
	st := r.caches()
	inc, old := strings.Repeat("a", 32), strings.Repeat("b", 32)
	now := time.Now()
	for _, rec := range []cache.Record{
		{Repo: "r", Incarnation: old, Scope: cache.Main, LastUsed: now},
		{Repo: "gone", Incarnation: inc, Scope: cache.Main, LastUsed: now},
		{Repo: "r", Incarnation: inc, Scope: cache.Main, LastUsed: now.Add(-time.Hour), Volumes: []cache.Volume{{Path: "/c", Name: "a", Size: 200}}},
		{Repo: "r", Incarnation: inc, Scope: "refs/heads/old", LastUsed: now.Add(-3 * time.Hour), Volumes: []cache.Volume{{Path: "/c", Name: "b", Size: 100}}},
		{Repo: "r", Incarnation: inc, Scope: "refs/heads/busy", LastUsed: now.Add(-4 * time.Hour), Volumes: []cache.Volume{{Path: "/c", Name: "c", Size: 100}}},
		{Repo: "r", Incarnation: inc, Scope: "refs/heads/new", LastUsed: now, Volumes: []cache.Volume{{Path: "/c", Name: "d", Size: 50}}},
	} {
		if err := st.Save(&rec); err != nil {
			t.Fatal(err)
		}
	}
	busy, err := st.Lock("r", inc, "refs/heads/busy", "r/9", nil)
	if err != nil || busy == nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var said []string
	r.gcCaches(map[string]string{"r": inc}, func(f string, a ...any) { said = append(said, f) })
	recs, err := st.All()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, rec := range recs {
		left = append(left, rec.Repo+" "+rec.Scope)
	}
	// 450 in all: old (100) goes, then main (200): busy stays though
	// older, in use.
	want := map[string]bool{"r refs/heads/busy": true, "r refs/heads/new": true}
	if len(left) != len(want) {
		t.Fatalf("left %q, want %v", left, want)
	}
	for _, l := range left {
		if !want[l] {
			t.Errorf("left %q, want %v", left, want)
		}
	}
	if len(said) != 4 {
		t.Errorf("gc said %d things, want 4: %q", len(said), said)
	}
}

// A job whose ref has a cache of its own keeps the lock it took: another
// holder (jobq gc) taking it meanwhile would leave the job to run with
// its cache unlocked, and without its size bound. The other holder here
// takes and releases the lock as fast as it can; the window it would use
// is short, so the loop runs for a while.
func TestReserveCachesKeepsOwnLock(t *testing.T) {
	r := New(Config{Home: t.TempDir()})
	st := r.caches()
	inc := strings.Repeat("a", 32)
	if err := st.Save(&cache.Record{Repo: "r", Incarnation: inc, Scope: "refs/heads/dev"}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if f, err := st.Lock("r", inc, "refs/heads/dev", "gc", nil); err == nil && f != nil {
				cache.Unlock(f, true)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	var ran, waited int
	for start := time.Now(); time.Since(start) < time.Second; {
		c, wait, err := r.reserveCaches(cacheJob(1, "refs/heads/dev", false))
		if err != nil {
			t.Fatal(err)
		}
		if wait != "" {
			waited++
			continue
		}
		ran++
		if c == nil || c.lock == nil {
			t.Fatalf("after %d reservations, one to run has its cache unlocked: %+v", ran, c)
		}
		c.release(true)
	}
	t.Logf("%d reservations ran, %d waited", ran, waited)
}
