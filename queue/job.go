package queue

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// State is where a job is in its life.
type State string

// The states of a job; every job ends in one of the last five.
const (
	Queued    State = "queued"
	Running   State = "running"
	Succeeded State = "succeeded"
	Failed    State = "failed"
	TimedOut  State = "timed-out"
	Cancelled State = "cancelled"
	Lost      State = "lost"
)

// Final reports whether s is an end state.
func (s State) Final() bool { return s != Queued && s != Running }

// Job is one run of a repository's command for one pushed ref.
type Job struct {
	Repo       string            `json:"repo"`
	ID         int64             `json:"id"`
	Queue      string            `json:"queue"`
	Seq        int64             `json:"seq"` // its place in the queue's order
	Ref        string            `json:"ref"`
	OldRev     string            `json:"old_rev"`
	NewRev     string            `json:"new_rev"`
	User       string            `json:"user"`
	GitDir     string            `json:"git_dir"`       // the bare repository, absolute
	Env        map[string]string `json:"env,omitempty"` // JOBQ_PASS_ENV values at push time
	Options    Options           `json:"options"`
	RetryOf    *int64            `json:"retry_of,omitempty"`
	State      State             `json:"state"`
	QueuedAt   time.Time         `json:"queued_at"`
	StartedAt  time.Time         `json:"started_at,omitzero"`
	FinishedAt time.Time         `json:"finished_at,omitzero"`
	ExitCode   *int              `json:"exit_code,omitempty"`
	Error      string            `json:"error,omitempty"`  // jobq's own reason, one line
	Worker     int               `json:"worker,omitempty"` // pid of the worker that ran it

	// Incarnation is the repository's incarnation the job was queued in
	// (see Store.Incarnation); "" for jobs from before they were recorded.
	Incarnation string `json:"incarnation,omitempty"`
}

// Duration is how long the job ran, or has been running by now.
func (j *Job) Duration(now time.Time) time.Duration {
	switch {
	case j.StartedAt.IsZero():
		return 0
	case j.FinishedAt.IsZero():
		return now.Sub(j.StartedAt)
	default:
		return j.FinishedAt.Sub(j.StartedAt)
	}
}

func decodeJob(data []byte) (*Job, error) {
	var j Job
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, err
	}
	switch j.State {
	case Queued, Running, Succeeded, Failed, TimedOut, Cancelled, Lost:
	default:
		return nil, fmt.Errorf("unknown state %q", j.State)
	}
	if ValidName(j.Repo) != nil || ValidName(j.Queue) != nil || j.ID < 0 {
		return nil, fmt.Errorf("bad repository, queue or ID")
	}
	return &j, nil
}

// Update is one line of a post-receive hook's input: OLD NEW REF.
type Update struct {
	Old, New, Ref string
}

// Deletion reports whether the push deleted the ref.
func (u Update) Deletion() bool { return strings.Trim(u.New, "0") == "" }

// ParseUpdates reads a post-receive hook's input. A malformed line is an
// error naming it; nothing is queued for any line then.
func ParseUpdates(r io.Reader) ([]Update, error) {
	var us []Update
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<16)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || !isRev(f[0]) || !isRev(f[1]) || !strings.HasPrefix(f[2], "refs/") {
			return nil, fmt.Errorf("hook input line %d is not OLD NEW REF: %.80q", n, sc.Text())
		}
		us = append(us, Update{Old: f[0], New: f[1], Ref: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read hook input: %w", err)
	}
	return us, nil
}

func isRev(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
