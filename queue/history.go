package queue

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// HistoryStamp is what a repository's directory says of the job
// directories in it: a job added (its directory renamed into place) or
// removed (Prune, retirement) changes it; a record replaced inside a job's
// directory does not. A reader that keeps what it read of a history (the
// metrics) reads the directory again only when the stamp changed.
type HistoryStamp struct {
	ModTime time.Time
	Links   uint64 // 2 + the subdirectories: one more or fewer job
	Inode   uint64 // the directory itself: removed and made again
}

// History is repo's stamp, and the time it was taken. A stamp whose
// ModTime is not older than the file system's clock granularity may see
// a later change within the same tick without changing: see Settled.
func (s *Store) History(repo string) (HistoryStamp, error) {
	if err := ValidName(repo); err != nil {
		return HistoryStamp{}, err
	}
	fi, err := os.Stat(s.repoDir(repo))
	if err != nil {
		return HistoryStamp{}, fmt.Errorf("history of %s: %w", repo, err)
	}
	st := HistoryStamp{ModTime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.Links, st.Inode = uint64(sys.Nlink), sys.Ino
	}
	return st, nil
}

// stampSettle is how long after a change a stamp is trusted: the kernel
// stamps a directory's mtime with a coarse clock (a tick of up to 10 ms),
// so a change in the tick of the last one may leave it as it was; and a
// job added and another removed in that tick leave Links too.
const stampSettle = time.Second

// Settled reports whether the stamp, taken at taken, will change with
// any later change: its last change is older than a tick of the clock
// that stamps it.
func (st HistoryStamp) Settled(taken time.Time) bool {
	return taken.Sub(st.ModTime) > stampSettle
}

// IDs lists every job ID of repo, newest first, by reading its
// directory: its cost grows with the history.
func (s *Store) IDs(repo string) ([]int64, error) {
	if err := ValidName(repo); err != nil {
		return nil, err
	}
	ids, err := s.ids(repo, 0)
	if err != nil {
		return nil, fmt.Errorf("jobs of %s: %w", repo, err)
	}
	return ids, nil
}
