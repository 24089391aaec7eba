package queue

import (
	"encoding/json"
	"fmt"
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
	// Host is the build host the job was placed on, by its connection's
	// name (or URI): "" for the local service.
	Host string `json:"host,omitempty"`
	// Adopted counts the workers that took the running job over from one
	// that died or stopped (Hold.Recover).
	Adopted int `json:"adopted,omitempty"`

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
	if ValidName(j.Repo) != nil || ValidQueue(j.Queue) != nil || j.ID < 0 {
		return nil, fmt.Errorf("bad repository, queue or ID")
	}
	return &j, nil
}

// Options are a repository's JOBQ_* settings, read when a push queues a job
// and recorded in the job, so that later changes do not alter queued jobs.
type Options struct {
	Command string `json:"command"`
	// Argv is the podman runner's Command split into the image and its
	// arguments, once, at push time: the runner uses it as it is. Empty
	// for the exec runner, and in the records of jobs queued before jobq
	// kept it (the runner then splits Command itself).
	Argv       []string      `json:"argv,omitempty"`
	RefFilter  string        `json:"ref_filter"`
	Queue      string        `json:"queue"`
	Async      bool          `json:"async"`
	Timeout    time.Duration `json:"timeout"`
	Runner     string        `json:"runner"`           // "podman" or "exec"
	Pull       string        `json:"pull"`             // "missing", "always" or "never"
	Memory     int64         `json:"memory,omitempty"` // bytes; 0: unlimited
	CPUs       float64       `json:"cpus,omitempty"`   // 0: unlimited
	PIDs       int64         `json:"pids"`             // 0: unlimited
	Network    string        `json:"network,omitempty"`
	PassEnv    []string      `json:"pass_env,omitempty"`
	Connection string        `json:"connection,omitempty"`
	Keep       int           `json:"keep"`
	// Secrets is JOBQ_SECRETS as the push had it: grants (names and ref
	// patterns, never values). Under gitolite the worker reads the
	// repository's grants again when the job starts, and asks no one for
	// a job queued without; elsewhere the push's are all there are.
	Secrets string `json:"secrets,omitempty"`
}

// DefaultKeep is JOBQ_KEEP's default: a repository keeps its newest 200
// jobs, and up to 200 more as each ref's newest (Store.Prune).
const DefaultKeep = 200

// TimeFormat is how jobq shows times to people.
const TimeFormat = "2006-01-02 15:04:05"
