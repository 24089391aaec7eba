// Package jobview is a job as jobq shows it to people's programs: the
// --json of the ssh listing and the JSON of the web view, the same fields
// for both. It holds what the listing shows and nothing of the host (no
// environment values, paths, options, connections or pids): a type of
// its own, so that a field added to queue.Job is not shown until it is
// added here.
package jobview

import (
	"time"

	"github.com/jobq/jobq/queue"
)

// Job is one job of a listing.
type Job struct {
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
	Host       string      `json:"host,omitempty"`       // the build host it was placed on; "": this machine
	Adopted    int         `json:"adopted,omitempty"`    // workers that took it over while it ran
	Unreadable string      `json:"unreadable,omitempty"` // why the record cannot be shown

	Origin queue.Origin `json:"origin,omitempty"` // how it was started: push, retry or run
	// Notifications is the delivery of the job's notifications (package
	// notify), shown for one job (jobq REPO ID --json), not in listings.
	Notifications []Notification `json:"notifications,omitempty"`
}

// Notification is one destination of a job's notification as readers see
// it: its kind, never the destination itself (a URL may hold a token).
type Notification struct {
	Kind      string `json:"kind"`  // mail, webhook or exec
	Event     string `json:"event"` // the result told: the state, "broken" or "fixed"
	State     string `json:"state"` // pending, delivered or failed (given up)
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"` // one line
}

// Of is job id as a listing shows it at now: its record j (nil when it
// cannot be read), the jobs ahead of it in its queue, and why it waits.
func Of(id int64, j *queue.Job, ahead *int, waiting string, now time.Time) Job {
	if j == nil {
		// Not the error: it may name paths of the host.
		return Job{ID: id, Unreadable: "unreadable record"}
	}
	v := Job{
		ID: id, State: j.State, Ahead: ahead, Waiting: waiting, Queue: j.Queue, Ref: j.Ref, OldRev: j.OldRev,
		NewRev: j.NewRev, User: j.User, RetryOf: j.RetryOf, QueuedAt: j.QueuedAt,
		StartedAt: j.StartedAt, FinishedAt: j.FinishedAt, ExitCode: j.ExitCode, Host: j.Host, Adopted: j.Adopted,
		Origin: j.StartedBy(),
	}
	if d := j.Duration(now); d > 0 {
		ms := d.Milliseconds()
		v.DurationMS = &ms
	}
	return v
}

// Duration shows how long a job ran, as the listing and the pages do:
// milliseconds under a second, tenths under a minute, then seconds.
func Duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// Short is a revision as people read it: its first 8 hex digits.
func Short(rev string) string {
	if len(rev) > 8 {
		return rev[:8]
	}
	return rev
}
