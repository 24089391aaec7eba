package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

func entryName(seq, id int64, repo string) string {
	return fmt.Sprintf("%020d-%d-%s", seq, id, escape(repo))
}

func parseEntry(name string) (Entry, int64, bool) {
	parts := strings.SplitN(name, "-", 3)
	if len(parts) != 3 {
		return Entry{}, 0, false
	}
	seq, err1 := strconv.ParseInt(parts[0], 10, 64)
	id, err2 := strconv.ParseInt(parts[1], 10, 64)
	repo := unescape(parts[2])
	if err1 != nil || err2 != nil || id < 0 || ValidName(repo) != nil {
		return Entry{}, 0, false
	}
	return Entry{Repo: repo, ID: id, name: name}, seq, true
}

// entries lists a queue directory (pending or running) in queue order.
func (s *Store) entries(q, sub string) ([]Entry, error) {
	ents, err := os.ReadDir(filepath.Join(s.queueDir(q), sub))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var es []Entry
	for _, d := range ents {
		if e, _, ok := parseEntry(d.Name()); ok {
			es = append(es, e)
		}
	}
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.name, b.name) })
	return es, nil
}

func (s *Store) makeQueue(q string) error {
	for _, d := range []string{s.queueDir(q), filepath.Join(s.queueDir(q), "pending"), filepath.Join(s.queueDir(q), "running")} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// addEntry appends j to its queue, sets j.Seq, and returns the entry's path
// and how many jobs are ahead of it. The entry dangles until the job
// directory exists.
func (s *Store) addEntry(j *Job) (string, int, error) {
	if err := s.makeQueue(j.Queue); err != nil {
		return "", 0, err
	}
	l := newLock(filepath.Join(s.queueDir(j.Queue), "enqueue.lock"))
	if err := l.Lock(); err != nil {
		return "", 0, err
	}
	defer l.Unlock()
	pending, err := s.entries(j.Queue, "pending")
	if err != nil {
		return "", 0, err
	}
	running, err := s.entries(j.Queue, "running")
	if err != nil {
		return "", 0, err
	}
	seq := time.Now().UnixNano()
	for _, e := range slices.Concat(pending, running) {
		_, es, _ := parseEntry(e.name)
		seq = max(seq, es+1)
	}
	j.Seq = seq
	dir := filepath.Join(s.queueDir(j.Queue), "pending")
	path := filepath.Join(dir, entryName(seq, j.ID, j.Repo))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", 0, err
	}
	f.Close()
	l.Unlock()
	// The name is taken; its sync needs no lock, and concurrent enqueues
	// then share the journal's commits instead of waiting in line. It is
	// still done before the job's commit (the caller's rename).
	if err := syncDir(dir); err != nil {
		os.Remove(path)
		return "", 0, err
	}
	return path, len(pending) + len(running), nil
}

// Ahead maps each queued or running job of queue q, as "REPO ID", to the
// number of jobs ahead of it (0 for the one running).
func (s *Store) Ahead(q string) (map[string]int, error) {
	running, err := s.entries(q, "running")
	if err != nil {
		return nil, err
	}
	pending, err := s.entries(q, "pending")
	if err != nil {
		return nil, err
	}
	m := make(map[string]int)
	for i, e := range slices.Concat(running, pending) {
		m[e.Repo+" "+strconv.FormatInt(e.ID, 10)] = i
	}
	return m, nil
}

// Queues lists the queues that exist, sorted.
func (s *Store) Queues() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "queues"))
	if err != nil {
		return nil, err
	}
	var qs []string
	for _, e := range ents {
		if q := unescape(e.Name()); e.IsDir() && ValidQueue(q) == nil {
			qs = append(qs, q)
		}
	}
	return qs, nil
}

// QueueFor is the queue a job of repo goes to when its options name queue
// q: q, except that a repository's own queue had the repository's bare
// name before it had a name of its own (DefaultQueue), and while jobs of
// repo queued then are still in that queue, new ones join them there, so
// that they run after them, one at a time, as before.
func (s *Store) QueueFor(repo, q string) string {
	if q != DefaultQueue(repo) || ValidName(repo) != nil {
		return q
	}
	for _, sub := range []string{"running", "pending"} {
		es, _ := s.entries(repo, sub)
		for _, e := range es {
			if e.Repo == repo {
				return repo
			}
		}
	}
	return q
}

// HasPending reports whether queue q has jobs waiting.
func (s *Store) HasPending(q string) (bool, error) {
	es, err := s.entries(q, "pending")
	return len(es) > 0, err
}

// queueLock is queue q's worker lock: held by the one process draining q.
func (s *Store) queueLock(q string) (*flock.Flock, error) {
	if err := ValidQueue(q); err != nil {
		return nil, err
	}
	if err := s.makeQueue(q); err != nil {
		return nil, fmt.Errorf("lock queue %s: %w", q, err)
	}
	return newLock(filepath.Join(s.queueDir(q), "worker.lock")), nil
}
