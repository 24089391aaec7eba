package worker

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jobq/jobq/internal/faults"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// Serve drains every queue as jobs arrive, until ctx ends (jobq-worker
// drain --all, a service). It is the data directory's dispatcher too,
// once no other process is (it tries every second): queues handed off
// then come to it, at once, and no other process holds a waiting queue.
func (w *Worker) Serve(ctx context.Context) error {
	return w.serve(ctx, nil, nil, "", true)
}

// dispatch is a worker a hook started that became the data directory's
// dispatcher (DrainOrHandOff): it drains, each in a goroutine, its own
// queue (own, if it kept it) and every queue handed off, and exits once it
// holds none.
func (w *Worker) dispatch(ctx context.Context, d *queue.Dispatcher, own func(context.Context) error, q string) error {
	return w.serve(ctx, d, own, q, false)
}

// serve drains queues in goroutines, one a queue, each holding its
// worker.lock as a hook's worker would: the queues handed to the
// dispatcher (d) at once, woken by the hand-off; a service every queue
// with entries too, once a second, until ctx ends.
func (w *Worker) serve(ctx context.Context, d *queue.Dispatcher, own func(context.Context) error, ownQ string, service bool) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	active := map[string]bool{}
	most, full := w.heldCap(), false
	start := func(q string, drain func(context.Context) error) {
		mu.Lock()
		defer mu.Unlock()
		if active[q] {
			return
		}
		// A queue over the cap stays as it is (handed off: its mark
		// stays, and it is taken once another queue lets go).
		if len(active) >= most {
			if !full {
				w.logf("holding %d queues, the most this process holds at once; the others wait their turn", most)
			}
			full = true
			return
		}
		full = false
		active[q] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := drain(ctx); err != nil && ctx.Err() == nil {
				w.logf("%v", err)
			}
			mu.Lock()
			delete(active, q)
			mu.Unlock()
		}()
	}
	defer func() {
		wg.Wait()
		if d != nil {
			d.Close()
		}
	}()
	if own != nil {
		start(ownQ, own)
	}
	var scanned time.Time
	for first := true; ctx.Err() == nil; first = false {
		if service && d == nil {
			var err error
			if d, err = w.Store.TakeDispatch(); err != nil {
				w.logf("%v", err)
			}
		}
		var qs []string
		if service && time.Since(scanned) >= time.Second {
			scanned = time.Now()
			all, err := w.Store.Queues()
			if err != nil {
				return err
			}
			for _, q := range all {
				if pending, _ := w.Store.HasPending(q); pending || first {
					qs = append(qs, q)
				}
			}
		}
		if d != nil {
			handed, err := d.HandedOff()
			if err != nil {
				w.logf("%v", err)
			}
			for _, q := range handed {
				start(q, func(ctx context.Context) error {
					h, err := w.Store.HoldQueue(q, false)
					if err != nil || h == nil {
						return err // held still by the worker handing it off, which wakes us again
					}
					faults.Point("dispatch-took")
					return w.drainHeld(ctx, h, q)
				})
			}
		}
		for _, q := range qs {
			start(q, func(ctx context.Context) error { return w.Drain(ctx, q, false) })
		}
		if !service {
			mu.Lock()
			idle := len(active) == 0
			mu.Unlock()
			if idle {
				again, err := d.Release()
				if err != nil || !again {
					return err
				}
			}
		}
		tick := time.Second
		if !service {
			tick = w.poll() // how soon an idle dispatcher exits
		}
		if d != nil {
			d.Wait(tick)
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(tick):
		}
	}
	return nil
}

// GC retries failed clean-ups, applies each repository's JOBQ_KEEP (and
// the kept history of deleted repositories), settles what crashed workers
// left, and runs jobs no worker is running (jobq gc). What it did to
// deleted repositories' jobs goes to out.
func (w *Worker) GC(ctx context.Context, out io.Writer) error {
	repos, err := w.Store.Repos()
	if err != nil {
		return err
	}
	newest := map[string][]*queue.Job{} // by runner
	for _, r := range repos {
		jobs, err := w.Store.Jobs(r, 1)
		if err != nil || len(jobs) == 0 || jobs[0].Job == nil {
			continue
		}
		newest[jobs[0].Job.Options.Runner] = append(newest[jobs[0].Job.Options.Runner], jobs[0].Job)
		if err := w.Tidy(ctx, r, jobs[0].Job.Options.Keep); err != nil {
			w.logf("%v", err)
		}
	}
	for name, js := range newest {
		if s, ok := w.Runners[name].(runner.Sweeper); ok {
			if err := s.Sweep(ctx, js); err != nil {
				w.logf("%v", err)
			}
		}
	}
	// Jobs of deleted repositories: the administrator's, never shown over
	// ssh; counted here, and kept as their repository's JOBQ_KEEP said.
	retired, err := w.Store.PruneRetired()
	if err != nil {
		w.logf("%v", err)
	}
	if retired.Jobs > 0 || retired.Removed > 0 {
		fmt.Fprintf(out, "jobq gc: %d jobs of %d deleted repositories kept in %s, %d removed\n",
			retired.Jobs, retired.Incarnations, filepath.Join(w.Store.Dir(), "retired"), retired.Removed)
	}
	qs, err := w.Store.Queues()
	if err != nil {
		return err
	}
	for _, q := range qs {
		pending, err := w.Recover(ctx, q)
		if err != nil {
			w.logf("%v", err)
		}
		if pending {
			if err := w.Drain(ctx, q, false); err != nil {
				w.logf("%v", err)
			}
		}
	}
	return nil
}

// heldCap is how many queues one process holds at once: each costs a
// goroutine and about three open files, and a user who may create
// repositories can hand off thousands; past the cap they wait, marked,
// instead of taking every file the process may open (its jobs' logs and
// sockets among them).
func (w *Worker) heldCap() int {
	if w.maxHeld > 0 {
		return w.maxHeld
	}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		return 256
	}
	return max(int(min(lim.Cur, 1<<20)/8), 64)
}
