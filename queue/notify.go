package queue

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// JobDir is the directory of job id of repo: package notify keeps its
// record of the job's notifications there (notify.json).
func (s *Store) JobDir(repo string, id int64) string { return s.jobDir(repo, id) }

// NotifyIndex is the directory that lists the jobs whose notifications are
// not all delivered or given up yet (package notify): one empty file per
// job, named by NotifyEntry. A process that picks up what a dead worker
// left reads this directory, not every job's.
func (s *Store) NotifyIndex() string { return filepath.Join(s.dir, "notify") }

// NotifyEntry is the name of job id of repo in NotifyIndex: ID-REPO, REPO
// escaped as every name of the store is.
func NotifyEntry(repo string, id int64) string {
	return strconv.FormatInt(id, 10) + "-" + escape(repo)
}

// ParseNotifyEntry reads a name NotifyEntry made; ok is false for any
// other name (a temporary file, a stray).
func ParseNotifyEntry(name string) (repo string, id int64, ok bool) {
	n, r, found := strings.Cut(name, "-")
	if !found {
		return "", 0, false
	}
	id, err := strconv.ParseInt(n, 10, 64)
	if err != nil || id < 0 || strconv.FormatInt(id, 10) != n {
		return "", 0, false
	}
	repo = unescape(r)
	if ValidName(repo) != nil || escape(repo) != r {
		return "", 0, false
	}
	return repo, id, true
}

// notifyPending reports whether job id of repo has notifications still to
// deliver: Prune keeps it until they are delivered or given up (after a
// day at most), as their messages are made from its record and log.
func (s *Store) notifyPending(repo string, id int64) bool {
	_, err := os.Lstat(filepath.Join(s.NotifyIndex(), NotifyEntry(repo, id)))
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}
