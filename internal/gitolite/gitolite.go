// Package gitolite asks gitolite who may do what, through its access
// command: for one repository and ref, or for many repositories at once.
// The ssh commands (cmd/jobq) and the web view (web) both decide access
// this way, and only this way.
package gitolite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// AnyRef is gitolite's ref for "some ref": the repository-level check.
const AnyRef = "any"

// Program is the gitolite command in the environment getenv reads: in
// GL_BINDIR, which gitolite sets for its commands, where it is installed
// from source; on PATH as in Debian's package; else Debian's own places
// (a CGI program gets no PATH from fcgiwrap).
func Program(getenv func(string) string) string {
	if d := getenv("GL_BINDIR"); d != "" {
		if p := filepath.Join(d, "gitolite"); isExecutable(p) {
			return p
		}
	}
	for _, dir := range filepath.SplitList(getenv("PATH")) {
		if p := filepath.Join(dir, "gitolite"); dir != "" && isExecutable(p) {
			return p
		}
	}
	for _, p := range []string{"/usr/bin/gitolite", "/usr/share/gitolite3/gitolite", "/usr/local/bin/gitolite"} {
		if isExecutable(p) {
			return p
		}
	}
	return "gitolite"
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// repoName is gitolite's $REPONAME_PATT (Gitolite/Rc.pm) without the
// leading @ of a group.
var repoName = regexp.MustCompile(`^[0-9a-zA-Z][-0-9a-zA-Z._@/+]*$`)

// ValidRepo reports whether gitolite takes name as a repository's: its
// sanity check (Gitolite/Conf/Load.pm) dies on anything else, with an
// exit status that is not a refusal.
func ValidRepo(name string) bool {
	return repoName.MatchString(name) && !strings.HasSuffix(name, "/") && !strings.Contains(name, "..") &&
		!strings.Contains(name, ".git/") && !strings.HasSuffix(name, ".git")
}

// Access reports whether user has perm (R, W, +) on ref of repo
// ("gitolite access -q"). env is gitolite's environment (nil: this
// process's). A name gitolite would not take (ValidRepo) is no one's to
// read: false. An error is gitolite failing, not a refusal.
func Access(ctx context.Context, program string, env []string, repo, user, perm, ref string) (bool, error) {
	if !ValidRepo(repo) {
		return false, nil
	}
	cmd := exec.CommandContext(ctx, program, "access", "-q", repo, user, perm, ref)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return false, nil // denied
	default:
		return false, fmt.Errorf("gitolite access %s: %w %s", repo, err, strings.TrimSpace(stderr.String()))
	}
}

// Readable answers, for each of repos, whether user may read it, with one
// gitolite call ("gitolite access %", the names on its input). Only lines
// about the repositories asked for, and this user, count.
func Readable(ctx context.Context, program string, env []string, user string, repos []string) (map[string]bool, error) {
	allowed := make(map[string]bool, len(repos))
	if len(repos) == 0 {
		return allowed, nil
	}
	var ask []string
	for _, r := range repos {
		allowed[r] = false
		if ValidRepo(r) {
			ask = append(ask, r)
		}
	}
	if len(ask) == 0 {
		return allowed, nil
	}
	cmd := exec.CommandContext(ctx, program, "access", "%", user, "R", AnyRef)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(strings.Join(ask, "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("gitolite access: %w %s", err, strings.TrimSpace(stderr.String()))
	}
	// REPO<tab>USER<tab>PERM, or a line with DENIED in it.
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.SplitN(line, "\t", 3)
		if len(f) == 3 && f[1] == user {
			if _, asked := allowed[f[0]]; asked {
				allowed[f[0]] = !strings.Contains(f[2], "DENIED")
			}
		}
	}
	return allowed, nil
}
