package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/internal/gitolite"
	"github.com/jobq/jobq/internal/jobview"
	"github.com/jobq/jobq/internal/termsafe"
	"github.com/jobq/jobq/queue"
	"github.com/spf13/cobra"
)

// runCommand is "jobq run REPO REF [-f]": a job for REF as it is now, as a
// push of it by the caller would queue one. Cron calls it, as the hosting
// account, for scheduled jobs.
func runCommand(a *app) *cobra.Command {
	var follow bool
	c := &cobra.Command{
		Use:   "run REPO REF",
		Short: "Queue a job for REF's current revision, as a push would (needs write access on REF)",
		Long: `jobq run queues a job for REF's current revision with the repository's
current options, as a push of REF by you would: it needs write access (W)
on REF, and the repository's filter must select REF. REF is a full ref
(refs/heads/NAME, refs/tags/NAME) or the short NAME of a branch or a tag;
a NAME that is both is refused: give the full ref. The job's GIT_REV_OLD
is its GIT_REV_NEW: the ref did not move.

With -f, follow the job's log until it ends; the exit status is then the
job's.` + "\n" + helpTail,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runRef(args[0], args[1], follow) },
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "follow the job's log until it ends")
	return c
}

// maxRefLen bounds a REF argument: longer names are not refs anyone
// pushes, and would only fill answers.
const maxRefLen = 1024

// checkRefArg refuses, as bad usage, a REF that no push could have made:
// git's rules for ref names (git check-ref-format) within gitolite's
// pattern for them, which is ASCII. It depends on the argument alone, so
// the answer tells nothing of any repository.
func checkRefArg(ref string) error {
	bad := func(why string) error {
		return cli.Usagef("REF %.100q is not a ref name: %s", ref, why)
	}
	switch {
	case ref == "":
		return bad("empty")
	case len(ref) > maxRefLen:
		return bad(fmt.Sprintf("longer than %d bytes", maxRefLen))
	case !gitoliteRef.MatchString(ref):
		return bad("it must start with a letter or digit, and hold only letters, digits and - . _ @ / +")
	case strings.ContainsAny(ref, " :"):
		return bad("git allows no space or colon in one")
	case strings.Contains(ref, ".."), strings.Contains(ref, "@{"):
		return bad(`git allows no ".." or "@{" in one`)
	case strings.HasSuffix(ref, ".") || strings.HasSuffix(ref, "/"):
		return bad(`git allows none that ends in "." or "/"`)
	case ref == "@":
		return bad(`"@" is git's name for HEAD`)
	}
	for _, part := range strings.Split(ref, "/") {
		if part == "" || strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".lock") {
			return bad(`git allows no empty part, and none that starts with "." or ends in ".lock"`)
		}
	}
	return nil
}

// runRef queues a job for ref of repo at its current revision. Over ssh
// it checks what a push of ref by GL_USER would need: a user who may not
// read repo gets a missing repository's answer; one who may read it, but
// not write ref, is told so. The hosting account (cron) may run any ref.
func (a *app) runRef(repo, refArg string, follow bool) error {
	if err := checkRefArg(refArg); err != nil {
		return err
	}
	if err := a.authorize(repo); err != nil {
		return err
	}
	if err := a.open(); err != nil {
		return err
	}
	gitDir, err := a.bareRepo(repo)
	if err != nil {
		return err
	}
	ref, rev, err := resolveRef(a.ctx, gitDir, refArg)
	if err != nil {
		var ee *cli.ExitError
		if !errors.As(err, &ee) {
			// git's words name the host's paths: not for ssh users.
			return &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("run %s %s: cannot read the repository's refs", repo, refArg)}
		}
		return &cli.ExitError{Code: ee.Code, Msg: repo + " " + ee.Msg + "; no job queued"}
	}
	if a.user != "" {
		ok, err := a.access(repo, write, ref)
		if err != nil {
			return err
		}
		if !ok {
			return &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("%s may not run %s %s: that needs write access (W) on it", a.user, repo, ref)}
		}
	}
	opts, env, err := a.optionsNow(repo, ref, false)
	if err != nil {
		return err
	}
	j := &queue.Job{
		Repo: repo, Queue: a.store.QueueFor(repo, opts.Queue), Ref: ref, OldRev: rev, NewRev: rev,
		User: a.user, GitDir: gitDir, Env: env, Options: opts, Origin: queue.OriginRun,
	}
	ahead, err := a.store.Enqueue(j)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.e.stdout, "jobq: queued %s job %d in queue %s (%d ahead): %s at %s\n", repo, j.ID, j.Queue, ahead, ref, jobview.Short(rev))
	if err := a.ensureWorker(j.Queue); err != nil {
		fmt.Fprintf(a.e.stderr, "jobq: %v\n", err)
	}
	if !follow {
		return nil
	}
	return a.log(repo, strconv.FormatInt(j.ID, 10), true, false)
}

