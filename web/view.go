package web

import (
	"strconv"
	"time"

	"github.com/jobq/jobq/queue"
)

// jobView is a job as --json shows it, field for field the ssh listing's
// (cmd/jobq's jobView): what the listing shows, in machine form, and
// nothing of the host (no environment values, paths, options or pids).
type jobView struct {
	ID         int64       `json:"id"`
	State      queue.State `json:"state,omitempty"`
	Ahead      *int        `json:"ahead,omitempty"`   // jobs ahead of a queued job in its queue
	Waiting    string      `json:"waiting,omitempty"` // why a queued job has not started
	Queue      string      `json:"queue,omitempty"`
	Ref        string      `json:"ref,omitempty"`
	OldRev     string      `json:"old_rev,omitempty"`
	NewRev     string      `json:"new_rev,omitempty"`
	User       string      `json:"user,omitempty"` // who pushed it, or retried it
	RetryOf    *int64      `json:"retry_of,omitempty"`
	QueuedAt   time.Time   `json:"queued_at,omitzero"`
	StartedAt  time.Time   `json:"started_at,omitzero"`
	FinishedAt time.Time   `json:"finished_at,omitzero"`
	DurationMS *int64      `json:"duration_ms,omitempty"` // so far, while it runs
	ExitCode   *int        `json:"exit_code,omitempty"`
	Unreadable string      `json:"unreadable,omitempty"` // why the record cannot be shown
}

// row is a job as the pages show it.
type row struct {
	Repo    string
	ID      int64
	Job     *queue.Job // nil: unreadable record
	Ahead   *int
	Waiting string
}

func (r row) view(now time.Time) jobView {
	if r.Job == nil {
		return jobView{ID: r.ID, Unreadable: "unreadable record"}
	}
	j := r.Job
	v := jobView{
		ID: r.ID, State: j.State, Ahead: r.Ahead, Waiting: r.Waiting, Queue: j.Queue, Ref: j.Ref, OldRev: j.OldRev,
		NewRev: j.NewRev, User: j.User, RetryOf: j.RetryOf, QueuedAt: j.QueuedAt,
		StartedAt: j.StartedAt, FinishedAt: j.FinishedAt, ExitCode: j.ExitCode,
	}
	if d := j.Duration(now); d > 0 {
		ms := d.Milliseconds()
		v.DurationMS = &ms
	}
	return v
}

// Helpers the templates use.

func (r row) State() string {
	if r.Job == nil {
		return "unreadable"
	}
	return string(r.Job.State)
}

func (r row) Short() string {
	if r.Job == nil {
		return "-"
	}
	return short(r.Job.NewRev)
}

func (r row) Queued() string {
	if r.Job == nil {
		return "-"
	}
	return r.Job.QueuedAt.Local().Format(queue.TimeFormat)
}

func (r row) Duration() string {
	if r.Job == nil {
		return "-"
	}
	if d := r.Job.Duration(time.Now()); d > 0 {
		return fmtDuration(d)
	}
	return "-"
}

func (r row) Exit() string {
	if r.Job == nil || r.Job.ExitCode == nil {
		return "-"
	}
	return strconv.Itoa(*r.Job.ExitCode)
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

func short(rev string) string {
	if len(rev) > 8 {
		return rev[:8]
	}
	return rev
}

// Overview JSON: what the overview page shows.
type overviewJSON struct {
	Running []placedView `json:"running"`
	Waiting []placedView `json:"waiting"`
	Repos   []repoView   `json:"repos"`
}

// placedView is a running or waiting job with the repository it is of.
type placedView struct {
	Repo string `json:"repo"`
	Host string `json:"host,omitempty"`
	jobView
}

type repoView struct {
	Repo   string   `json:"repo"`
	Latest *jobView `json:"latest,omitempty"`
}
