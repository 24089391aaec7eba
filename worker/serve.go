package worker

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/jobq/jobq/queue"
)

// Serve drains every queue as jobs arrive, until ctx ends (jobq-worker
// drain --all, a service).
func (w *Worker) Serve(ctx context.Context) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	active := map[string]bool{}
	for first := true; ctx.Err() == nil; first = false {
		qs, err := w.Store.Queues()
		if err != nil {
			return err
		}
		for _, q := range qs {
			mu.Lock()
			busy := active[q]
			mu.Unlock()
			if busy {
				continue
			}
			if pending, _ := w.Store.HasPending(q); !pending && !first {
				continue
			}
			mu.Lock()
			active[q] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := w.Drain(ctx, q, false); err != nil && ctx.Err() == nil {
					w.logf("%v", err)
				}
				mu.Lock()
				delete(active, q)
				mu.Unlock()
			}()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	wg.Wait()
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
		if s, ok := w.Runners[name].(Sweeper); ok {
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
