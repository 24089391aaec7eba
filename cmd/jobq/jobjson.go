package main

import (
	"strconv"
	"time"

	"github.com/jobq/jobq/notify"
	"github.com/jobq/jobq/queue"
)

// showJob prints one job as JSON (jobq REPO ID --json): the listing's
// fields, and the delivery of its notifications (their kinds and states,
// never their destinations).
func (a *app) showJob(repo, idArg string) error {
	if err := a.authorize(repo); err != nil {
		return err
	}
	id, err := parseID(idArg)
	if err != nil {
		return err
	}
	if err := a.open(); err != nil {
		return err
	}
	j, err := a.job(repo, id)
	if err != nil {
		return err
	}
	r := listed{Job: j, ID: id}
	if j.State == queue.Queued {
		if m, err := a.store.Ahead(j.Queue); err == nil {
			if n, ok := m[repo+" "+strconv.FormatInt(id, 10)]; ok {
				r.Ahead = &n
			}
		}
		r.Waiting = a.store.Waiting(repo, id)
	}
	v := r.view(time.Now())
	v.Notifications = notify.View(a.store, repo, id)
	return writeJSON(a.e.stdout, v)
}
