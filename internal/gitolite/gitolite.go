// Package gitolite asks gitolite who may do what, through its access
// command: for one repository and ref, or for many repositories at once;
// and what a repository's options are, through its git-config command.
// The ssh commands (cmd/jobq) and the web view (web) both decide access
// this way, and only this way; the worker reads the secrets a repository
// grants (JOBQ_SECRETS) this way.
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

// Installed reports whether the account whose environment getenv reads
// runs a gitolite (~/.gitolite.rc): then its options, not the
// environment, say what each repository's jobs get.
func Installed(getenv func(string) string) bool {
	home := getenv("HOME")
	if home == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(home, ".gitolite.rc"))
	return err == nil
}

// Options asks gitolite for repo's options whose keys match the regular
// expression keys ("gitolite git-config -r"), keyed as gitolite keeps
// them ("gitolite-options.ENV.JOBQ_COMMAND"), values as set (quotes
// stripped). A repository with none has an empty map. env is gitolite's
// environment (nil: this process's).
func Options(ctx context.Context, program string, env []string, repo, keys string) (map[string]string, error) {
	if !ValidRepo(repo) {
		return nil, fmt.Errorf("%q is not a repository name gitolite takes", repo)
	}
	cmd := exec.CommandContext(ctx, program, "git-config", "-r", repo, keys)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 && stderr.Len() == 0 {
		err = nil // no key matched
	}
	if err != nil {
		return nil, fmt.Errorf("gitolite git-config %s: %w %s", repo, err, strings.TrimSpace(stderr.String()))
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		// REPO<tab>KEY<tab>VALUE
		if f := strings.SplitN(line, "\t", 3); len(f) == 3 && f[0] == repo {
			m[f[1]] = f[2]
		}
	}
	return m, nil
}

// Repos lists the repositories gitolite knows of on disk
// ("gitolite list-phy-repos"), wild ones included.
func Repos(ctx context.Context, program string, env []string) ([]string, error) {
	cmd := exec.CommandContext(ctx, program, "list-phy-repos")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("gitolite list-phy-repos: %w %s", err, strings.TrimSpace(stderr.String()))
	}
	var repos []string
	for _, r := range strings.Fields(string(out)) {
		if ValidRepo(r) {
			repos = append(repos, r)
		}
	}
	return repos, nil
}
