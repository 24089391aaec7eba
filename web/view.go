package web

import (
	"strconv"
	"time"

	"github.com/jobq/jobq/internal/jobview"
	"github.com/jobq/jobq/queue"
)

// row is a job as the pages show it.
type row struct {
	Repo    string
	ID      int64
	Job     *queue.Job // nil: unreadable record
	Ahead   *int
	Waiting string
	Subject string // the commit's subject line, where the page reads it
}

func (r row) view(now time.Time) jobview.Job {
	return jobview.Of(r.ID, r.Job, r.Ahead, r.Waiting, now)
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
	return jobview.Short(r.Job.NewRev)
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
		return jobview.Duration(d)
	}
	return "-"
}

func (r row) Exit() string {
	if r.Job == nil || r.Job.ExitCode == nil {
		return "-"
	}
	return strconv.Itoa(*r.Job.ExitCode)
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
	jobview.Job
}

type repoView struct {
	Repo string `json:"repo"`
	// Public: the visitor reads it as anyone does (gitweb), not as
	// themselves.
	Public bool         `json:"public,omitempty"`
	Latest *jobview.Job `json:"latest,omitempty"`
}
