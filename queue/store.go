package queue

import (
	"encoding/json"
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

	"github.com/jobq/jobq/internal/atomicfile"
	"github.com/jobq/jobq/internal/faults"
)

// ErrNotFound means no such repository or job.
var ErrNotFound = errors.New("not found")

// ErrUnreadable means a job record that is there but cannot be decoded.
var ErrUnreadable = errors.New("unreadable record")

// Store is a data directory. Its methods are safe for concurrent use by any
// number of processes on one host.
type Store struct {
	dir string
	// mine is the waiters this process holds in slots/wait: a look at
	// the line (liveWaiters) need not try their locks or read their
	// files, which matters in the dispatcher, that holds hundreds.
	mine *ownWaiters
}

// newLock is a flock on path, a file only the account may open.
func newLock(path string) *flock.Flock {
	return flock.New(path, flock.SetPermissions(0o600))
}

// Open returns the store in dir, creating it readable by its owner only.
func Open(dir string) (*Store, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("open store: %q is not an absolute path", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	for _, d := range []string{filepath.Join(dir, "repos"), filepath.Join(dir, "queues"), filepath.Join(dir, "slots"), filepath.Join(dir, "handoff")} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	return &Store{dir: dir, mine: &ownWaiters{m: map[string]string{}}}, nil
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) repoDir(repo string) string { return filepath.Join(s.dir, "repos", escape(repo)) }

func (s *Store) jobDir(repo string, id int64) string {
	return filepath.Join(s.repoDir(repo), strconv.FormatInt(id, 10))
}

func (s *Store) queueDir(q string) string { return filepath.Join(s.dir, "queues", escape(q)) }

// LogPath is the job's log file.
func (s *Store) LogPath(repo string, id int64) string {
	return filepath.Join(s.jobDir(repo, id), "log")
}

// lockRepo takes the repository's lock, creating the repository if need be.
func (s *Store) lockRepo(repo string) (*flock.Flock, error) {
	if err := ValidName(repo); err != nil {
		return nil, err
	}
	if err := os.Mkdir(s.repoDir(repo), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	l := newLock(filepath.Join(s.repoDir(repo), "lock"))
	if err := l.Lock(); err != nil {
		return nil, err
	}
	return l, nil
}

// Enqueue gives j the repository's next ID, stores it as queued and appends
// it to its queue. It returns how many jobs are ahead of it in the queue.
func (s *Store) Enqueue(j *Job) (ahead int, err error) {
	if err := ValidName(j.Repo); err != nil {
		return 0, fmt.Errorf("enqueue: %w", err)
	}
	if err := ValidQueue(j.Queue); err != nil {
		return 0, fmt.Errorf("enqueue %s: %w", j.Repo, err)
	}
	// The repository's incarnation (see incarnation.go); a job without a
	// bare repository (the store's own tests) has none.
	var token string
	if j.GitDir != "" {
		if token, err = readIncarnation(j.GitDir, true); err != nil {
			return 0, fmt.Errorf("enqueue %s: %w", j.Repo, err)
		}
	}
	lock, err := s.lockRepo(j.Repo)
	if err != nil {
		return 0, fmt.Errorf("enqueue %s: %w", j.Repo, err)
	}
	defer lock.Unlock()
	if token != "" {
		if err := s.settleIncarnation(j.Repo, token, j.GitDir); err != nil {
			return 0, fmt.Errorf("enqueue %s: %w", j.Repo, err)
		}
	}
	j.Incarnation = token
	ahead, err = s.enqueueLocked(j)
	if err != nil {
		return 0, fmt.Errorf("enqueue %s: %w", j.Repo, err)
	}
	return ahead, nil
}

func (s *Store) enqueueLocked(j *Job) (int, error) {
	rdir := s.repoDir(j.Repo)
	id, err := s.nextID(j.Repo)
	if err != nil {
		return 0, err
	}
	// The ID is spent before anything refers to it. next is only a hint,
	// made durable by the sync of rdir below: the job directories are the
	// truth, and nextID skips any that exist (see nextID).
	if err := replaceFile(filepath.Join(rdir, "next"), []byte(strconv.FormatInt(id+1, 10)+"\n")); err != nil {
		return 0, err
	}
	faults.Point("enqueue-id-spent")
	j.ID, j.State, j.QueuedAt = id, Queued, time.Now().UTC()
	tmp, err := os.MkdirTemp(rdir, ".new-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	entry, ahead, err := s.addEntry(j)
	if err != nil {
		return 0, err
	}
	data, err := json.MarshalIndent(j, "", "  ")
	if err == nil {
		err = writeFile(filepath.Join(tmp, "job.json"), data)
	}
	if err != nil {
		os.Remove(entry)
		return 0, err
	}
	faults.Point("enqueue-entry-added")
	if err := os.Rename(tmp, s.jobDir(j.Repo, id)); err != nil {
		os.Remove(entry)
		return 0, err
	}
	faults.Point("enqueue-committed")
	// The job exists now: a failed sync only risks it at a power loss, and
	// telling the pusher "no job queued" would be false.
	syncDir(rdir)
	return ahead, nil
}

// nextID reads the next free ID. It skips directories that exist (an
// enqueue that stored its job but crashed before it could store next), and
// scans the repository when next is missing or unreadable (lost in a crash
// before the sync that covers it). After such a loss an ID whose enqueue
// never committed may be handed out again; its dangling queue entry, if
// any, then names the new job too, which still runs once: a claim runs
// only a queued job.
func (s *Store) nextID(repo string) (int64, error) {
	var id int64
	b, err := os.ReadFile(filepath.Join(s.repoDir(repo), "next"))
	if err == nil {
		id, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	if err != nil || id < 0 {
		if id, err = s.scanNextID(repo); err != nil {
			return 0, err
		}
	}
	for {
		_, err := os.Lstat(s.jobDir(repo, id))
		if errors.Is(err, fs.ErrNotExist) {
			return id, nil
		}
		if err != nil {
			return 0, err
		}
		id++
	}
}

// scanNextID is one more than the highest job ID in the repository.
func (s *Store) scanNextID(repo string) (int64, error) {
	ents, err := os.ReadDir(s.repoDir(repo))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	next := s.retiredMax(repo) + 1
	for _, e := range ents {
		if id, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && id >= next {
			next = id + 1
		}
	}
	return next, nil
}

// replaceFile replaces path with data by a rename, without fsync: for
// hints whose loss costs nothing but a scan.
func replaceFile(path string, data []byte) error {
	return atomicfile.Write(path, data, 0o600, false)
}

// writeFile writes a new file durably (it is made visible by a later rename).
func writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Job reads one job record.
func (s *Store) Job(repo string, id int64) (*Job, error) {
	if err := ValidName(repo); err != nil {
		return nil, err
	}
	if id < 0 {
		return nil, fmt.Errorf("job %s %d: %w", repo, id, ErrNotFound)
	}
	data, err := os.ReadFile(filepath.Join(s.jobDir(repo, id), "job.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("job %s %d: %w", repo, id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("job %s %d: %w", repo, id, err)
	}
	j, err := decodeJob(data)
	if err != nil {
		return nil, fmt.Errorf("job %s %d: %w: %w", repo, id, ErrUnreadable, err)
	}
	return j, nil
}

// Update changes a job record under the repository lock. fn sees the current
// record; if it returns an error, nothing is written.
func (s *Store) Update(repo string, id int64, fn func(*Job) error) (*Job, error) {
	lock, err := s.lockRepo(repo)
	if err != nil {
		return nil, fmt.Errorf("update job %s %d: %w", repo, id, err)
	}
	defer lock.Unlock()
	return s.updateLocked(repo, id, fn)
}

func (s *Store) updateLocked(repo string, id int64, fn func(*Job) error) (*Job, error) {
	j, err := s.Job(repo, id)
	if err != nil {
		return nil, err
	}
	if err := fn(j); err != nil {
		return j, err
	}
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(s.jobDir(repo, id), "job.json"), data, 0o600); err != nil {
		return nil, fmt.Errorf("update job %s %d: %w", repo, id, err)
	}
	return j, nil
}

// Repos lists the repositories that have jobs, sorted.
func (s *Store) Repos() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "repos"))
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	var repos []string
	for _, e := range ents {
		if name := unescape(e.Name()); e.IsDir() && ValidName(name) == nil {
			repos = append(repos, name)
		}
	}
	slices.Sort(repos)
	return repos, nil
}

// Listed is a job as a listing shows it: the record, or why it is unreadable.
type Listed struct {
	ID  int64
	Job *Job  // nil when Err is set
	Err error // an unreadable record
}

// Jobs lists a repository's jobs, newest first; limit > 0 keeps the newest
// limit. It walks IDs down from the next one, so its cost does not grow with
// the repository's history.
func (s *Store) Jobs(repo string, limit int) ([]Listed, error) {
	if err := ValidName(repo); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.repoDir(repo)); err != nil {
		return nil, fmt.Errorf("jobs of %s: %w", repo, ErrNotFound)
	}
	ids, err := s.ids(repo, limit)
	if err != nil {
		return nil, fmt.Errorf("jobs of %s: %w", repo, err)
	}
	out := make([]Listed, 0, len(ids))
	for _, id := range ids {
		j, err := s.Job(repo, id)
		if errors.Is(err, ErrNotFound) {
			continue // removed since
		}
		out = append(out, Listed{ID: id, Job: j, Err: err})
	}
	return out, nil
}