// resolveRef finds refArg in the bare repository gitDir: a full ref
// (refs/...) as it is; a short name as refs/heads/NAME or refs/tags/NAME,
// whichever exists. Where both do, git would take the tag and warn; a job
// that deploys is not run on a guess, so that is refused. Answers for
// people are *cli.ExitError; other errors are git's.
func resolveRef(ctx context.Context, gitDir, refArg string) (ref, rev string, err error) {
	if strings.HasPrefix(refArg, "refs/") {
		rev, err := refValue(ctx, gitDir, refArg)
		if err != nil || rev != "" {
			return refArg, rev, err
		}
		return "", "", &cli.ExitError{Code: cli.Failed, Msg: "has no ref " + refArg}
	}
	branch, tag := "refs/heads/"+refArg, "refs/tags/"+refArg
	b, err := refValue(ctx, gitDir, branch)
	if err != nil {
		return "", "", err
	}
	t, err := refValue(ctx, gitDir, tag)
	if err != nil {
		return "", "", err
	}
	switch {
	case b != "" && t != "":
		return "", "", &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("has a branch and a tag %s: give %s or %s", refArg, branch, tag)}
	case b != "":
		return branch, b, nil
	case t != "":
		return tag, t, nil
	}
	return "", "", &cli.ExitError{Code: cli.Failed, Msg: "has no branch or tag " + refArg}
}

// bareRepo is where repo's bare repository is: under GL_REPO_BASE, which
// gitolite sets for its commands, or asks of gitolite where the hosting
// account runs one; on a plain git server, where its last job's push
// was. A repository that is not there answers as a missing one.
func (a *app) bareRepo(repo string) (string, error) {
	base := a.e.getenv("GL_REPO_BASE")
	if base == "" && a.hasGitolite() {
		var err error
		if base, err = a.queryRC("GL_REPO_BASE"); err != nil {
			return "", err
		}
	}
	var gitDir string
	switch {
	case base != "":
		if !filepath.IsAbs(base) {
			base = filepath.Join(a.e.getenv("HOME"), base) // gitolite's are relative to its home
		}
		gitDir = filepath.Join(base, repo+".git")
	default:
		jobs, err := a.store.Jobs(repo, 1)
		if err != nil || len(jobs) == 0 || jobs[0].Job == nil {
			return "", &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("%s: where its repository is is not known: no GL_REPO_BASE, no gitolite, and no job of it to tell", repo)}
		}
		gitDir = jobs[0].Job.GitDir
	}
	if fi, err := os.Stat(gitDir); err != nil || !fi.IsDir() {
		return "", errNoRepo(repo)
	}
	return gitDir, nil
}

// queryRC asks gitolite for one of its rc variables.
func (a *app) queryRC(name string) (string, error) {
	cmd := exec.CommandContext(a.ctx, gitolite.Program(a.e.getenv), "query-rc", name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("gitolite query-rc %s: %w %s", name, err, termsafe.Line(strings.TrimSpace(stderr.String())))
	}
	return strings.TrimSpace(string(out)), nil
}
