package web

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
	"sync"
	"time"
)

// Anonymous is the gitolite user an unauthenticated visitor reads as: the
// one gitolite's gitweb and cgit integrations use ("R = gitweb").
const Anonymous = "gitweb"

// userPattern is gitolite's $USERNAME_PATT (Gitolite/Rc.pm) without the
// leading '@' of group names: a visitor is never a group.
var userPattern = regexp.MustCompile(`^[0-9a-zA-Z][-0-9a-zA-Z._@+]*$`)

// validUser reports whether name can be a gitolite user: anything else
// (empty, "-q", a group, spaces) never reaches gitolite's command line.
func validUser(name string) bool {
	return len(name) <= 100 && userPattern.MatchString(name)
}

// Access answers whether a gitolite user may read a repository, by asking
// gitolite as cmd/jobq does ("gitolite access -q REPO USER R any"). Answers
// are kept for TTL per (user, repository) pair, never shared between users:
// gitolite's check is a Perl process of tens of milliseconds.
type Access struct {
	// Gitolite is the gitolite program; "" finds it (GL_BINDIR, PATH, then
	// Debian's places).
	Gitolite string
	// Env is the environment gitolite runs in (it needs HOME for its rc).
	Env []string
	TTL time.Duration

	mu    sync.Mutex
	cache map[accessKey]accessAnswer
}

type accessKey struct{ user, repo string }

type accessAnswer struct {
	ok      bool
	expires time.Time
}

// maxCached bounds the cache: past it, the cache starts afresh.
const maxCached = 10000

// program is the gitolite command: in GL_BINDIR where gitolite is installed
// from source, on PATH as in Debian's package, else Debian's own places (a
// CGI program gets no PATH from fcgiwrap).
func (a *Access) program() string {
	if a.Gitolite != "" {
		return a.Gitolite
	}
	if d := lookupEnv(a.Env, "GL_BINDIR"); d != "" {
		if p := filepath.Join(d, "gitolite"); isExecutable(p) {
			return p
		}
	}
	for _, dir := range filepath.SplitList(lookupEnv(a.Env, "PATH")) {
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

func lookupEnv(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}

func (a *Access) cached(user, repo string, now time.Time) (ok, found bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ans, found := a.cache[accessKey{user, repo}]
	if !found || now.After(ans.expires) {
		return false, false
	}
	return ans.ok, true
}

func (a *Access) remember(user, repo string, ok bool, now time.Time) {
	if a.TTL <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cache == nil || len(a.cache) >= maxCached {
		a.cache = map[accessKey]accessAnswer{}
	}
	a.cache[accessKey{user, repo}] = accessAnswer{ok, now.Add(a.TTL)}
}

// CanRead reports whether user may read repo. Both must be valid names
// (the caller checks); an error is gitolite failing, not a refusal.
func (a *Access) CanRead(ctx context.Context, user, repo string) (bool, error) {
	if !validUser(user) {
		return false, nil
	}
	now := time.Now()
	if ok, found := a.cached(user, repo, now); found {
		return ok, nil
	}
	cmd := exec.CommandContext(ctx, a.program(), "access", "-q", repo, user, "R", "any")
	cmd.Env = a.Env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	var ok bool
	switch {
	case err == nil:
		ok = true
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		// denied (gitolite access -q exits 1), and not an error
	default:
		return false, fmt.Errorf("gitolite access %s: %w %s", repo, err, strings.TrimSpace(stderr.String()))
	}
	a.remember(user, repo, ok, now)
	return ok, nil
}

// Readable filters repos to those user may read: the cached answers, and
// one gitolite call ("access %", names on stdin) for the rest.
func (a *Access) Readable(ctx context.Context, user string, repos []string) ([]string, error) {
	if !validUser(user) {
		return nil, nil
	}
	now := time.Now()
	allowed := map[string]bool{}
	var ask []string
	for _, r := range repos {
		if ok, found := a.cached(user, r, now); found {
			allowed[r] = ok
		} else {
			ask = append(ask, r)
		}
	}
	if len(ask) > 0 {
		cmd := exec.CommandContext(ctx, a.program(), "access", "%", user, "R", "any")
		cmd.Env = a.Env
		cmd.Stdin = strings.NewReader(strings.Join(ask, "\n") + "\n")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("gitolite access: %w %s", err, strings.TrimSpace(stderr.String()))
		}
		for _, r := range ask {
			allowed[r] = false
		}
		// REPO<tab>USER<tab>PERM-or-a-DENIED-line
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.SplitN(line, "\t", 3)
			if len(f) == 3 && f[1] == user {
				if _, asked := allowed[f[0]]; asked {
					allowed[f[0]] = !strings.Contains(f[2], "DENIED")
				}
			}
		}
		for _, r := range ask {
			a.remember(user, r, allowed[r], now)
		}
	}
	var ok []string
	for _, r := range repos {
		if allowed[r] {
			ok = append(ok, r)
		}
	}
	return ok, nil
}
