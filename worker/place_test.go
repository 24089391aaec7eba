package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// placer runs jobs on pretend build hosts: remote jobs (Connection
// "pool") wait with a reason for their first looks, then get a host.
type placer struct {
	testRunner
	mu       sync.Mutex
	looks    int
	waits    int // looks answered with a wait
	released []string
	waiting  []string // what the listing said while the job waited
	store    *queue.Store
}

func (p *placer) Place(ctx context.Context, j *queue.Job) (string, func(), string, error) {
	if j.Options.Connection != "pool" {
		return "", nil, "", nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.looks++; p.looks <= p.waits {
		if p.looks > 1 {
			p.waiting = append(p.waiting, p.store.Waiting(j.Repo, j.ID))
		}
		return "", nil, "no build host of pool can be reached (b0: connection refused)", nil
	}
	key := fmt.Sprintf("%s/%d", j.Repo, j.ID)
	return "b1", func() {
		p.mu.Lock()
		p.released = append(p.released, key)
		p.mu.Unlock()
	}, "", nil
}

// A remote job takes no local slot: it waits for a host, says why in the
// listing and its log, and runs with the host recorded in the job and its
// log's header; its host is let go after its clean-up. A lost host's
// error ends the job lost.
func TestPlacedJobs(t *testing.T) {
	s := newStore(t)
	p := &placer{waits: 3, store: s}
	var hostSeen string
	cleaned := false
	p.testRunner = testRunner{
		run: func(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
			hostSeen = j.Host
			return 0, fmt.Errorf("build host b1 went away during the job: %w", runner.ErrLost)
		},
		cleanup: func(ctx context.Context, j runner.Job) error {
			p.mu.Lock()
			defer p.mu.Unlock()
			cleaned = len(p.released) == 0 // not let go before
			return nil
		},
	}
	j := newJob("r", "q")
	j.Options.Connection = "pool"
	s.Enqueue(j)
	// The only local slot is taken: a remote job does not need it.
	hold, _, err := s.WaitForSlot("other", newJob("o", "other")).Try(1, 1)
	if err != nil || hold == nil {
		t.Fatalf("local slot: %v", err)
	}
	defer hold.Release()
	w := &Worker{Store: s, Slots: 1, Runners: map[string]runner.Runner{"exec": p},
		pause: func(ctx context.Context, d time.Duration) bool {
			time.Sleep(time.Millisecond)
			return ctx.Err() == nil
		}}
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	if err := w.Drain(dctx, "q", false); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Job("r", 0)
	if got.State != queue.Lost || got.Host != "b1" || hostSeen != "b1" || !strings.Contains(got.Error, "went away") {
		t.Errorf("job: state %s, host %q (run saw %q), error %q", got.State, got.Host, hostSeen, got.Error)
	}
	if !cleaned || len(p.released) != 1 {
		t.Errorf("cleaned up before the host was let go: %v, released %v", cleaned, p.released)
	}
	for _, w := range p.waiting {
		if !strings.Contains(w, "no build host of pool can be reached") {
			t.Errorf("listing while waiting: %q", w)
		}
	}
	if len(p.waiting) == 0 {
		t.Error("never looked at the listing")
	}
	if s.Waiting("r", 0) != "" {
		t.Error("still waiting")
	}
	log, _ := os.ReadFile(s.LogPath("r", 0))
	for _, want := range []string{"jobq: job 0 waits to start: no build host of pool can be reached (b0: connection refused)\n",
		"jobq: build host b1\n", "jobq: lost: build host b1 went away"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Count(string(log), "waits to start") != 1 {
		t.Errorf("the wait is logged more than once:\n%s", log)
	}

	// A local job of the same runner still takes a local slot.
	local := newJob("l", "lq")
	s.Enqueue(local)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	w.pause = nil
	w.Poll = 10 * time.Millisecond
	err = w.Drain(ctx, "lq", false)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("local job with no local slot: %v", err)
	}
	if got, _ := s.Job("l", 0); got.State != queue.Queued {
		t.Errorf("local job: %s", got.State)
	}
}
