package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jobq/jobq/queue"
)

// states in the order the summary shows them.
var states = []queue.State{queue.Queued, queue.Running, queue.Succeeded, queue.Failed, queue.TimedOut, queue.Cancelled, queue.Lost}

func (a *app) summary(jsonOut bool) error {
	if err := a.open(); err != nil {
		return err
	}
	repos, err := a.store.Repos()
	if err != nil {
		return err
	}
	if repos, err = a.readable(repos); err != nil {
		return err
	}
	type row struct {
		Repo   string              `json:"repo"`
		Counts map[queue.State]int `json:"counts"`
	}
	rows := []row{}
	for _, r := range repos {
		jobs, err := a.store.Jobs(r, 0)
		if err != nil {
			continue // removed meanwhile
		}
		c := map[queue.State]int{}
		for _, l := range jobs {
			if l.Job != nil {
				c[l.Job.State]++
			}
		}
		rows = append(rows, row{r, c})
	}
	if jsonOut {
		return writeJSON(a.e.stdout, rows)
	}
	tw := tabwriter.NewWriter(a.e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "REPO")
	for _, s := range states {
		fmt.Fprint(tw, "\t"+strings.ToUpper(string(s)))
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		fmt.Fprint(tw, r.Repo)
		for _, s := range states {
			fmt.Fprintf(tw, "\t%d", r.Counts[s])
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// listed is one job of a listing as --json prints it.
type listed struct {
	*queue.Job
	Ahead      *int   `json:"ahead,omitempty"`   // jobs ahead of a queued job in its queue
	Waiting    string `json:"waiting,omitempty"` // why a queued job has not started
	Unreadable string `json:"unreadable,omitempty"`
	ID         int64  `json:"id"`
}

func (a *app) list(repo string, limit int, jsonOut bool) error {
	if err := a.authorize(repo, read); err != nil {
		return err
	}
	if err := a.open(); err != nil {
		return err
	}
	// One more than shown, to know whether older jobs were left out.
	fetch := limit
	if limit > 0 {
		fetch = limit + 1
	}
	jobs, err := a.store.Jobs(repo, fetch)
	if notFound(err) {
		return errNoRepo(repo)
	}
	more := limit > 0 && len(jobs) > limit
	if more {
		jobs = jobs[:limit]
	}
	if err != nil {
		return err
	}
	aheads := map[string]map[string]int{} // queue → "REPO ID" → ahead
	rows := make([]listed, 0, len(jobs))
	for _, l := range jobs {
		r := listed{Job: l.Job, ID: l.ID}
		if l.Err != nil {
			r.Unreadable = l.Err.Error()
		} else if l.Job.State == queue.Queued {
			m, ok := aheads[l.Job.Queue]
			if !ok {
				m, _ = a.store.Ahead(l.Job.Queue)
				aheads[l.Job.Queue] = m
			}
			if n, ok := m[repo+" "+strconv.FormatInt(l.ID, 10)]; ok {
				r.Ahead = &n
			}
			r.Waiting = a.store.Waiting(repo, l.ID)
		}
		rows = append(rows, r)
	}
	if jsonOut {
		return writeJSON(a.e.stdout, rows)
	}
	now := time.Now()
	tw := tabwriter.NewWriter(a.e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tREF\tREV\tQUEUED\tDURATION\tEXIT")
	for _, r := range rows {
		if r.Job == nil {
			fmt.Fprintf(tw, "%d\tunreadable\t-\t-\t-\t-\t-\n", r.ID)
			continue
		}
		state := string(r.State)
		switch {
		case r.Ahead != nil && r.Waiting != "":
			state += fmt.Sprintf(" (%d ahead; waiting: %s)", *r.Ahead, r.Waiting)
		case r.Ahead != nil:
			state += fmt.Sprintf(" (%d ahead)", *r.Ahead)
		}
		dur, exit := "-", "-"
		if d := r.Job.Duration(now); d > 0 {
			dur = fmtDuration(d)
		}
		if r.ExitCode != nil {
			exit = strconv.Itoa(*r.ExitCode)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, state, r.Ref, short(r.NewRev),
			r.QueuedAt.Local().Format(queue.TimeFormat), dur, exit)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if more {
		fmt.Fprintf(a.e.stdout, "(the newest %d; all: jobq ls -n 0 %s)\n", limit, repo)
	}
	return nil
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

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// log prints a job's log; with follow, until the job ends. The exit status
// is the job's: 0 only if it succeeded.
func (a *app) log(repo, idArg string, follow bool) error {
	if err := a.authorize(repo, read); err != nil {
		return err
	}
	id, err := parseID(idArg)
	if err != nil {
		return err
	}
	if err := a.open(); err != nil {
		return err
	}
	j, err := a.store.Job(repo, id)
	if notFound(err) {
		if _, err := a.store.Jobs(repo, 1); notFound(err) {
			return errNoRepo(repo)
		}
		return errNoJob(repo, id)
	}
	if err != nil {
		return err
	}
	if follow {
		j, err = a.store.Follow(a.ctx, repo, id, a.e.stdout, 200*time.Millisecond)
		if err != nil {
			return err
		}
	} else if err := copyLog(a.e.stdout, a.store.LogPath(repo, id)); err != nil {
		return err
	}
	if j.State == queue.Cancelled && j.StartedAt.IsZero() {
		fmt.Fprintf(a.e.stdout, "jobq: cancelled before it started\n")
	}
	if j.State.Final() && j.State != queue.Succeeded {
		return &exitError{code: exitFailed}
	}
	return nil
}

func copyLog(w io.Writer, path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // not started yet
	}
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

func (a *app) cancel(repo, idArg string) error {
	if err := a.authorize(repo, write); err != nil {
		return err
	}
	id, err := parseID(idArg)
	if err != nil {
		return err
	}
	if err := a.open(); err != nil {
		return err
	}
	j, err := a.store.Cancel(repo, id)
	if notFound(err) {
		return errNoJob(repo, id)
	}
	if err != nil {
		return err
	}
	// A running job stops within the grace period; wait to report the end.
	deadline := time.Now().Add(30 * time.Second)
	for j.State == queue.Running && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if j, err = a.store.Job(repo, id); err != nil {
			return err
		}
	}
	switch j.State {
	case queue.Cancelled:
		fmt.Fprintf(a.e.stdout, "jobq: %s job %d cancelled\n", repo, id)
		return nil
	case queue.Running:
		return &exitError{code: exitFailed, msg: fmt.Sprintf("%s job %d: cancel requested, still running", repo, id)}
	default:
		return &exitError{code: exitFailed, msg: fmt.Sprintf("%s job %d already ended: %s", repo, id, j.State)}
	}
}

func (a *app) retry(repo, idArg string) error {
	if err := a.authorize(repo, write); err != nil {
		return err
	}
	id, err := parseID(idArg)
	if err != nil {
		return err
	}
	if err := a.open(); err != nil {
		return err
	}
	old, err := a.store.Job(repo, id)
	if notFound(err) {
		return errNoJob(repo, id)
	}
	if err != nil {
		return err
	}
	j := &queue.Job{
		Repo: old.Repo, Queue: old.Queue, Ref: old.Ref, OldRev: old.OldRev, NewRev: old.NewRev,
		User: old.User, GitDir: old.GitDir, Env: old.Env, Options: old.Options, RetryOf: &old.ID,
	}
	if a.user != "" {
		j.User = a.user
	}
	ahead, err := a.store.Enqueue(j)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.e.stdout, "jobq: queued %s job %d in queue %s (%d ahead), a retry of job %d\n", repo, j.ID, j.Queue, ahead, id)
	if err := a.ensureWorker(j.Queue); err != nil {
		fmt.Fprintf(a.e.stderr, "jobq: %v\n", err)
	}
	return nil
}
