package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/queue"
)

// runRepo is a bare repository r in base (master at a, dev at b, a child
// of a), known to a fake gitolite whose rules are rules, with jobq as its
// hook and JOBQ_COMMAND set; and an empty data directory.
type runRepo struct {
	home, base, a, b string
	g                *fakeGitolite
	s                *queue.Store
}

func newRunRepo(t *testing.T, rules ...string) *runRepo {
	t.Helper()
	r := &runRepo{home: t.TempDir(), base: t.TempDir()}
	r.a, r.b = bareRepo(t, r.base, "r")
	r.g = newFakeGitolite(t, rules...)
	r.g.options(t, "r", "gitolite-options.hook.post-receive", "jobq", "gitolite-options.ENV.JOBQ_COMMAND", "img now",
		"gitolite-options.ENV.JOBQ_ASYNC", "1")
	r.s, _ = queue.Open(r.home)
	return r
}

func (r *runRepo) vars(user string) map[string]string {
	return map[string]string{"JOBQ_HOME": r.home, "GL_USER": user, "GL_BINDIR": r.g.dir, "GL_REPO_BASE": r.base}
}

func (r *runRepo) jobs(t *testing.T) []queue.Listed {
	t.Helper()
	jobs, _ := r.s.Jobs("r", 0)
	return jobs
}

// jobq run needs what a push of the ref by the caller needs: W on that
// ref. A reader without it is told so; a user who may not read the
// repository gets, byte for byte, a missing repository's answer.
func TestRunNeedsWriteOnTheRef(t *testing.T) {
	r := newRunRepo(t,
		"r alice R any", "r alice W refs/heads/master", "r alice W refs/heads/dev",
		"r carol R any", "r carol W refs/heads/dev",
		"r dave R any",
	)
	missing := `jobq: "nosuch": no such repository with jobs, or no access` + "\n"
	tests := []struct {
		user, ref string
		code      int
		out, err  string
	}{
		{"alice", "master", 0, "jobq: queued r job 0 in queue repo:r (0 ahead): refs/heads/master at " + r.a[:8] + "\n", ""},
		{"carol", "master", 1, "", "jobq: carol may not run r refs/heads/master: that needs write access (W) on it\n"},
		{"carol", "refs/heads/master", 1, "", "jobq: carol may not run r refs/heads/master: that needs write access (W) on it\n"},
		{"carol", "dev", 0, "jobq: queued r job 1 in queue repo:r (1 ahead): refs/heads/dev at " + r.b[:8] + "\n", ""},
		{"dave", "dev", 1, "", "jobq: dave may not run r refs/heads/dev: that needs write access (W) on it\n"},
		{"bob", "master", 1, "", strings.ReplaceAll(missing, "nosuch", "r")},
		{"bob", "nosuchref", 1, "", strings.ReplaceAll(missing, "nosuch", "r")},
	}
	for _, tt := range tests {
		code, out, stderr := invoke(t, r.vars(tt.user), "", "run", "r", tt.ref)
		// The worker cannot be started here: that line follows a queued job.
		stderr, _, _ = strings.Cut(stderr, "jobq: jobq-worker not found")
		if code != tt.code || out != tt.out || stderr != tt.err {
			t.Errorf("%s: jobq run r %s: exit %d\n%q %q\nwant %d %q %q", tt.user, tt.ref, code, out, stderr, tt.code, tt.out, tt.err)
		}
		if tt.err == strings.ReplaceAll(missing, "nosuch", "r") {
			mcode, mout, merr := invoke(t, r.vars(tt.user), "", "run", "nosuch", tt.ref)
			if mcode != code || mout != out || merr != missing {
				t.Errorf("%s: a missing repository's answer differs: exit %d %q %q", tt.user, mcode, mout, merr)
			}
		}
	}
	jobs := r.jobs(t)
	if len(jobs) != 2 {
		t.Fatalf("%d jobs, want 2", len(jobs))
	}
	for _, l := range jobs {
		j := l.Job
		want := map[int64]struct{ ref, rev, user string }{0: {"refs/heads/master", r.a, "alice"}, 1: {"refs/heads/dev", r.b, "carol"}}[l.ID]
		if j.Ref != want.ref || j.NewRev != want.rev || j.OldRev != want.rev || j.User != want.user || j.StartedBy() != queue.OriginRun ||
			j.Options.Command != "img now" || j.GitDir != filepath.Join(r.base, "r.git") || j.RetryOf != nil {
			t.Errorf("job %d: %+v", l.ID, j)
		}
	}
}

