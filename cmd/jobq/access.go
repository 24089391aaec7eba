package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/jobq/jobq/queue"
)

// Access levels a command needs; gitolite's own permission letters.
const (
	read  = "R"
	write = "W"
)

// gitolite is the gitolite program: in GL_BINDIR, which gitolite sets for
// its commands, where it is installed from source; on PATH otherwise (as in
// Debian's package).
func (a *app) gitolite() string {
	if d := a.e.getenv("GL_BINDIR"); d != "" {
		if p := filepath.Join(d, "gitolite"); isExecutable(p) {
			return p
		}
	}
	return "gitolite"
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// authorize is the one gate every command that names a repository passes:
// an invalid name, a repository GL_USER may not read, and (for write) one
// it may not write all fail here. Without GL_USER the caller is the hosting
// account itself, which owns the data.
func (a *app) authorize(repo, perm string) error {
	if err := queue.ValidName(repo); err != nil {
		return errNoRepo(repo)
	}
	if a.user == "" {
		return nil
	}
	// Write access implies read in gitolite: an allowed change costs one
	// gitolite process, not two; read is asked only to choose the answer.
	if perm == write {
		ok, err := a.access(a.ctx, repo, write)
		if err != nil || ok {
			return err
		}
	}
	ok, err := a.access(a.ctx, repo, read)
	if err != nil {
		return err
	}
	if !ok {
		return errNoRepo(repo)
	}
	if perm == write {
		return &exitError{code: exitFailed, msg: fmt.Sprintf("%s: %s may not change its jobs (needs write access)", repo, a.user)}
	}
	return nil
}

// access asks gitolite whether GL_USER has perm on repo.
func (a *app) access(ctx context.Context, repo, perm string) (bool, error) {
	cmd := exec.CommandContext(ctx, a.gitolite(), "access", "-q", repo, a.user, perm, "any")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return false, nil
	default:
		return false, fmt.Errorf("gitolite access %s: %v %s", repo, err, strings.TrimSpace(stderr.String()))
	}
}

// readable filters repos to those GL_USER may read, with one gitolite call.
func (a *app) readable(repos []string) ([]string, error) {
	if a.user == "" || len(repos) == 0 {
		return repos, nil
	}
	cmd := exec.CommandContext(a.ctx, a.gitolite(), "access", "%", a.user, read, "any")
	cmd.Stdin = strings.NewReader(strings.Join(repos, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("gitolite access: %w", err)
	}
	var ok []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.SplitN(line, "\t", 3)
		if len(f) == 3 && !strings.Contains(f[2], "DENIED") {
			ok = append(ok, f[0])
		}
	}
	return ok, nil
}
