package main

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/queue"
)

// invoke runs jobq in-process with args, stdin and environment vars.
func invoke(t *testing.T, vars map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	e := env{args: append([]string{"jobq"}, args...), stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return vars[k] }, lookup: lookup}
	if len(args) > 0 && args[0] == "post-receive" {
		e.args = []string{"/srv/git/r.git/hooks/post-receive.h00-jobq"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code := run(ctx, e)
	return code, out.String(), errb.String()
}

func hookLine(ref string) string {
	return strings.Repeat("0", 40) + " " + strings.Repeat("a", 40) + " " + ref + "\n"
}

// A synchronous push whose worker cannot be started must not wait for a
// job nobody runs.
func TestSyncHookWithoutWorkerDoesNotHang(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no jobq-worker anywhere
	home := t.TempDir()
	vars := map[string]string{"JOBQ_HOME": home, "GL_REPO": "r", "GIT_DIR": t.TempDir(), "GL_OPTION_JOBQ_COMMAND": "img true"}
	start := time.Now()
	code, _, stderr := invoke(t, vars, hookLine("refs/heads/main"), "post-receive")
	if code != 0 || time.Since(start) > 5*time.Second {
		t.Fatalf("exit %d after %s", code, time.Since(start))
	}
	for _, want := range []string{"jobq: queued r job 0 in queue repo:r (0 ahead)", "jobq-worker not found", "the job waits for the next worker"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("hook output lacks %q:\n%s", want, stderr)
		}
	}
}

func TestHookInputAndOptions(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	tests := []struct {
		name   string
		vars   map[string]string
		stdin  string
		queued int
		says   string
	}{
		{"no command", map[string]string{}, hookLine("refs/heads/main"), 0, "JOBQ_COMMAND is not set; no job queued"},
		{"bad option", map[string]string{"JOBQ_COMMAND": "x", "JOBQ_TIMEOUT": "abc"}, hookLine("refs/heads/main"), 0, `JOBQ_TIMEOUT="abc" is not a duration; no job queued`},
		{"garbage input", map[string]string{"JOBQ_COMMAND": "x"}, "garbage\n", 0, "hook input line 1 is not OLD NEW REF"},
		{"deletion", map[string]string{"JOBQ_COMMAND": "x"}, strings.Repeat("a", 40) + " " + strings.Repeat("0", 40) + " refs/heads/x\n", 0, ""},
		{"filter", map[string]string{"JOBQ_COMMAND": "x", "JOBQ_REF_FILTER": "refs/tags/*"}, hookLine("refs/heads/main") + hookLine("refs/tags/v1"), 1, "queued r job 0"},
		{"many refs", map[string]string{"JOBQ_COMMAND": "x", "JOBQ_ASYNC": "1"}, strings.Repeat(hookLine("refs/heads/b"), 3), 3, "queued r job 2 in queue repo:r (2 ahead)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			tt.vars["JOBQ_HOME"], tt.vars["GL_REPO"], tt.vars["GIT_DIR"] = home, "r", t.TempDir()
			tt.vars["JOBQ_ASYNC"] = "1"
			code, _, stderr := invoke(t, tt.vars, tt.stdin, "post-receive")
			if code != 0 {
				t.Errorf("hook exit %d", code)
			}
			if !strings.Contains(stderr, tt.says) || strings.Count(stderr, "\n") > tt.queued*2+1 {
				t.Errorf("hook said:\n%s\nwant %q", stderr, tt.says)
			}
			s, _ := queue.Open(home)
			jobs, _ := s.Jobs("r", 0)
			if len(jobs) != tt.queued {
				t.Errorf("%d jobs queued, want %d", len(jobs), tt.queued)
			}
		})
	}
}

