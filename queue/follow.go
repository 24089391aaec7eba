package queue

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// Follow copies the job's log to out as it grows, until the job ends, and
// returns the job as it ended. A running job whose worker died or stopped
// (its claim's lock is free) is followed on: the next worker adopts it and
// its log goes on; orphaned, if not nil, is called each time Follow finds
// it so (to start that worker), and an error it returns ends the follow.
// It wakes when the job's directory changes, and looks at least every
// maxPoll.
func (s *Store) Follow(ctx context.Context, repo string, id int64, out io.Writer, maxPoll time.Duration, orphaned func(*Job) error) (*Job, error) {
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
		if j.State == Running && orphaned != nil && !s.Handled(repo, id) {
			if err := orphaned(j); err != nil {
				return j, fmt.Errorf("follow %s %d: its worker is gone, and %w", repo, id, err)
			}
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
