package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DefaultMinFree is the free space the data directory's filesystem keeps
// (JOBQ_MIN_FREE of the worker): below it no job starts.
const DefaultMinFree = 1 << 30

// FreeSpace is the space left to unprivileged users on dir's filesystem.
func FreeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// FormatBytes writes a size as ParseBytes reads it, in the largest unit
// that divides it: 1g, 512m, 100k, 7.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// humanBytes shows a size to people, rounded down: 200 MiB.
func humanBytes(n int64) string {
	switch {
	case n >= 10<<30:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 10<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 10<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// lowSpace says why no job may start for lack of space on the data
// directory's filesystem, or "" if there is enough.
func (w *Worker) lowSpace() (string, error) {
	if w.MinFree <= 0 {
		return "", nil
	}
	free := FreeSpace
	if w.FreeSpace != nil {
		free = w.FreeSpace
	}
	n, err := free(w.Store.dir)
	if err != nil {
		return "", err
	}
	if n >= w.MinFree {
		return "", nil
	}
	return fmt.Sprintf("%s free, JOBQ_MIN_FREE=%s", humanBytes(n), FormatBytes(w.MinFree)), nil
}

// setWaiting records why queued job j waits to start ("": it no longer
// waits), with the worker's pid, for Waiting. It is a hint: a failure to
// write it costs only the listing's explanation.
func (s *Store) setWaiting(j *Job, reason string) {
	path := filepath.Join(s.jobDir(j.Repo, j.ID), "waiting")
	if reason == "" {
		os.Remove(path)
		return
	}
	replaceFile(path, []byte(strconv.Itoa(os.Getpid())+" "+reason+"\n"))
}

// Waiting says why a queued job waits to start, as its worker last wrote
// it: "" when it does not wait, or when that worker is gone.
func (s *Store) Waiting(repo string, id int64) string {
	if ValidName(repo) != nil || id < 0 {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(s.jobDir(repo, id), "waiting"))
	if err != nil {
		return ""
	}
	pid, reason, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	if n, err := strconv.Atoi(pid); err != nil || n <= 0 || !alive(n) {
		return ""
	}
	return reason
}