// A repository's own queue is no other's: a repository named like the
// queue another is configured with ("deploy" sets JOBQ_QUEUE=prod; a user
// creates a repository "prod") does not join it, and one named like
// another's own queue neither; two repositories share a queue only where
// both name it.
func TestOwnQueueIsNoOtherQueue(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	home := t.TempDir()
	push := func(repo string, vars map[string]string) string {
		t.Helper()
		vars["JOBQ_HOME"], vars["GL_REPO"], vars["GIT_DIR"], vars["JOBQ_ASYNC"] = home, repo, t.TempDir(), "1"
		vars["JOBQ_COMMAND"] = "img true"
		if code, _, stderr := invoke(t, vars, hookLine("refs/heads/main"), "post-receive"); code != 0 || !strings.Contains(stderr, "queued "+repo+" job 0") {
			t.Fatalf("%s: exit %d\n%s", repo, code, stderr)
		}
		s, _ := queue.Open(home)
		j, err := s.Job(repo, 0)
		if err != nil {
			t.Fatal(err)
		}
		return j.Queue
	}
	for _, tt := range []struct {
		repo string
		vars map[string]string
		want string
	}{
		{"deploy", map[string]string{"GL_OPTION_JOBQ_QUEUE": "prod"}, "prod"},
		{"prod", map[string]string{}, "repo:prod"},
		{"repo", map[string]string{}, "repo:repo"},
		{"other", map[string]string{"GL_OPTION_JOBQ_QUEUE": "prod"}, "prod"},
	} {
		if q := push(tt.repo, tt.vars); q != tt.want {
			t.Errorf("%s's job is in queue %q, want %q", tt.repo, q, tt.want)
		}
	}
	s, _ := queue.Open(home)
	ahead, _ := s.Ahead("prod")
	if want := map[string]int{"deploy 0": 0, "other 0": 1}; !maps.Equal(ahead, want) {
		t.Errorf("queue prod holds %v, want %v", ahead, want)
	}
}