// ids returns up to limit (all if limit <= 0) job IDs of repo, newest first.
func (s *Store) ids(repo string, limit int) ([]int64, error) {
	if limit > 0 {
		// Fast path: IDs are dense near the top; walk down from next.
		next, err := s.nextID(repo)
		if err != nil {
			return nil, err
		}
		var ids []int64
		misses := 0
		for id := next - 1; id >= 0 && len(ids) < limit && misses < 64; id-- {
			if _, err := os.Lstat(s.jobDir(repo, id)); err == nil {
				ids, misses = append(ids, id), 0
			} else {
				misses++
			}
		}
		if misses < 64 {
			return ids, nil // found limit jobs, or reached ID 0
		}
		// A long gap (pruned history): read the directory instead.
	}
	ents, err := os.ReadDir(s.repoDir(repo))
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, e := range ents {
		if id, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && e.IsDir() && id >= 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	return ids, nil
}

// Cancel cancels a queued job at once, or asks the worker of a running job to
// stop it. It returns the job as it is after the request.
func (s *Store) Cancel(repo string, id int64) (*Job, error) {
	j, err := s.Update(repo, id, func(j *Job) error {
		switch j.State {
		case Queued:
			j.State, j.FinishedAt = Cancelled, time.Now().UTC()
			j.Error = "cancelled before it started"
			return nil
		case Running:
			f, err := os.OpenFile(filepath.Join(s.jobDir(repo, id), "cancel"), os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			f.Close()
			return errUnchanged
		default:
			return errUnchanged
		}
	})
	if errors.Is(err, errUnchanged) {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("cancel %s %d: %w", repo, id, err)
	}
	return j, nil
}

var errUnchanged = errors.New("unchanged")

// CancelRequested reports whether Cancel asked for the running job to stop.
func (s *Store) CancelRequested(repo string, id int64) bool {
	_, err := os.Stat(filepath.Join(s.jobDir(repo, id), "cancel"))
	return err == nil
}

// RefKeep is the per-ref minimum of Prune: each ref's newest jobs it keeps
// beyond a repository's newest keep (fewer where keep is smaller).
const RefKeep = 5

// Prune applies JOBQ_KEEP = keep to repo, and removes what enqueues that
// crashed before their commit point left. It keeps:
//
//   - the repository's newest keep jobs;
//   - besides them, each ref's newest min(RefKeep, keep) jobs, at most keep
//     of them in all, shared out among the pushers whose jobs they are:
//     each pusher's newest first, a job of each pusher in turn;
//   - every job not ended yet, and every job whose runner records remain
//     (its clean-up is retried by jobq gc).
//
// So a repository holds at most 2 × keep ended jobs, and no writer of one
// ref can push another's recent jobs out: the repository's newest keep
// are a writer's to fill, but a ref's newest jobs stay while their pusher's
// share lasts, and one pusher's share is at least keep divided by the
// number of pushers with such jobs, whatever the others push.
//
// Prune reads every job's record once: its time and memory grow with the
// jobs the repository holds, and the rule bounds those.
func (s *Store) Prune(repo string, keep int) error {
	lock, err := s.lockRepo(repo)
	if err != nil {
		return fmt.Errorf("prune %s: %w", repo, err)
	}
	defer lock.Unlock()
	ents, err := os.ReadDir(s.repoDir(repo))
	if err != nil {
		return fmt.Errorf("prune %s: %w", repo, err)
	}
	var ids []int64
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".new-") {
			os.RemoveAll(filepath.Join(s.repoDir(repo), e.Name()))
		} else if id, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && id >= 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	slices.Reverse(ids) // newest first
	live, err := s.storedIncarnation(repo)
	if err != nil {
		live.token = ""
	}
	keep = max(keep, 1)
	refKeep := min(RefKeep, keep)
	// intern keeps one copy of each ref and user name: a long history
	// names the same few thousands of times.
	names := map[string]string{}
	intern := func(s string) string {
		if v, ok := names[s]; ok {
			return v
		}
		names[s] = s
		return s
	}
	type record struct {
		id        int64
		ref, user string
		readable  bool
		final     bool
		protected bool // among its ref's newest refKeep
	}
	recs := make([]record, 0, len(ids))
	perRef := map[string]int{}
	for _, id := range ids {
		r := record{id: id}
		j, err := s.pruneRecord(repo, id)
		switch {
		case errors.Is(err, ErrNotFound):
			continue // removed meanwhile
		case err == nil:
			// Jobs of a deleted incarnation that were still running when it
			// was retired go after it, once they have ended.
			if live.token != "" && j.State.Final() && j.Incarnation != "" && j.Incarnation != live.token && !s.runnerState(repo, id) {
				if err := s.moveRetired(repo, j.Incarnation, id); err != nil {
					return fmt.Errorf("prune %s: %w", repo, err)
				}
				continue
			}
			r.ref, r.user, r.readable, r.final = intern(j.Ref), intern(j.User), true, j.State.Final()
			perRef[r.ref]++
			r.protected = perRef[r.ref] <= refKeep
		}
		// An unreadable record (err != nil) has no ref: only the newest
		// keep protect it.
		recs = append(recs, r)
	}
	// Beyond the newest keep, the jobs the per-ref minimum protects, by
	// pusher, each pusher's newest first.
	var older []record
	if len(recs) > keep {
		older = recs[keep:]
	}
	byUser := map[string][]int{}
	var users []string
	for i, r := range older {
		if r.final && r.protected {
			if _, ok := byUser[r.user]; !ok {
				users = append(users, r.user)
			}
			byUser[r.user] = append(byUser[r.user], i)
		}
	}
	kept := make([]bool, len(older))
	for round, share := 0, keep; share > 0; round++ {
		more := false
		// users is in the order of each pusher's newest such job.
		for _, u := range users {
			if round < len(byUser[u]) && share > 0 {
				kept[byUser[u][round]], more = true, true
				share--
			}
		}
		if !more {
			break
		}
	}
	for i, r := range older {
		switch {
		case kept[i]:
			continue
		case r.readable && !r.final:
			continue // still queued or running: it goes when it ends
		case s.runnerState(repo, r.id):
			continue // its records point at what is not removed yet: jobq gc retries
		case s.notifyPending(repo, r.id):
			continue // its notifications are still to deliver
		}
		if err := os.RemoveAll(s.jobDir(repo, r.id)); err != nil {
			return fmt.Errorf("prune %s: %w", repo, err)
		}
	}
	return nil
}

// pruneRecord reads what Prune needs of a job's record.
func (s *Store) pruneRecord(repo string, id int64) (*Job, error) {
	data, err := os.ReadFile(filepath.Join(s.jobDir(repo, id), "job.json"))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Lstat(s.jobDir(repo, id)); errors.Is(serr, fs.ErrNotExist) {
			return nil, ErrNotFound
		}
	}
	if err != nil {
		return nil, err
	}
	var j struct {
		Ref         string `json:"ref"`
		User        string `json:"user"`
		State       State  `json:"state"`
		Incarnation string `json:"incarnation"`
	}
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, err
	}
	switch j.State {
	case Queued, Running, Succeeded, Failed, TimedOut, Cancelled, Lost:
	default:
		return nil, fmt.Errorf("unknown state %q", j.State)
	}
	return &Job{Ref: j.Ref, User: j.User, State: j.State, Incarnation: j.Incarnation}, nil
}

