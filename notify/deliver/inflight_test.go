package deliver

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobq/jobq/notify"
	"github.com/jobq/jobq/queue"
)

// pendingJobs records n failed jobs in a new store, each with a
// notification to dest waiting.
func pendingJobs(t *testing.T, n int, dest string) *queue.Store {
	t.Helper()
	s, err := queue.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		j := &queue.Job{Repo: "team/app", Queue: queue.DefaultQueue("team/app"), Ref: "refs/heads/master", NewRev: strings.Repeat("ab", 20), User: "alice", Options: queue.Options{Notify: []string{dest}, NotifySecret: "hook"}}
		if _, err := s.Enqueue(j); err != nil {
			t.Fatal(err)
		}
		code := 1
		j.State, j.ExitCode, j.StartedAt, j.FinishedAt = queue.Failed, &code, time.Now().Add(-time.Second), time.Now()
		if ok, err := notify.Prepare(s, j); err != nil || !ok {
			t.Fatalf("Prepare = %v, %v", ok, err)
		}
		if _, err := s.Update(j.Repo, j.ID, func(r *queue.Job) error { *r = *j; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// peak samples count for d and returns the most it saw.
func peak(d time.Duration, count func() int) int {
	most := 0
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		most = max(most, count())
	}
	return most
}

// Many jobs' notifications to a receiver that hangs (a pusher who makes
// many jobs fail towards a slow receiver): at most DefaultInFlight
// connections at once, not one per job; the rest wait their turn, and
// every one is delivered once the receiver answers.
func TestInFlightWebhook(t *testing.T) {
	var now, calls atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The body read, the server sees the client go (its timeout).
		io.ReadAll(r.Body)
		now.Add(1)
		defer now.Add(-1)
		calls.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer open()
	const jobs = 50
	s := pendingJobs(t, jobs, srv.URL+"/hook")
	d := newDeliverer(s, t) // a try times out after 1s
	d.Pickup()
	if most := peak(2500*time.Millisecond, func() int { return int(now.Load()) }); most > DefaultInFlight || most == 0 {
		t.Errorf("%d requests at once, want 1 to %d", most, DefaultInFlight)
	}
	open()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if n, _ := notify.Pending(s); n == 0 {
			break
		}
	}
	d.Close(0)
	if n, _ := notify.Pending(s); n != 0 {
		t.Errorf("%d of %d jobs' notifications pending after the receiver answered (%d requests)", n, jobs, calls.Load())
	}
}

// The same with an exec destination that hangs: at most DefaultInFlight
// processes of the hosting account at once.
func TestInFlightExec(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	if err := os.Mkdir(pids, 0o755); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(dir, "hang")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\ntouch "+pids+"/$$\nexec sleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := pendingJobs(t, 50, "exec:"+prog)
	d := newDeliverer(s, t) // a try is killed after 1s
	d.Pickup()
	alive := func() int {
		n := 0
		es, _ := os.ReadDir(pids)
		for _, e := range es {
			st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err == nil && !strings.Contains(string(st), ") Z ") {
				n++
			}
		}
		return n
	}
	most := peak(2500*time.Millisecond, alive)
	d.Close(0)
	if most > DefaultInFlight || most == 0 {
		t.Errorf("%d processes at once, want 1 to %d", most, DefaultInFlight)
	}
	testWait(t, "the processes killed", func() bool { return alive() == 0 })
}