func TestListShowsPlaceInQueue(t *testing.T) {
	home := t.TempDir()
	s, _ := queue.Open(home)
	for _, repo := range []string{"a", "b", "a"} {
		s.Enqueue(&queue.Job{Repo: repo, Queue: "shared", Ref: "refs/heads/main", NewRev: strings.Repeat("c", 40),
			Options: queue.Options{Command: "x", Timeout: time.Minute, Keep: 5}})
	}
	code, out, _ := invoke(t, map[string]string{"JOBQ_HOME": home}, "", "a")
	if code != 0 {
		t.Fatal(code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID  STATE") || !strings.Contains(lines[1], "queued (2 ahead)") || !strings.Contains(lines[2], "queued (0 ahead)") || !strings.Contains(lines[1], "cccccccc") {
		t.Errorf("listing:\n%s", out)
	}
	// Columns line up.
	if strings.Index(lines[0], "REF") != strings.Index(lines[1], "refs/") {
		t.Errorf("columns do not line up:\n%s", out)
	}
	code, out, _ = invoke(t, map[string]string{"JOBQ_HOME": home}, "", "ls", "a", "--json")
	if code != 0 || !strings.Contains(out, `"ahead": 2`) || !strings.Contains(out, `"state": "queued"`) {
		t.Errorf("--json: %d\n%s", code, out)
	}
	code, out, _ = invoke(t, map[string]string{"JOBQ_HOME": home}, "", "--json")
	if code != 0 || !strings.Contains(out, `"repo": "a"`) || !strings.Contains(out, `"queued": 2`) {
		t.Errorf("jobq --json: %d\n%s", code, out)
	}
}

// Why a queued job waits follows its row: a long reason (cut) or one
// with control characters leaves the columns as narrow as without it.
func TestListWaitingReason(t *testing.T) {
	home := t.TempDir()
	s, _ := queue.Open(home)
	for range 2 {
		s.Enqueue(&queue.Job{Repo: "a", Queue: "a", Ref: "refs/heads/main", NewRev: strings.Repeat("c", 40),
			Options: queue.Options{Command: "x", Timeout: time.Minute, Keep: 5}})
	}
	h, err := s.HoldQueue("a", false)
	if err != nil || h == nil {
		t.Fatalf("hold: %v", err)
	}
	defer h.Unlock()
	es, _ := h.Pending()
	c, err := h.Peek(es[0])
	if err != nil {
		t.Fatal(err)
	}
	defer h.Drop(c)
	long := "waiting for a build host: " + strings.Repeat("very ", 40) + "busy\x1b[2J\nsecond line"
	s.SetWaiting(c.Job, long)
	code, out, _ := invoke(t, map[string]string{"JOBQ_HOME": home}, "", "a")
	if code != 0 {
		t.Fatal(code)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("listing:\n%s", out)
	}
	waiting := lines[2] // the oldest job, listed last
	if !strings.Contains(waiting, "queued (0 ahead)  ") || !strings.Contains(waiting, "  waiting: waiting for a build host: very very") ||
		!strings.HasSuffix(waiting, "…") || strings.Contains(waiting, "second line") || strings.ContainsRune(out, 0x1b) {
		t.Errorf("row of the waiting job: %q", waiting)
	}
	if n := len([]rune(waiting[strings.Index(waiting, "waiting: ")+len("waiting: "):])); n != maxWaiting {
		t.Errorf("reason of %d runes shown, want %d", n, maxWaiting)
	}
	for _, col := range []string{"REF", "DURATION", "HOST"} {
		i := strings.Index(lines[0], col)
		for _, l := range lines[1:] {
			if len(l) <= i || l[i-1] != ' ' || l[i] == ' ' {
				t.Errorf("%s does not line up:\n%s", col, out)
			}
		}
	}
	// ID, then STATE as wide as "queued (0 ahead)", then REF.
	if i := strings.Index(lines[0], "REF"); i != len("ID  queued (0 ahead)  ") {
		t.Errorf("STATE is widened:\n%s", out)
	}
}

func TestUsageAndBadArguments(t *testing.T) {
	home := t.TempDir()
	vars := map[string]string{"JOBQ_HOME": home}
	tests := []struct {
		args []string
		code int
		says string
	}{
		{[]string{"a", "b", "c"}, 2, `unknown command "a" (commands: cancel, gc, hook, log, ls, retry, secret, web, worker; or jobq [REPO [ID]])`},
		{[]string{"frobnicate", "set", "x"}, 2, `unknown command "frobnicate" (commands: cancel, gc, hook, log, ls, retry, secret, web, worker; or jobq [REPO [ID]])`},
		{[]string{"frobnicate", "ls"}, 2, `unknown command "frobnicate", and "ls" is not a job ID (commands: cancel,`},
		{[]string{"ls"}, 2, "usage: jobq ls REPO\n"},
		{[]string{"cancel", "r"}, 2, "usage: jobq cancel REPO ID\n"},
		{[]string{"-n", "5"}, 2, "-n is for a repository's jobs: jobq REPO -n N"},
		{[]string{"r", "0", "-n", "5"}, 2, "-n is for a repository's jobs: jobq REPO -n N"},
		{[]string{"r", "-n", "-1"}, 2, `invalid argument "-1" for "-n, --limit" flag: not a number of jobs (0: all that are kept)`},
		{[]string{"r", "-n", "abc"}, 2, `invalid argument "abc" for "-n, --limit" flag: not a number of jobs`},
		{[]string{"r", "-n", ""}, 2, `not a number of jobs`},
		{[]string{"r", "-n"}, 2, `flag needs an argument`},
		{[]string{"ls", "r", "-n", "-99999999999999999999"}, 2, `not a number of jobs`},
		{[]string{"ls", "r", "-n", "1e3"}, 2, `not a number of jobs`},
		{[]string{"--bogus"}, 2, "unknown flag"},
		{[]string{"log", "r"}, 2, "usage: jobq log REPO ID"},
		{[]string{"log", "r", "x"}, 2, "is not a number"},
		{[]string{"../../etc", "0"}, 1, "no such repository"},
		{[]string{"r\x00x"}, 1, "no such repository"},
		{[]string{strings.Repeat("a", 5000)}, 1, "no such repository"},
		{[]string{"nosuch"}, 1, "no such repository"},
	}
	for _, tt := range tests {
		code, _, stderr := invoke(t, vars, "", tt.args...)
		if code != tt.code || !strings.Contains(stderr, strings.ReplaceAll(tt.says, `\n`, "\n")) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("jobq %q: exit %d, %q; want %d, %q", tt.args, code, stderr, tt.code, tt.says)
		}
	}
	// Nothing was created outside the data directory, nor for bad names.
	ents, _ := os.ReadDir(filepath.Join(home, "repos"))
	if len(ents) != 0 {
		t.Errorf("repos created: %v", ents)
	}
}

// Through gitolite an unknown command's answer names only the commands a
// user may run: the host's own are refused there.
func TestUnknownCommandThroughGitolite(t *testing.T) {
	vars := map[string]string{"JOBQ_HOME": t.TempDir(), "GL_USER": "alice"}
	code, out, stderr := invoke(t, vars, "", "frobnicate", "set", "x")
	want := "jobq: unknown command \"frobnicate\" (commands: cancel, log, ls, retry; or jobq [REPO [ID]])\n"
	if code != 2 || out != "" || stderr != want {
		t.Errorf("exit %d, %q%q; want 2, %q", code, out, stderr, want)
	}
}

