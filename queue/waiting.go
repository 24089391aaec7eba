package queue

import (
	"os"
	"path/filepath"
	"strings"
)

// SetWaiting records why queued job j, which the caller has claimed (Peek),
// waits to start ("": it no longer waits), for Waiting. It is a hint: a
// failure to write it costs only the listing's explanation.
func (s *Store) SetWaiting(j *Job, reason string) {
	path := filepath.Join(s.jobDir(j.Repo, j.ID), "waiting")
	if reason == "" {
		os.Remove(path)
		return
	}
	replaceFile(path, []byte(reason+"\n"))
}

// Waiting says why a queued job waits to start, as its worker last wrote
// it: "" when it does not wait, or when that worker is gone (its claim's
// lock is free).
func (s *Store) Waiting(repo string, id int64) string {
	if ValidName(repo) != nil || id < 0 {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(s.jobDir(repo, id), "waiting"))
	if err != nil || !s.Handled(repo, id) {
		return ""
	}
	return strings.TrimSpace(string(b))
}
