package main

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/internal/jobview"
	"github.com/jobq/jobq/push"
	"github.com/jobq/jobq/queue"
)

// fakeGitolite is a gitolite program that allows what its rules list
// ("REPO USER PERM REF" lines), answers git-config from a file per
// repository, and logs every call, so tests count them.
type fakeGitolite struct {
	dir string // GL_BINDIR
}

const fakeGitoliteScript = `#!/bin/sh
d=FAKEDIR
printf '%s\n' "$*" >> "$d/calls"
case "$1" in
access)
    if [ "$2" = % ]; then
        while read -r repo; do
            if grep -qxF "$repo $3 $4 $5" "$d/rules"; then r=allowed; else r=DENIED; fi
            printf '%s\t%s\t%s\n' "$repo" "$3" "$r"
        done
        exit 0
    fi
    grep -qxF "$3 $4 $5 $6" "$d/rules"
    ;;
git-config)
    [ -f "$d/config-$3" ] || exit 1
    cat "$d/config-$3"
    ;;
query-rc)
    cat "$d/rc-$2"
    ;;
*)
    exit 2
    ;;
esac
`

func newFakeGitolite(t *testing.T, rules ...string) *fakeGitolite {
	t.Helper()
	g := &fakeGitolite{dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(g.dir, "gitolite"), []byte(strings.ReplaceAll(fakeGitoliteScript, "FAKEDIR", g.dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	g.write(t, "rules", strings.Join(rules, "\n")+"\n")
	return g
}

func (g *fakeGitolite) write(t *testing.T, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(g.dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// options sets what git-config answers for repo: KEY VALUE pairs, keyed
// as gitolite keeps them.
func (g *fakeGitolite) options(t *testing.T, repo string, kv ...string) {
	t.Helper()
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "%s\t%s\t%s\n", repo, kv[i], kv[i+1])
	}
	g.write(t, "config-"+repo, b.String())
}

// calls returns and forgets the calls made so far.
func (g *fakeGitolite) calls(t *testing.T) []string {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(g.dir, "calls"))
	os.Remove(filepath.Join(g.dir, "calls"))
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

// bareRepo makes base/NAME.git with refs/heads/master at A and
// refs/heads/dev at B, a child of A, and returns A and B.
func bareRepo(t *testing.T, base, name string) (a, b string) {
	t.Helper()
	dir := filepath.Join(base, name+".git")
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"--git-dir=" + dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "init", "-q", "--bare", dir).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	tree := git("hash-object", "-t", "tree", "-w", "/dev/null")
	a = git("commit-tree", "-m", "a", tree)
	b = git("commit-tree", "-m", "b", "-p", a, tree)
	git("update-ref", "refs/heads/master", a)
	git("update-ref", "refs/heads/dev", b)
	return a, b
}

// queueJob stores a queued job of repo for ref at rev, with options the
// repository no longer has.
func queueJob(t *testing.T, s *queue.Store, repo, ref, rev, gitDir string) int64 {
	t.Helper()
	// The bare repository holds the incarnation token Enqueue reads.
	if err := os.MkdirAll(gitDir, 0o755); err != nil {
		t.Fatal(err)
	}
	j := &queue.Job{Repo: repo, Queue: repo, Ref: ref, OldRev: strings.Repeat("0", 40), NewRev: rev, User: "alice",
		GitDir: gitDir, Env: map[string]string{"OLD": "x"},
		Options: queue.Options{Command: "old-command", Runner: "podman", Timeout: time.Minute, Keep: 5, PassEnv: []string{"OLD"}}}
	if _, err := s.Enqueue(j); err != nil {
		t.Fatal(err)
	}
	return j.ID
}

// Cancel and retry ask for W on the job's own ref, retry for + too where
// the ref has moved on (a rollback); a reader is told what is missing, a
// non-reader gets a missing repository's answer; an allowed change costs
// one gitolite call.
func TestChangeNeedsTheJobsRef(t *testing.T) {
	home, base := t.TempDir(), t.TempDir()
	a, b := bareRepo(t, base, "r")
	g := newFakeGitolite(t,
		"r alice R any", "r alice W any", "r alice W refs/heads/master", "r alice W refs/heads/dev", "r alice + refs/heads/dev",
		"r carol R any", "r carol W any", "r carol W refs/heads/dev",
	)
	g.options(t, "r", "gitolite-options.ENV.JOBQ_COMMAND", "new-command", "gitolite-options.ENV.JOBQ_RUNNER", "exec",
		"gitolite-options.ENV.JOBQ_ASYNC", "1", "gitolite-options.hook.post-receive", "jobq")
	s, _ := queue.Open(home)
	gitDir := filepath.Join(base, "r.git")
	master := queueJob(t, s, "r", "refs/heads/master", a, gitDir) // 0
	devOld := queueJob(t, s, "r", "refs/heads/dev", a, gitDir)    // 1: dev has moved on to b
	devNow := queueJob(t, s, "r", "refs/heads/dev", b, gitDir)    // 2
	vars := func(user string) map[string]string {
		return map[string]string{"JOBQ_HOME": home, "GL_USER": user, "GL_BINDIR": g.dir, "GL_REPO_BASE": base}
	}
	missing := `"nosuch": no such repository with jobs, or no access`
	tests := []struct {
		user, cmd string
		id        int64
		code      int
		says      string
		calls     []string
	}{
		{"carol", "cancel", master, 1, "carol may not cancel r job 0: that needs write access (W) on refs/heads/master",
			[]string{"access_-q_r_carol_W_refs/heads/master", "access_-q_r_carol_R_any"}},
		{"carol", "retry", master, 1, "carol may not retry r job 0: that needs write access (W) on refs/heads/master",
			[]string{"access_-q_r_carol_W_refs/heads/master", "access_-q_r_carol_R_any"}},
		{"carol", "retry", devOld, 1, "carol may not retry r job 1: refs/heads/dev points at " + jobview.Short(b) + ", so running " + jobview.Short(a) + " again is a rollback; that needs force-push access (+) on it",
			[]string{"access_-q_r_carol_W_refs/heads/dev", "access_-q_r_carol_+_refs/heads/dev"}},
		{"carol", "retry", devNow, 0, "queued r job 3 in queue r (3 ahead), a retry of job 2",
			[]string{"access_-q_r_carol_W_refs/heads/dev", "git-config_-r_r_^gitolite-options\\.(ENV\\.|hook\\.)"}},
		{"alice", "retry", devOld, 0, "queued r job 4 in queue r (4 ahead), a retry of job 1",
			[]string{"access_-q_r_alice_W_refs/heads/dev", "access_-q_r_alice_+_refs/heads/dev", "git-config_-r_r_^gitolite-options\\.(ENV\\.|hook\\.)"}},
		{"carol", "cancel", devNow, 0, "jobq: r job 2 cancelled",
			[]string{"access_-q_r_carol_W_refs/heads/dev"}},
		{"alice", "cancel", master, 0, "jobq: r job 0 cancelled",
			[]string{"access_-q_r_alice_W_refs/heads/master"}},
		{"carol", "cancel", 99, 1, "r has no job 99",
			[]string{"access_-q_r_carol_W_any"}},
		// A non-reader: the same answer and the same calls, job or not.
		{"bob", "cancel", devOld, 1, `"r": no such repository with jobs, or no access`,
			[]string{"access_-q_r_bob_W_refs/heads/dev", "access_-q_r_bob_R_any"}},
		{"bob", "retry", devOld, 1, `"r": no such repository with jobs, or no access`,
			[]string{"access_-q_r_bob_W_refs/heads/dev", "access_-q_r_bob_R_any"}},
		{"bob", "retry", 99, 1, `"r": no such repository with jobs, or no access`,
			[]string{"access_-q_r_bob_W_any", "access_-q_r_bob_R_any"}},
	}
	for _, tt := range tests {
		code, out, stderr := invoke(t, vars(tt.user), "", tt.cmd, "r", fmt.Sprint(tt.id))
		if code != tt.code || !strings.Contains(out+stderr, tt.says) || strings.Count(stderr, "\n") > 1 {
			t.Errorf("%s: jobq %s r %d: exit %d\n%s%s\nwant %d, %q", tt.user, tt.cmd, tt.id, code, out, stderr, tt.code, tt.says)
		}
		if calls := g.calls(t); strings.Join(calls, " ") != strings.Join(tt.calls, " ") {
			t.Errorf("%s: jobq %s r %d: gitolite calls\n%q\nwant\n%q", tt.user, tt.cmd, tt.id, calls, tt.calls)
		}
		if tt.user == "bob" {
			// The same as for a repository that does not exist.
			code2, out2, stderr2 := invoke(t, vars("bob"), "", tt.cmd, "nosuch", fmt.Sprint(tt.id))
			g.calls(t)
			if code2 != code || out2 != out || strings.ReplaceAll(stderr, `"r"`, `"nosuch"`) != stderr2 || !strings.Contains(stderr2, missing) {
				t.Errorf("bob: jobq %s r %d differs from a missing repository:\n%s\n---\n%s", tt.cmd, tt.id, stderr, stderr2)
			}
		}
	}
	// The retries run with the repository's options now, not the old job's.
	for id, of := range map[int64]int64{3: devNow, 4: devOld} {
		j, err := s.Job("r", id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Options.Command != "new-command" || j.Options.Runner != "exec" || j.Env != nil || j.GitDir != gitDir || *j.RetryOf != of {
			t.Errorf("retry %d: %+v", id, j)
		}
	}
	if j, _ := s.Job("r", 3); j.User != "carol" {
		t.Errorf("retry 3 is by %q, want carol", j.User)
	}
}

// A retry takes the JOBQ_PASS_ENV variables as a push now would: a push's
// hook gets GL_OPTION_X from gitolite's "option ENV.X" (gitolite clears
// any other GL_OPTION_ first), so a retry asks gitolite for them too, and
// never takes them from the caller's environment; other names come from
// that environment, as from the hook's.
func TestRetryPassEnvFromGitoliteOptions(t *testing.T) {
	home, base := t.TempDir(), t.TempDir()
	_, b := bareRepo(t, base, "r")
	g := newFakeGitolite(t, "r alice R any", "r alice W any", "r alice W refs/heads/dev")
	g.options(t, "r", "gitolite-options.hook.post-receive", "jobq", "gitolite-options.ENV.JOBQ_COMMAND", "img run",
		"gitolite-options.ENV.JOBQ_PASS_ENV", "GL_OPTION_DEPLOY_HOST GL_OPTION_UNSET SSH_CLIENT GL_OPTION_EMPTY",
		"gitolite-options.ENV.DEPLOY_HOST", "prod.example", "gitolite-options.ENV.EMPTY", "")
	s, _ := queue.Open(home)
	id := queueJob(t, s, "r", "refs/heads/dev", b, filepath.Join(base, "r.git"))
	vars := map[string]string{"JOBQ_HOME": home, "GL_USER": "alice", "GL_BINDIR": g.dir, "GL_REPO_BASE": base,
		"SSH_CLIENT": "10.0.0.1 1 22",
		// The caller's own, which a push's hook would not have had.
		"GL_OPTION_DEPLOY_HOST": "evil.example", "GL_OPTION_UNSET": "evil"}
	code, out, stderr := invoke(t, vars, "", "retry", "r", fmt.Sprint(id))
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	j, err := s.Job("r", id+1)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"GL_OPTION_DEPLOY_HOST": "prod.example", "GL_OPTION_EMPTY": "", "SSH_CLIENT": "10.0.0.1 1 22"}
	if !maps.Equal(j.Env, want) {
		t.Errorf("the retry's environment is %q, want %q", j.Env, want)
	}
}

// A retry queues nothing where a push would queue nothing now: the
// repository has no jobq hook, no JOBQ_COMMAND, a bad option, or a filter
// that no longer selects the ref.
func TestRetryWithCurrentOptions(t *testing.T) {
	home, base := t.TempDir(), t.TempDir()
	_, b := bareRepo(t, base, "r")
	g := newFakeGitolite(t, "r alice R any", "r alice W any", "r alice W refs/heads/dev")
	s, _ := queue.Open(home)
	id := fmt.Sprint(queueJob(t, s, "r", "refs/heads/dev", b, filepath.Join(base, "r.git")))
	hook := []string{"gitolite-options.hook.post-receive", "jobq"}
	tests := []struct {
		name  string
		opts  []string
		queue bool
		says  string
	}{
		{"no hook", []string{"gitolite-options.ENV.JOBQ_COMMAND", "x"}, false, "r no longer runs jobq (no option hook.post-receive = jobq); no job queued"},
		{"other hook", []string{"gitolite-options.hook.post-receive", "jobq-other", "gitolite-options.ENV.JOBQ_COMMAND", "x"}, false, "no longer runs jobq"},
		{"no command", hook, false, "r: JOBQ_COMMAND is not set; no job queued"},
		{"bad option", append([]string{"gitolite-options.ENV.JOBQ_COMMAND", "x", "gitolite-options.ENV.JOBQ_TIMEOUT", "abc"}, hook...), false, `r: JOBQ_TIMEOUT="abc" is not a duration; no job queued`},
		{"filtered out", append([]string{"gitolite-options.ENV.JOBQ_COMMAND", "x", "gitolite-options.ENV.JOBQ_REF_FILTER", "refs/heads/master"}, hook...), false, `r: JOBQ_REF_FILTER="refs/heads/master" no longer selects refs/heads/dev; no job queued`},
		{"hook among others", append([]string{"gitolite-options.ENV.JOBQ_COMMAND", "img run", "gitolite-options.hook.post-receive.h01", "mail jobq"}, hook[:0]...), true, "a retry of job 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g.options(t, "r", tt.opts...)
			before, _ := s.Jobs("r", 0)
			code, out, stderr := invoke(t, map[string]string{"JOBQ_HOME": home, "GL_USER": "alice", "GL_BINDIR": g.dir, "GL_REPO_BASE": base}, "", "retry", "r", id)
			after, _ := s.Jobs("r", 0)
			if queued := len(after) > len(before); queued != tt.queue || !strings.Contains(out+stderr, tt.says) || strings.Count(stderr, "\n") > 1 {
				t.Errorf("exit %d, queued %v:\n%s%s\nwant queued %v, %q", code, queued, out, stderr, tt.queue, tt.says)
			}
		})
	}
}

// Without GL_USER (the hosting account, or no gitolite) there is nothing
// to check, and the options come from the environment, then from gitolite
// where the account has one.
func TestRetryAsTheHostingAccount(t *testing.T) {
	base := t.TempDir()
	_, b := bareRepo(t, base, "r")
	g := newFakeGitolite(t)
	g.options(t, "r", "gitolite-options.hook.post-receive", "jobq", "gitolite-options.ENV.JOBQ_COMMAND", "img from-gitolite",
		"gitolite-options.ENV.JOBQ_TIMEOUT", "5s")
	withRC := t.TempDir()
	os.WriteFile(filepath.Join(withRC, ".gitolite.rc"), nil, 0o644)
	tests := []struct {
		name    string
		vars    map[string]string
		command string
		timeout time.Duration
	}{
		{"plain git server", map[string]string{"HOME": t.TempDir(), "JOBQ_COMMAND": "img from-env", "JOBQ_PASS_ENV": "TOKEN", "TOKEN": "t"}, "img from-env", push.DefaultTimeout},
		{"gitolite", map[string]string{"HOME": withRC}, "img from-gitolite", 5 * time.Second},
		{"environment first", map[string]string{"HOME": withRC, "JOBQ_COMMAND": "img from-env"}, "img from-env", 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			s, _ := queue.Open(home)
			id := queueJob(t, s, "r", "refs/heads/master", b, filepath.Join(base, "r.git"))
			tt.vars["JOBQ_HOME"], tt.vars["GL_BINDIR"] = home, g.dir
			code, out, stderr := invoke(t, tt.vars, "", "retry", "r", fmt.Sprint(id))
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, out, stderr)
			}
			j, err := s.Job("r", id+1)
			if err != nil {
				t.Fatal(err)
			}
			if j.Options.Command != tt.command || j.Options.Timeout != tt.timeout || j.User != "alice" {
				t.Errorf("retried with %+v by %q", j.Options, j.User)
			}
			if tt.vars["TOKEN"] != "" && j.Env["TOKEN"] != "t" {
				t.Errorf("env %v, want TOKEN from JOBQ_PASS_ENV", j.Env)
			}
			g.calls(t)
		})
	}
}