// RunDir is the job's run directory (run/ in the job directory), which it
// makes: a runner's own, where it records what the job uses (a checkout,
// a container). A runner removes such a record only once what it names
// is gone: Prune keeps a job whose run/ is not empty.
func (s *Store) RunDir(j *Job) string {
	dir := filepath.Join(s.jobDir(j.Repo, j.ID), "run")
	os.Mkdir(dir, 0o700) // an error shows when a record is written
	return dir
}

// runnerState reports whether a runner's record remains in the job's run/.
func (s *Store) runnerState(repo string, id int64) bool {
	ents, err := os.ReadDir(filepath.Join(s.jobDir(repo, id), "run"))
	return err == nil && len(ents) > 0 || err != nil && !errors.Is(err, fs.ErrNotExist)
}

// Unclean lists the finished jobs of repo whose runner records remain:
// their clean-up failed, and Prune keeps them until it succeeds.
func (s *Store) Unclean(repo string) ([]*Job, error) {
	if err := ValidName(repo); err != nil {
		return nil, err
	}
	ids, err := s.ids(repo, 0)
	if err != nil {
		return nil, fmt.Errorf("jobs of %s: %w", repo, err)
	}
	var js []*Job
	for _, id := range ids {
		if !s.runnerState(repo, id) {
			continue
		}
		if j, err := s.Job(repo, id); err == nil && j.State.Final() {
			js = append(js, j)
		}
	}
	return js, nil
}

// Home is the data directory: $JOBQ_HOME, else $XDG_DATA_HOME/jobq, else
// ~/.local/share/jobq.
func Home(getenv func(string) string) (string, error) {
	if d := getenv("JOBQ_HOME"); d != "" {
		return filepath.Abs(d)
	}
	if d := getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "jobq"), nil
	}
	home := getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("data directory: %w", err)
		}
	}
	return filepath.Join(home, ".local", "share", "jobq"), nil
}