// A REF no push could have made is bad usage, refused before anything is
// asked of gitolite or read of the repository: the answer is the same for
// every repository, readable or not.
func TestRunHostileRef(t *testing.T) {
	r := newRunRepo(t, "r alice R any", "r alice W any")
	for _, ref := range []string{
		"", "..", "refs/heads/../x", "refs/heads/..", "../../etc/passwd", "/etc/passwd", ".hidden", "refs/heads/.x",
		"refs/heads/x.lock", "refs/heads//x", "refs/heads/", "x.", "master@{1}", "@", "master:evil", "a b", "a\nb",
		"master\x00", "\xff\xfe", "ma\u00a0ster", "x~1", "x^", "x*", "x?", "x[", `x\y`, "-x", "--upload-pack=x",
		strings.Repeat("a", maxRefLen+1), "refs/heads/" + strings.Repeat("a/", 600),
	} {
		for _, repo := range []string{"r", "nosuch"} {
			code, out, stderr := invoke(t, r.vars("alice"), "", "run", repo, "--", ref)
			if code != cli.Usage || out != "" || !strings.HasPrefix(stderr, "jobq: REF ") || strings.Count(stderr, "\n") != 1 || len(stderr) > 400 {
				t.Errorf("jobq run %s %.40q: exit %d %q %q", repo, ref, code, out, stderr)
			}
		}
		if calls := r.g.calls(t); len(calls) != 0 {
			t.Errorf("%.40q: gitolite was asked %v", ref, calls)
		}
	}
	// Without "--", a REF that looks like a flag is one.
	if code, _, stderr := invoke(t, r.vars("alice"), "", "run", "r", "-x"); code != cli.Usage || strings.Count(stderr, "\n") != 1 {
		t.Errorf("jobq run r -x: exit %d %q", code, stderr)
	}
	// A REPO that names no repository: a missing repository's answer.
	for _, repo := range []string{"../r", "r/../r", "/r", ".", "r.git/..", "\xff", strings.Repeat("r", 300)} {
		code, out, stderr := invoke(t, r.vars("alice"), "", "run", "--", repo, "master")
		if code != 1 || out != "" || !strings.HasSuffix(stderr, ": no such repository with jobs, or no access\n") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("jobq run %.40q master: exit %d %q %q", repo, code, out, stderr)
		}
	}
	if n := len(r.jobs(t)); n != 0 {
		t.Errorf("%d jobs queued", n)
	}
}

