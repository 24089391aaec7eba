package notify

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"

	"github.com/jobq/jobq/internal/atomicfile"
	"github.com/jobq/jobq/internal/jobview"
	"github.com/jobq/jobq/push"
	"github.com/jobq/jobq/queue"
)

// MaxAge is how long a notification is tried: a destination that has not
// taken it a day after the result is given up.
const MaxAge = 24 * time.Hour

// A delivery's states.
const (
	Waiting   = "pending"
	Delivered = "delivered"
	Failed    = "failed" // given up
)

// Events a notification tells besides the job's state: the ref's result
// changed (JOBQ_NOTIFY_ON=change).
const (
	Broken = "broken" // it fails where the ref's previous job did not
	Fixed  = "fixed"  // it succeeds where the ref's previous job did not
)

// Record is a job's notifications, in its directory.
type Record struct {
	Repo    string      `json:"repo"`
	ID      int64       `json:"id"`
	State   queue.State `json:"state"` // the result they tell
	Event   string      `json:"event"` // State, Broken or Fixed
	Created time.Time   `json:"created"`
	// Key is the idempotency key: the same for every try and every
	// destination of this job's notification.
	Key        string     `json:"key"`
	Deliveries []Delivery `json:"deliveries"`
}

// Delivery is one destination's state.
type Delivery struct {
	Dest      string    `json:"dest"` // the administrator's: never shown to readers
	Status    string    `json:"status"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"` // one line
	Next      time.Time `json:"next,omitzero"`        // the next try's time
	Done      time.Time `json:"done,omitzero"`        // when it was delivered or given up
}

// Kind is what a destination is: mail, webhook or exec.
func Kind(dest string) string {
	scheme, _, _ := strings.Cut(dest, ":")
	switch strings.ToLower(scheme) {
	case "mailto":
		return "mail"
	case "http", "https":
		return "webhook"
	case "exec":
		return "exec"
	}
	return "unknown"
}

// Key is the idempotency key of job j's notification: its repository's
// incarnation and its ID, so that a repository deleted and made again
// under its name, whose IDs go on counting, never repeats one.
func Key(j *queue.Job) string {
	inc := j.Incarnation
	if inc == "" {
		inc = "repo-" + j.Repo
	}
	return fmt.Sprintf("%s/%d", inc, j.ID)
}

// failure reports whether a result is a failure as a ref's health goes:
// cancelled says nothing of it.
func failure(s queue.State) bool {
	return s == queue.Failed || s == queue.TimedOut || s == queue.Lost
}

// prevLook bounds how far back Decide looks for a ref's previous result:
// it runs on the job's path, and a ref not pushed for that many of the
// repository's jobs counts as having none.
const prevLook = 100

// Decide is what job j's result (j.State, final) tells, by its options'
// JOBQ_NOTIFY_ON: "" for nothing. With change it compares j with the
// previous job of its ref that succeeded or failed (cancelled ones say
// nothing): Broken where that one succeeded (or there is none), Fixed
// where it failed.
func Decide(s *queue.Store, j *queue.Job) string {
	if len(j.Options.Notify) == 0 || !j.State.Final() {
		return ""
	}
	changed := func() string {
		if j.State != queue.Succeeded && !failure(j.State) {
			return ""
		}
		prev := queue.Succeeded
		for id, n := j.ID-1, 0; id >= 0 && n < prevLook; id, n = id-1, n+1 {
			p, err := s.Job(j.Repo, id)
			if err != nil || p.Ref != j.Ref || (p.Incarnation != j.Incarnation) {
				continue
			}
			if p.State == queue.Succeeded || failure(p.State) {
				prev = p.State
				break
			}
		}
		switch {
		case failure(j.State) && prev == queue.Succeeded:
			return Broken
		case j.State == queue.Succeeded && failure(prev):
			return Fixed
		}
		return ""
	}
	switch j.Options.NotifyOn {
	case push.NotifyAlways:
		return cmp.Or(changed(), string(j.State))
	case push.NotifyChange:
		return changed()
	default:
		if failure(j.State) {
			return string(j.State)
		}
		return ""
	}
}

// Path is the record's file in job id's directory.
func Path(s *queue.Store, repo string, id int64) string {
	return filepath.Join(s.JobDir(repo, id), "notify.json")
}

func entryPath(s *queue.Store, repo string, id int64) string {
	return filepath.Join(s.NotifyIndex(), queue.NotifyEntry(repo, id))
}

