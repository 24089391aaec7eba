package queue

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// Follow copies the job's log to out as it grows, until the job ends, and
// returns the job as it ended. It gives up on a running job whose worker
// died (its claim's lock is free; the next worker marks it lost). It
// wakes when the job's directory changes, and looks at least every
// maxPoll.
func (s *Store) Follow(ctx context.Context, repo string, id int64, out io.Writer, maxPoll time.Duration) (*Job, error) {
	if err := ValidName(repo); err != nil {
		return nil, err
	}
	var w *watcher // made when there is something to wait for
	defer func() { w.close() }()
	var log *os.File
	defer func() {
		if log != nil {
			log.Close()
		}
	}()
	for {
		j, err := s.Job(repo, id)
		if err != nil {
			return nil, err
		}
		if log == nil {
			log, _ = os.Open(s.LogPath(repo, id))
		}
		if log != nil {
			if _, err := io.Copy(out, log); err != nil {
				return j, fmt.Errorf("follow %s %d: %w", repo, id, err)
			}
		}
		if j.State.Final() {
			return j, nil
		}
		if j.State == Running && !s.Handled(repo, id) {
			if j2, err := s.Job(repo, id); err == nil && j2.State == Running {
				return j2, fmt.Errorf("follow %s %d: its worker (pid %d) died; the next worker marks it lost", repo, id, j.Worker)
			}
			continue
		}
		if ctx.Err() != nil {
			return j, ctx.Err()
		}
		if w == nil {
			if w = watch(s.jobDir(repo, id)); w != nil {
				continue // a change before the watch began would be missed
			}
		}
		w.wait(maxPoll)
	}
}