// A short name is a branch's or a tag's; one that is both is refused, not
// guessed (git would take the tag). A full ref is taken as it is.
func TestRunShortNames(t *testing.T) {
	r := newRunRepo(t, "r alice R any", "r alice W any", "r alice W refs/heads/master", "r alice W refs/tags/master",
		"r alice W refs/tags/v1", "r alice W refs/heads/team/x")
	gitDir := filepath.Join(r.base, "r.git")
	for _, args := range [][]string{{"tag", "v1", r.b}, {"update-ref", "refs/heads/team/x", r.b}} {
		if out, err := exec.Command("git", append([]string{"--git-dir=" + gitDir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	tests := []struct {
		ref, says, full, rev string
	}{
		{"master", "refs/heads/master at " + r.a[:8], "refs/heads/master", r.a},
		{"v1", "refs/tags/v1 at " + r.b[:8], "refs/tags/v1", r.b},
		{"team/x", "refs/heads/team/x at " + r.b[:8], "refs/heads/team/x", r.b},
		{"nosuch", "jobq: r has no branch or tag nosuch; no job queued\n", "", ""},
		{"refs/heads/nosuch", "jobq: r has no ref refs/heads/nosuch; no job queued\n", "", ""},
		{"heads/master", "jobq: r has no branch or tag heads/master; no job queued\n", "", ""},
		{"refs/heads/team", "jobq: r has no ref refs/heads/team; no job queued\n", "", ""},
		// Then master is a tag too.
		{"master", "jobq: r has a branch and a tag master: give refs/heads/master or refs/tags/master; no job queued\n", "", ""},
		{"refs/tags/master", "refs/tags/master at " + r.b[:8], "refs/tags/master", r.b},
		{"refs/heads/master", "refs/heads/master at " + r.a[:8], "refs/heads/master", r.a},
	}
	for i, tt := range tests {
		if i == 7 {
			if out, err := exec.Command("git", "--git-dir="+gitDir, "tag", "master", r.b).CombinedOutput(); err != nil {
				t.Fatalf("git tag: %v %s", err, out)
			}
		}
		before := len(r.jobs(t))
		code, out, stderr := invoke(t, r.vars("alice"), "", "run", "r", tt.ref)
		jobs := r.jobs(t)
		if tt.full == "" {
			if code != 1 || out != "" || stderr != tt.says || len(jobs) != before {
				t.Errorf("jobq run r %s: exit %d %q %q", tt.ref, code, out, stderr)
			}
			continue
		}
		if code != 0 || !strings.Contains(out, tt.says) || len(jobs) != before+1 || jobs[0].Job.Ref != tt.full || jobs[0].Job.NewRev != tt.rev {
			t.Errorf("jobq run r %s: exit %d %q %q", tt.ref, code, out, stderr)
		}
	}
}

// A run queues nothing where a push of the ref would queue nothing: no
// jobq hook, no command, a bad option, a filter that does not select it.
func TestRunWithCurrentOptions(t *testing.T) {
	r := newRunRepo(t, "r alice R any", "r alice W any", "r alice W refs/heads/dev")
	hook := []string{"gitolite-options.hook.post-receive", "jobq"}
	tests := []struct {
		name string
		opts []string
		says string
	}{
		{"no hook", []string{"gitolite-options.ENV.JOBQ_COMMAND", "x"}, "jobq: r does not run jobq (no option hook.post-receive = jobq); no job queued\n"},
		{"no command", hook, "jobq: r: JOBQ_COMMAND is not set; no job queued\n"},
		{"bad option", append([]string{"gitolite-options.ENV.JOBQ_COMMAND", "x", "gitolite-options.ENV.JOBQ_TIMEOUT", "abc"}, hook...), "jobq: r: JOBQ_TIMEOUT=\"abc\" is not a duration; no job queued\n"},
		{"filtered out", append([]string{"gitolite-options.ENV.JOBQ_COMMAND", "x", "gitolite-options.ENV.JOBQ_REF_FILTER", "refs/heads/master"}, hook...), "jobq: r: JOBQ_REF_FILTER=\"refs/heads/master\" does not select refs/heads/dev; no job queued\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.g.options(t, "r", tt.opts...)
			code, out, stderr := invoke(t, r.vars("alice"), "", "run", "r", "dev")
			if code != 1 || out != "" || stderr != tt.says || len(r.jobs(t)) != 0 {
				t.Errorf("exit %d %q %q\nwant %q", code, out, stderr, tt.says)
			}
		})
	}
}

// The hosting account (cron) runs any ref: no GL_USER, no GL_REPO_BASE;
// gitolite says where the repositories are, and the job has no user.
func TestRunAsTheHostingAccount(t *testing.T) {
	r := newRunRepo(t)
	withRC := t.TempDir()
	os.WriteFile(filepath.Join(withRC, ".gitolite.rc"), nil, 0o644)
	r.g.write(t, "rc-GL_REPO_BASE", r.base+"\n")
	vars := map[string]string{"JOBQ_HOME": r.home, "HOME": withRC, "GL_BINDIR": r.g.dir}
	code, out, stderr := invoke(t, vars, "", "run", "r", "dev")
	if code != 0 || !strings.HasPrefix(out, "jobq: queued r job 0 in queue repo:r (0 ahead): refs/heads/dev at ") {
		t.Fatalf("exit %d %q %q", code, out, stderr)
	}
	j, err := r.s.Job("r", 0)
	if err != nil {
		t.Fatal(err)
	}
	if j.User != "" || j.NewRev != r.b || j.Options.Command != "img now" || j.Origin != queue.OriginRun || j.GitDir != filepath.Join(r.base, "r.git") {
		t.Errorf("job: %+v", j)
	}
	// The listing says how the job was started.
	if code, out, _ := invoke(t, vars, "", "r"); code != 0 || !strings.HasSuffix(strings.Split(out, "\n")[0], "ORIGIN") || !strings.HasSuffix(strings.Split(out, "\n")[1], "  run") {
		t.Errorf("listing:\n%s", out)
	}
	for _, c := range r.g.calls(t) {
		if strings.HasPrefix(c, "access") {
			t.Errorf("the hosting account's run asked gitolite %s", c)
		}
	}
	// A repository gitolite does not have.
	if code, out, stderr := invoke(t, vars, "", "run", "nosuch", "dev"); code != 1 || out != "" || stderr != "jobq: \"nosuch\": no such repository with jobs, or no access\n" {
		t.Errorf("nosuch: exit %d %q %q", code, out, stderr)
	}
}

// On a plain git server (no gitolite, no GL_REPO_BASE) the repository is
// where its last job's push was; a repository with no job cannot be
// found, and says so in one line.
func TestRunOnAPlainGitServer(t *testing.T) {
	r := newRunRepo(t)
	vars := map[string]string{"JOBQ_HOME": r.home, "HOME": t.TempDir(), "JOBQ_COMMAND": "img from-env", "GL_BINDIR": r.g.dir}
	code, out, stderr := invoke(t, vars, "", "run", "r", "master")
	if code != 1 || out != "" || stderr != "jobq: r: where its repository is is not known: no GL_REPO_BASE, no gitolite, and no job of it to tell\n" {
		t.Errorf("no job yet: exit %d %q %q", code, out, stderr)
	}
	queueJob(t, r.s, "r", "refs/heads/dev", r.b, filepath.Join(r.base, "r.git"))
	code, out, stderr = invoke(t, vars, "", "run", "r", "master")
	if code != 0 || !strings.HasPrefix(out, "jobq: queued r job 1 ") {
		t.Fatalf("exit %d %q %q", code, out, stderr)
	}
	j, _ := r.s.Job("r", 1)
	if j.GitDir != filepath.Join(r.base, "r.git") || j.NewRev != r.a || j.Options.Command != "img from-env" {
		t.Errorf("job: %+v", j)
	}
	if calls := r.g.calls(t); len(calls) != 0 {
		t.Errorf("gitolite was asked %v on a plain git server", calls)
	}
}