// Prepare records the notifications of job j's result (j carries its
// final state, not yet recorded), durably, before the result is: the
// record, then the index's entry. A result that tells nothing removes
// any record an earlier try left. It reports whether there is anything
// to send.
func Prepare(s *queue.Store, j *queue.Job) (bool, error) {
	event := Decide(s, j)
	if event == "" {
		if err := os.Remove(Path(s, j.Repo, j.ID)); err == nil {
			os.Remove(entryPath(s, j.Repo, j.ID))
		}
		return false, nil
	}
	now := time.Now().UTC()
	r := &Record{Repo: j.Repo, ID: j.ID, State: j.State, Event: event, Created: now, Key: Key(j)}
	for _, d := range j.Options.Notify {
		r.Deliveries = append(r.Deliveries, Delivery{Dest: d, Status: Waiting, Next: now})
	}
	// The record's bytes are synced; its name, in the job's directory,
	// is made durable by the sync of that directory that records the
	// result right after (queue.Store.Update): one directory sync for
	// both, on the job's path. The index's entry is not synced: a crash
	// of the process keeps it (the kernel has it), and on ext4 the
	// result's sync commits it with the rest of the journal.
	if err := write(s, r, false); err != nil {
		return false, err
	}
	if err := os.MkdirAll(s.NotifyIndex(), 0o700); err != nil {
		return false, fmt.Errorf("notify %s %d: %w", j.Repo, j.ID, err)
	}
	f, err := os.OpenFile(entryPath(s, j.Repo, j.ID), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return false, fmt.Errorf("notify %s %d: %w", j.Repo, j.ID, err)
	}
	f.Close()
	return true, nil
}

// Write replaces job r.ID's record, durably.
func Write(s *queue.Store, r *Record) error { return write(s, r, true) }

// write replaces job r.ID's record: its bytes synced before the rename
// always, the rename itself with syncDir.
func write(s *queue.Store, r *Record, syncDir bool) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	path := Path(s, r.Repo, r.ID)
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-notify.json-")
	if err == nil {
		_, err = f.Write(data)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), path)
		}
		if err != nil {
			os.Remove(f.Name())
		}
	}
	if err == nil && syncDir {
		err = atomicfile.SyncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("notify %s %d: %w", r.Repo, r.ID, err)
	}
	return nil
}

// Read reads job id's record; an error wrapping fs.ErrNotExist when the
// job has none.
func Read(s *queue.Store, repo string, id int64) (*Record, error) {
	if err := queue.ValidName(repo); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(Path(s, repo, id))
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("notify %s %d: %w", repo, id, err)
	}
	if r.Repo != repo || r.ID != id {
		return nil, fmt.Errorf("notify %s %d: the record names %s %d", repo, id, r.Repo, r.ID)
	}
	return &r, nil
}

// Settled removes job id's entry from the index: every destination is
// delivered or given up (or the record is gone).
func Settled(s *queue.Store, repo string, id int64) error {
	err := os.Remove(entryPath(s, repo, id))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Lock takes job id's delivery lock without waiting; nil, nil when
// another process holds it (it delivers them).
func Lock(s *queue.Store, repo string, id int64) (*flock.Flock, error) {
	l := flock.New(filepath.Join(s.JobDir(repo, id), "notify.lock"), flock.SetPermissions(0o600))
	ok, err := l.TryLock()
	if err != nil || !ok {
		return nil, err
	}
	return l, nil
}

// Job names a job whose notifications are pending.
type Job struct {
	Repo string
	ID   int64
}

// Entries lists the jobs in the index: those whose notifications are not
// all delivered or given up.
func Entries(s *queue.Store) ([]Job, error) {
	ents, err := os.ReadDir(s.NotifyIndex())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	var js []Job
	for _, e := range ents {
		if repo, id, ok := queue.ParseNotifyEntry(e.Name()); ok {
			js = append(js, Job{repo, id})
		}
	}
	return js, nil
}

// Pending counts the jobs whose notifications are not all delivered or
// given up yet (one ReadDir of the index): the metrics' gauge.
func Pending(s *queue.Store) (int, error) {
	js, err := Entries(s)
	return len(js), err
}

// View is job id's notifications as readers see them (jobq REPO ID
// --json): kinds and states, never destinations. nil when it has none.
func View(s *queue.Store, repo string, id int64) []jobview.Notification {
	r, err := Read(s, repo, id)
	if err != nil {
		return nil
	}
	v := make([]jobview.Notification, 0, len(r.Deliveries))
	for _, d := range r.Deliveries {
		v = append(v, jobview.Notification{Kind: Kind(d.Dest), Event: r.Event, State: d.Status, Attempts: d.Attempts, LastError: d.LastError})
	}
	return v
}