// -n N lists the newest N jobs, at the top level as after ls; 0 and a
// number past any int list all of them.
func TestListLimit(t *testing.T) {
	home := t.TempDir()
	s, _ := queue.Open(home)
	for range 4 {
		s.Enqueue(&queue.Job{Repo: "r", Queue: "r", Ref: "refs/heads/main", NewRev: strings.Repeat("c", 40),
			Options: queue.Options{Command: "x", Timeout: time.Minute, Keep: 5}})
	}
	vars := map[string]string{"JOBQ_HOME": home}
	for _, tt := range []struct {
		args []string
		ids  string
		more bool
	}{
		{[]string{"r", "-n", "2"}, "3 2", true},
		{[]string{"-n", "1", "r"}, "3", true},
		{[]string{"ls", "-n", "3", "r"}, "3 2 1", true},
		{[]string{"r", "-n", "4"}, "3 2 1 0", false},
		{[]string{"r", "-n", "0"}, "3 2 1 0", false},
		{[]string{"r", "--limit=5"}, "3 2 1 0", false},
		{[]string{"r", "-n", "99999999999999999999"}, "3 2 1 0", false},
		{[]string{"ls", "r", "-n", "9223372036854775807"}, "3 2 1 0", false},
		{[]string{"r"}, "3 2 1 0", false},
	} {
		code, out, stderr := invoke(t, vars, "", tt.args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		more := strings.HasPrefix(lines[len(lines)-1], "(the newest")
		if more {
			lines = lines[:len(lines)-1]
		}
		var ids []string
		for _, l := range lines[1:] {
			ids = append(ids, strings.Fields(l)[0])
		}
		if code != 0 || stderr != "" || strings.Join(ids, " ") != tt.ids || more != tt.more {
			t.Errorf("jobq %q: exit %d, jobs %v, more %v; want %s, more %v\n%s%s", tt.args, code, ids, more, tt.ids, tt.more, out, stderr)
		}
	}
}

// A worker a hook starts runs other users' jobs later: nothing of the push
// or of the pusher's ssh session (which sshd's AcceptEnv lets a client
// fill: LANG, LC_*) may stay in its environment.
func TestWorkerEnvKeepsNothingOfThePusher(t *testing.T) {
	in := []string{"PATH=/usr/bin", "HOME=/home/git", "JOBQ_SLOTS=2", "JOBQ_HOME=/elsewhere",
		"GIT_DIR=.", "GL_USER=mallory", "SSH_CLIENT=10.0.0.1 1 22", "SSH_ORIGINAL_COMMAND=git-receive-pack x",
		"LANG=evil", "LC_ALL=evil", "LANGUAGE=evil", "TERM=evil"}
	got := workerEnv(in, "/data")
	want := []string{"JOBQ_HOME=/data", "PATH=/usr/bin", "HOME=/home/git", "JOBQ_SLOTS=2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("workerEnv = %q, want %q", got, want)
	}
}

// jobq starts only the programs beside it or on the PATH of the
// environment it was given, never a relative PATH entry (a pusher's
// repository is the hook's working directory).
func TestProgramLookup(t *testing.T) {
	dir := t.TempDir()
	decoy := filepath.Join(dir, "jobq-worker")
	if err := os.WriteFile(decoy, []byte("#!/bin/sh\nexit 97\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.Mkdir(plain, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plain, "jobq-worker"), []byte("not executable"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir) // the process's own PATH is not the app's
	tests := []struct {
		name, path, want string
	}{
		{"no PATH given", "", ""},
		{"on the given PATH", "/nonexistent:" + dir, decoy},
		{"relative entries skipped", ".:" + filepath.Base(dir), ""},
		{"not executable", plain, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &app{e: env{getenv: func(k string) string {
				if k == "PATH" {
					return tt.path
				}
				return ""
			}}}
			if tt.name == "relative entries skipped" {
				t.Chdir(filepath.Dir(dir))
			}
			got, err := a.program("jobq-worker")
			if got != tt.want || (tt.want == "") != (err != nil) {
				t.Fatalf("program = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
