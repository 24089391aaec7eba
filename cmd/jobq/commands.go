package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/internal/jobview"
	"github.com/jobq/jobq/internal/termsafe"
	"github.com/jobq/jobq/push"
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
		view, err := a.store.View(r)
		if err != nil {
			continue // deleted since, or its history is unreadable
		}
		jobs, err := a.store.Jobs(r, 0)
		if err != nil {
			continue // removed meanwhile
		}
		c := map[queue.State]int{}
		for _, l := range jobs {
			if l.Job != nil && view.Shows(l.Job) {
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

// maxWaiting bounds the waiting reason a listing's row shows (runes);
// the job's log and --json show it whole.
const maxWaiting = 80

// cut shortens s to at most n runes, the last one "…" if it cut.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// listed is one job of a listing: the record, and its place in its queue.
type listed struct {
	*queue.Job
	ID      int64
	Ahead   *int   // jobs ahead of a queued job in its queue
	Waiting string // why a queued job has not started
}

func (r listed) view(now time.Time) jobview.Job {
	return jobview.Of(r.ID, r.Job, r.Ahead, r.Waiting, now)
}

func (a *app) list(repo string, limit int, jsonOut bool) error {
	if err := a.authorize(repo); err != nil {
		return err
	}
	if err := a.open(); err != nil {
		return err
	}
	view, err := a.view(repo)
	if err != nil {
		return err
	}
	// One more than shown, to know whether older jobs were left out.
	fetch := limit
	if limit > 0 && limit < math.MaxInt {
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
		if l.Job != nil && !view.Shows(l.Job) {
			continue // an old incarnation's job, still running
		}
		r := listed{Job: l.Job, ID: l.ID}
		if l.Err != nil {
			r.Job = nil
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
	now := time.Now()
	if jsonOut {
		views := make([]jobview.Job, len(rows))
		for i, r := range rows {
			views[i] = r.view(now)
		}
		return writeJSON(a.e.stdout, views)
	}
	tw := tabwriter.NewWriter(a.e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tREF\tREV\tQUEUED\tDURATION\tEXIT\tHOST\tORIGIN")
	for _, r := range rows {
		if r.Job == nil {
			fmt.Fprintf(tw, "%d\tunreadable\t-\t-\t-\t-\t-\t-\t-\n", r.ID)
			continue
		}
		state := string(r.State)
		switch {
		case r.Ahead != nil:
			state += fmt.Sprintf(" (%d ahead)", *r.Ahead)
		case r.Adopted > 0:
			state += " (adopted)"
		}
		dur, exit := "-", "-"
		if d := r.Job.Duration(now); d > 0 {
			dur = jobview.Duration(d)
		}
		if r.ExitCode != nil {
			exit = strconv.Itoa(*r.ExitCode)
		}
		host := "-"
		if r.Host != "" {
			host = termsafe.Line(r.Host)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", r.ID, state, termsafe.Line(r.Ref), jobview.Short(r.NewRev),
			r.QueuedAt.Local().Format(queue.TimeFormat), dur, exit, host, termsafe.Line(string(r.StartedBy())))
		// Why a job waits, however long, follows the row, past the last
		// column: a cell of its own would widen its column for every row.
		if r.Ahead != nil && r.Waiting != "" {
			fmt.Fprintf(tw, "\twaiting: %s", cut(termsafe.Line(r.Waiting), maxWaiting))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if more {
		fmt.Fprintf(a.e.stdout, "(the newest %d; all: jobq ls -n 0 %s)\n", limit, repo)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// log prints a job's log; with follow, until the job ends. The exit status
// is the job's: 0 only if it succeeded. The output is the job's, so it is
// shown terminal-safe (see termsafe) unless raw asks for the stored bytes.
func (a *app) log(repo, idArg string, follow, raw bool) error {
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
	// With raw, stdout is the stored bytes and nothing else.
	out, note := a.e.stdout, func(line string) { fmt.Fprintln(a.e.stderr, line) }
	if !raw {
		// The record of jobq's own lines tells them from the job's.
		own := queue.OpenOwn(a.store.LogPath(repo, id))
		defer own.Close()
		safe := termsafe.NewLogWriter(a.e.stdout, own)
		defer safe.Close()
		out, note = safe, func(line string) { safe.Note(line) }
	}
	if follow {
		j, err = a.store.Follow(a.ctx, repo, id, out, 200*time.Millisecond, a.adoptOrphan)
		if err != nil {
			return err
		}
	} else if err := copyLog(out, a.store.LogPath(repo, id)); err != nil {
		return err
	}
	if j.State == queue.Cancelled && j.StartedAt.IsZero() {
		note("jobq: cancelled before it started")
	}
	if j.State.Final() && j.State != queue.Succeeded {
		return &cli.ExitError{Code: cli.Failed}
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

// changing reads the job a cancel or retry names and checks that GL_USER
// has W on the job's ref. Whether the job exists or not, a user who may not
// read the repository gets the answer a missing repository gets; a reader
// is told what is missing.
func (a *app) changing(verb, repo, idArg string) (*queue.Job, error) {
	if err := queue.ValidName(repo); err != nil {
		return nil, errNoRepo(repo)
	}
	if err := a.open(); err != nil {
		return nil, err
	}
	id, jobErr := parseID(idArg)
	var j *queue.Job
	if jobErr == nil {
		j, jobErr = a.job(repo, id)
	}
	ref := anyRef
	if jobErr == nil {
		ref = j.Ref
	}
	ok, err := a.may(repo, write, ref)
	if err != nil {
		return nil, err
	}
	if jobErr != nil {
		return nil, jobErr
	}
	if !ok {
		return nil, &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("%s may not %s %s job %d: that needs write access (W) on %s", a.user, verb, repo, id, termsafe.Line(ref))}
	}
	return j, nil
}

// cancelWait is how long cancel waits for a running job to stop: the
// runners' grace period between SIGTERM and SIGKILL, and some.
const cancelWait = 30 * time.Second

func (a *app) cancel(repo, idArg string) error {
	j, err := a.changing("cancel", repo, idArg)
	if err != nil {
		return err
	}
	id := j.ID
	if j, err = a.store.Cancel(repo, id); err != nil {
		if notFound(err) {
			return errNoJob(repo, id)
		}
		return err
	}
	// A running job stops within the grace period; wait to report the
	// end, as long as the caller waits.
	ctx, stop := context.WithTimeout(a.ctx, cancelWait)
	defer stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for j.State == queue.Running && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			if j, err = a.store.Job(repo, id); err != nil {
				return err
			}
		}
	}
	switch {
	case j.State == queue.Cancelled:
		fmt.Fprintf(a.e.stdout, "jobq: %s job %d cancelled\n", repo, id)
		return nil
	case j.State == queue.Running && a.ctx.Err() != nil:
		return &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("%s job %d: cancel requested; still running when jobq was interrupted", repo, id)}
	case j.State == queue.Running:
		return &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("%s job %d: cancel requested, still running after %s", repo, id, cancelWait)}
	default:
		return &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("%s job %d already ended: %s", repo, id, j.State)}
	}
}

// retry queues the job's ref and revision again, as a push of them now
// would: with the repository's current options, for a ref its filter still
// selects, and, where the ref has moved on, only for a user who could
// force-push it back (a rerun of an older revision is a rollback).
func (a *app) retry(repo, idArg string) error {
	old, err := a.changing("retry", repo, idArg)
	if err != nil {
		return err
	}
	gitDir := old.GitDir
	if base := a.e.getenv("GL_REPO_BASE"); base != "" {
		gitDir = filepath.Join(base, repo+".git") // where it is now
	}
	if a.user != "" {
		cur, err := refValue(a.ctx, gitDir, old.Ref)
		if err != nil {
			// git's words name the host's paths: not for ssh users.
			return &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("retry %s job %d: cannot read %s of the repository", repo, old.ID, termsafe.Line(old.Ref))}
		}
		if cur != old.NewRev {
			ok, err := a.access(repo, rewind, old.Ref)
			if err != nil {
				return err
			}
			if !ok {
				now := "no longer exists"
				if cur != "" {
					now = "points at " + jobview.Short(cur)
				}
				return &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("%s may not retry %s job %d: %s %s, so running %s again is a rollback; that needs force-push access (+) on it",
					a.user, repo, old.ID, termsafe.Line(old.Ref), now, jobview.Short(old.NewRev))}
			}
		}
	}
	opts, env, err := a.optionsNow(repo, old.Ref, true)
	if err != nil {
		return err
	}
	j := &queue.Job{
		Repo: repo, Queue: a.store.QueueFor(repo, opts.Queue), Ref: old.Ref, OldRev: old.OldRev, NewRev: old.NewRev,
		User: old.User, GitDir: gitDir, Env: env, Options: opts, RetryOf: &old.ID,
		Origin: queue.OriginRetry,
	}
	if a.user != "" {
		j.User = a.user
	}
	ahead, err := a.store.Enqueue(j)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.e.stdout, "jobq: queued %s job %d in queue %s (%d ahead), a retry of job %d\n", repo, j.ID, j.Queue, ahead, old.ID)
	if err := a.ensureWorker(j.Queue); err != nil {
		fmt.Fprintf(a.e.stderr, "jobq: %v\n", err)
	}
	return nil
}

// optionsNow are the options, and JOBQ_PASS_ENV variables, a push of ref
// to repo would queue a job with now; an error, one line, where it would
// queue none: the repository does not run jobq, an option is bad, or the
// filter does not select ref. again words it for a job run again.
func (a *app) optionsNow(repo, ref string, again bool) (queue.Options, map[string]string, error) {
	runs, selects := "does not run", "does not select"
	if again {
		runs, selects = "no longer runs", "no longer selects"
	}
	opts, env, hooked, err := a.repoOptions(repo)
	switch {
	case !hooked:
		return opts, nil, &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("%s %s jobq (no option hook.post-receive = jobq); no job queued", repo, runs)}
	case err != nil:
		return opts, nil, &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("%s: %v; no job queued", repo, err)}
	}
	// A push of the ref would queue nothing now; nor does this.
	if f, err := push.ParseRefFilter(opts.RefFilter); err != nil || !f.Match(ref) {
		return opts, nil, &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("%s: JOBQ_REF_FILTER=%q %s %s; no job queued", repo, opts.RefFilter, selects, termsafe.Line(ref))}
	}
	return opts, env, nil
}

// view is which of repo's jobs the caller may see (queue.Store.View): a
// repository deleted, or deleted and created again, shows none of its old
// jobs, and answers as a missing one does.
func (a *app) view(repo string) (queue.View, error) {
	v, err := a.store.View(repo)
	if notFound(err) {
		return v, errNoRepo(repo)
	}
	return v, err
}

// passEnv is the JOBQ_PASS_ENV variables of this process, as the hook
// takes them from its own.
func passEnv(lookup func(string) (string, bool), names []string) map[string]string {
	var env map[string]string
	for _, name := range names {
		if v, ok := lookup(name); ok {
			if env == nil {
				env = map[string]string{}
			}
			env[name] = v
		}
	}
	return env
}

// job reads a job the caller may see: one of the repository's live
// incarnation.
func (a *app) job(repo string, id int64) (*queue.Job, error) {
	view, err := a.view(repo)
	if err != nil {
		return nil, err
	}
	j, err := a.store.Job(repo, id)
	if notFound(err) || err == nil && !view.Shows(j) {
		if _, err := a.store.Jobs(repo, 1); notFound(err) {
			return nil, errNoRepo(repo)
		}
		return nil, errNoJob(repo, id)
	}
	return j, err
}
