package queue

import (
	"bytes"
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
// For its first seconds it looks every few milliseconds; then it wakes
// when the job's directory changes, and looks at least every maxPoll.
func (s *Store) Follow(ctx context.Context, repo string, id int64, out io.Writer, maxPoll time.Duration, orphaned func(*Job) error) (*Job, error) {
	if err := ValidName(repo); err != nil {
		return nil, err
	}
	// Closing an inotify instance waits for the kernel's SRCU grace period
	// (about 11 ms here, at close or at exit): more than a synchronous push
	// of a short job spends waiting for its result. So the watch is made
	// only for a job that runs on.
	quick := time.Now().Add(quickFollow)
	var w *watcher
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
			if log != nil {
				if err := resultAfterCut(log, out); err != nil {
					return j, fmt.Errorf("follow %s %d: %w", repo, id, err)
				}
			}
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
		if now := time.Now(); now.Before(quick) {
			pause(ctx, min(quickPoll(quick.Sub(now)), maxPoll))
			continue
		}
		if w == nil {
			if w = watch(s.jobDir(repo, id)); w != nil {
				continue // a change before the watch began would be missed
			}
		}
		w.wait(maxPoll)
	}
}

// quickFollow is how long Follow polls before it watches the job's
// directory, and quickPoll how often, given how much of that is left:
// every 2 ms at first (a look is one small read), every 10 ms later.
const quickFollow = 2 * time.Second

func quickPoll(left time.Duration) time.Duration {
	if left > quickFollow-250*time.Millisecond {
		return 2 * time.Millisecond
	}
	return 10 * time.Millisecond
}

// pause waits for d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// resultAfterCut writes the log's last line, its result, when the log was
// cut below what has been copied from it (a job over the log limit: the
// worker truncates the log there and appends the result line), which the
// copy would otherwise never reach.
func resultAfterCut(log *os.File, out io.Writer) error {
	pos, err := log.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	fi, err := log.Stat()
	if err != nil || fi.Size() >= pos {
		return err
	}
	tail := make([]byte, min(fi.Size(), 4096))
	if _, err := log.ReadAt(tail, fi.Size()-int64(len(tail))); err != nil {
		return err
	}
	line := tail[bytes.LastIndexByte(tail[:max(len(tail)-1, 0)], '\n')+1:]
	// The newline before the result line is the log's (the worker ends
	// the job's line first): out is told where these bytes are from, if
	// it follows offsets (termsafe.LogWriter).
	if o, ok := out.(interface{ SetOffset(int64) }); ok {
		o.SetOffset(fi.Size() - int64(len(line)) - 1)
	}
	_, err = out.Write(append([]byte("\n"), line...))
	return err
}
