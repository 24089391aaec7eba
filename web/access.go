package web

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jobq/jobq/internal/atomicfile"
	"github.com/jobq/jobq/internal/gitolite"
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
	// CacheDir, if set, keeps the answers in files too, one per user: a
	// CGI program lives for one request, and would otherwise ask gitolite
	// every time. Answers in it are kept for TTL as well.
	CacheDir string

	mu     sync.Mutex
	cache  map[accessKey]accessAnswer
	loaded map[string]bool // users whose CacheDir file has been read
}

type accessKey struct{ user, repo string }

type accessAnswer struct {
	ok      bool
	expires time.Time
}

// maxCached bounds the cache: past it, the cache starts afresh.
const maxCached = 10000

// program is the gitolite command (gitolite.Program), found in the
// environment gitolite runs in.
func (a *Access) program() string {
	if a.Gitolite != "" {
		return a.Gitolite
	}
	return gitolite.Program(func(k string) string { return lookupEnv(a.Env, k) })
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
	a.load(user, now)
	ans, found := a.cache[accessKey{user, repo}]
	if !found || now.After(ans.expires) {
		return false, false
	}
	return ans.ok, true
}

func (a *Access) remember(user string, answers map[string]bool, now time.Time) {
	if a.TTL <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cache == nil || len(a.cache) >= maxCached {
		a.cache = map[accessKey]accessAnswer{}
	}
	for repo, ok := range answers {
		a.cache[accessKey{user, repo}] = accessAnswer{ok, now.Add(a.TTL)}
	}
	a.save(user, now)
}

// load reads user's answers from CacheDir into the cache, once per user.
// The file is "EXPIRES REPO 0|1" lines, EXPIRES in Unix nanoseconds; what
// does not parse is skipped.
func (a *Access) load(user string, now time.Time) {
	if a.CacheDir == "" || a.loaded[user] {
		return
	}
	if a.loaded == nil {
		a.loaded = map[string]bool{}
	}
	a.loaded[user] = true
	b, err := os.ReadFile(filepath.Join(a.CacheDir, user))
	if err != nil {
		return
	}
	if a.cache == nil {
		a.cache = map[accessKey]accessAnswer{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || (f[2] != "0" && f[2] != "1") {
			continue
		}
		exp, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || now.After(time.Unix(0, exp)) || exp > now.Add(a.TTL).UnixNano() {
			continue // expired, or from a longer TTL than ours
		}
		a.cache[accessKey{user, f[1]}] = accessAnswer{f[2] == "1", time.Unix(0, exp)}
	}
}

// save writes user's unexpired answers to CacheDir, whole, by a rename. Two
// processes at once may lose each other's new answers: they are asked
// again.
func (a *Access) save(user string, now time.Time) {
	if a.CacheDir == "" {
		return
	}
	var b strings.Builder
	for k, ans := range a.cache {
		if k.user == user && !now.After(ans.expires) {
			ok := "0"
			if ans.ok {
				ok = "1"
			}
			fmt.Fprintf(&b, "%d %s %s\n", ans.expires.UnixNano(), k.repo, ok)
		}
	}
	if err := os.MkdirAll(a.CacheDir, 0o700); err != nil {
		return
	}
	atomicfile.Write(filepath.Join(a.CacheDir, user), []byte(b.String()), 0o600, false)
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
	ok, err := gitolite.Access(ctx, a.program(), a.Env, repo, user, "R", gitolite.AnyRef)
	if err != nil {
		return false, err
	}
	a.remember(user, map[string]bool{repo: ok}, now)
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
		answers, err := gitolite.Readable(ctx, a.program(), a.Env, user, ask)
		if err != nil {
			return nil, err
		}
		maps.Copy(allowed, answers)
		a.remember(user, answers, now)
	}
	var ok []string
	for _, r := range repos {
		if allowed[r] {
			ok = append(ok, r)
		}
	}
	return ok, nil
}
