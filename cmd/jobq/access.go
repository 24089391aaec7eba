package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"

	"github.com/jobq/jobq/internal/gitolite"
	"github.com/jobq/jobq/push"
	"github.com/jobq/jobq/queue"
)

// Permissions a command needs: gitolite's own letters.
const (
	read   = "R"
	write  = "W"
	rewind = "+" // a force push: moving a ref to a revision that is not ahead
)

const anyRef = gitolite.AnyRef

// authorize is the gate of the commands that read a repository's jobs: an
// invalid name and a repository GL_USER may not read fail here, with the
// answer a missing repository gets. Without GL_USER the caller is the
// hosting account itself, which owns the data. It costs one gitolite call.
func (a *app) authorize(repo string) error {
	if err := queue.ValidName(repo); err != nil {
		return errNoRepo(repo)
	}
	if a.user == "" {
		return nil
	}
	ok, err := a.access(repo, read, anyRef)
	if err != nil {
		return err
	}
	if !ok {
		return errNoRepo(repo)
	}
	return nil
}

// may is the gate of the commands that change a job: whether GL_USER has
// perm on ref (anyRef when no job was found). A user who may not read repo
// gets errNoRepo, as for a missing repository; a reader gets false. An
// allowed change costs one gitolite call, any refusal two, whether the job
// exists or not: the count tells a non-reader nothing.
func (a *app) may(repo, perm, ref string) (bool, error) {
	if a.user == "" {
		return true, nil
	}
	// gitolite dies on a ref outside its pattern; gitolite never let
	// one be pushed, so no rule can allow it.
	ok := false
	if ref == anyRef || gitoliteRef.MatchString(ref) {
		var err error
		if ok, err = a.access(repo, perm, ref); err != nil || ok {
			return ok, err
		}
	}
	// Write access implies read in gitolite: read is asked only to choose
	// the answer.
	readable, err := a.access(repo, read, anyRef)
	if err != nil {
		return false, err
	}
	if !readable {
		return false, errNoRepo(repo)
	}
	return false, nil
}

// gitoliteRef is gitolite's $REF_OR_FILENAME_PATT (Gitolite/Rc.pm).
var gitoliteRef = regexp.MustCompile(`^[0-9a-zA-Z][-0-9a-zA-Z._@/+ :,]*$`)

// access asks gitolite whether GL_USER has perm on ref of repo.
func (a *app) access(repo, perm, ref string) (bool, error) {
	return gitolite.Access(a.ctx, gitolite.Program(a.e.getenv), nil, repo, a.user, perm, ref)
}

// readable filters repos to those GL_USER may read, with one gitolite call.
func (a *app) readable(repos []string) ([]string, error) {
	if a.user == "" || len(repos) == 0 {
		return repos, nil
	}
	allowed, err := gitolite.Readable(a.ctx, gitolite.Program(a.e.getenv), nil, a.user, repos)
	if err != nil {
		return nil, err
	}
	var ok []string
	for _, r := range repos {
		if allowed[r] {
			ok = append(ok, r)
		}
	}
	return ok, nil
}

// refValue reads ref of the bare repository gitDir: its revision, or ""
// if the ref does not exist. for-each-ref takes the name as it is, where
// rev-parse would try other refs ("refs/heads/refs/heads/x") too.
func refValue(ctx context.Context, gitDir, ref string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", "--git-dir="+gitDir, "for-each-ref", "--format=%(objectname) %(refname)", "--", ref)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("read %s: %w %s", ref, err, strings.TrimSpace(stderr.String()))
	}
	// The pattern also matches refs below ref (refs/heads/x/...).
	for _, line := range strings.Split(string(out), "\n") {
		if rev, name, ok := strings.Cut(line, " "); ok && name == ref {
			return rev, nil
		}
	}
	return "", nil
}

// repoOptions are a repository's options as a push now would read them:
// JOBQ_X from the environment, as the hook reads them, then gitolite's
// "option ENV.JOBQ_X" (one gitolite call). gitolite is asked through ssh,
// and without GL_USER where the account has a gitolite (~/.gitolite.rc);
// on a plain git server the environment is all there is. hooked reports
// whether the repository still runs jobq as its post-receive hook (true
// without gitolite: nothing else says). env is the job's JOBQ_PASS_ENV
// variables as a push now would take them (see pushEnv).
func (a *app) repoOptions(repo string) (opts queue.Options, env map[string]string, hooked bool, err error) {
	var gl map[string]string
	hooked = true
	if a.user != "" || a.hasGitolite() {
		if gl, err = a.gitoliteOptions(repo); err != nil {
			return opts, nil, false, err
		}
		hooked = hasJobqHook(gl)
	}
	lookup := func(name string) (string, bool) {
		if env, ok := strings.CutPrefix(name, "GL_OPTION_"); ok {
			v, ok := gl["gitolite-options.ENV."+env]
			return v, ok
		}
		if strings.HasPrefix(name, "JOBQ_") {
			return a.e.lookup(name)
		}
		return "", false
	}
	opts, err = push.ParseOptions(lookup, repo)
	if err != nil {
		return opts, nil, hooked, err
	}
	return opts, pushEnv(a.e.lookup, gl, opts.PassEnv), hooked, nil
}

// pushEnv is the JOBQ_PASS_ENV variables a push would give a job now.
// A push's hook gets GL_OPTION_X from gitolite, which sets each of them
// from the repository's "option ENV.X" (and clears any other) for the
// push alone: so GL_OPTION_ variables come from gitolite's options gl
// (nil without gitolite: then, as every other name, from this process's
// environment, lookup).
func pushEnv(lookup func(string) (string, bool), gl map[string]string, names []string) map[string]string {
	if gl == nil {
		return passEnv(lookup, names)
	}
	return passEnv(func(name string) (string, bool) {
		if opt, ok := strings.CutPrefix(name, "GL_OPTION_"); ok {
			v, ok := gl["gitolite-options.ENV."+opt]
			return v, ok
		}
		return lookup(name)
	}, names)
}

// hasGitolite reports whether the account runs a gitolite.
func (a *app) hasGitolite() bool { return gitolite.Installed(a.e.getenv) }

// gitoliteOptions asks gitolite for repo's "option ENV.X" (jobq's, and
// those a push exports as GL_OPTION_X for JOBQ_PASS_ENV to name) and
// hooks, keyed as gitolite keeps them (gitolite-options.ENV.JOBQ_COMMAND,
// gitolite-options.hook.post-receive).
func (a *app) gitoliteOptions(repo string) (map[string]string, error) {
	return gitolite.Options(a.ctx, gitolite.Program(a.e.getenv), nil, repo, `^gitolite-options\.(ENV\.|hook\.)`)
}

// hasJobqHook reports whether gitolite's options install jobq as a
// post-receive hook ("option hook.post-receive = jobq", or one of several
// names, or a hook.post-receive.SUFFIX key, as repo-specific-hooks reads
// them).
func hasJobqHook(gl map[string]string) bool {
	for k, v := range gl {
		hook, ok := strings.CutPrefix(k, "gitolite-options.hook.")
		if !ok {
			continue
		}
		if name, _, _ := strings.Cut(hook, "."); name != "post-receive" {
			continue
		}
		for _, code := range strings.Fields(v) {
			if code == "jobq" {
				return true
			}
		}
	}
	return false
}