// worker, gc, hook and web are the host's: through gitolite (GL_USER set)
// they are refused, whatever their arguments, and nothing is created.
func TestHostCommandsRefusedThroughSSH(t *testing.T) {
	for _, args := range [][]string{
		{"gc"}, {"gc", "extra"}, {"gc", "--help"}, {"worker", "--all"}, {"worker", "--queue", "anything"},
		{"worker"}, {"hook"}, {"hook", "--bogus"}, {"--json", "gc"},
		{"web", "--listen", "0.0.0.0:8080"}, {"web", "--help"},
	} {
		home := filepath.Join(t.TempDir(), "data")
		vars := map[string]string{"JOBQ_HOME": home, "GL_USER": "bob", "HOME": t.TempDir()}
		code, out, stderr := invoke(t, vars, hookLine("refs/heads/main"), args...)
		if code != cli.Usage || out != "" || !strings.Contains(stderr, "the host's own command, not available through ssh") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("jobq %q as bob: exit %d\n%s%s", args, code, out, stderr)
		}
		if _, err := os.Stat(home); !os.IsNotExist(err) {
			t.Errorf("jobq %q as bob created the data directory", args)
		}
	}
	// Installed as the hook, jobq still runs as one.
	home := t.TempDir()
	vars := map[string]string{"JOBQ_HOME": home, "GL_USER": "bob", "GL_REPO": "r", "GIT_DIR": t.TempDir(), "JOBQ_COMMAND": "img true", "JOBQ_ASYNC": "1"}
	if code, _, stderr := invoke(t, vars, hookLine("refs/heads/main"), "post-receive"); code != 0 || !strings.Contains(stderr, "queued r job 0") {
		t.Errorf("the hook as bob: exit %d\n%s", code, stderr)
	}
}

// A repository that cannot be read is one line, without the host's paths.
func TestRetryUnreadableRepository(t *testing.T) {
	home, base := t.TempDir(), t.TempDir()
	g := newFakeGitolite(t, "r alice R any", "r alice W any", "r alice W refs/heads/dev")
	s, _ := queue.Open(home)
	id := fmt.Sprint(queueJob(t, s, "r", "refs/heads/dev", strings.Repeat("b", 40), filepath.Join(base, "r.git")))
	code, out, stderr := invoke(t, map[string]string{"JOBQ_HOME": home, "GL_USER": "alice", "GL_BINDIR": g.dir, "GL_REPO_BASE": base}, "", "retry", "r", id)
	if code != 1 || out != "" || stderr != "jobq: retry r job 0: cannot read refs/heads/dev of the repository\n" {
		t.Errorf("exit %d: %q %q", code, out, stderr)
	}
}
