package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

func init() { confParts = append(confParts, accessConf, retryOptsConf) }

// accessConf: carol may push dev only (and so read everything), bob
// nothing at all.
const accessConf = `
repo perref
    RW+     = alice
    RW  dev = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps started sleep:300"

repo rollback
    RW+     = alice
    RW  dev = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps hello"

repo jsonview
    RW+ = alice
    R   = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps hello"
    option ENV.JOBQ_PASS_ENV = "SSH_CLIENT"
`

// retryOptsConf is replaced while TestRetryUsesCurrentOptions runs.
const retryOptsConf = `
repo retryopts
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps first-options"
`

// gitoliteConf is the configuration setup pushed, with part replaced by
// with.
func gitoliteConf(part, with string) string {
	var all strings.Builder
	for _, c := range confParts {
		if c == part {
			c = with
		}
		all.WriteString(strings.ReplaceAll(c, "%[1]s", env.Bin) + "\n")
	}
	return all.String()
}

// reconfigure pushes the configuration with part replaced by with; the
// test's end restores it.
func reconfigure(t *testing.T, part, with string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.Configure(ctx, gitoliteConf(part, with)); err != nil {
		t.Fatal(err)
	}
}

func restoreConf(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.Configure(ctx, gitoliteConf("", "")); err != nil {
		t.Errorf("restore the gitolite configuration: %v", err)
	}
}

// sameAsMissing checks that user's answer to args, which name repo, is
// byte for byte the answer for a repository that does not exist.
func sameAsMissing(t *testing.T, user, repo string, args ...string) {
	t.Helper()
	r := ssh(user, append([]string{"jobq"}, args...)...)
	other := slices.Clone(args)
	for i := range other {
		if other[i] == repo {
			other[i] = "nosuchrepo"
		}
	}
	m := ssh(user, append([]string{"jobq"}, other...)...)
	want := fmt.Sprintf("jobq: %q: no such repository with jobs, or no access\n", repo)
	if r.Code != 1 || r.Stderr != want || r.Stdout != "" || m.Code != r.Code || m.Stdout != r.Stdout ||
		strings.ReplaceAll(m.Stderr, "nosuchrepo", repo) != r.Stderr {
		t.Errorf("%s: jobq %s is not the answer for a missing repository:\n%s\n---\n%s", user, strings.Join(args, " "), r, m)
	}
}

// Cancel needs W on the job's own ref: carol, who may push dev only, may
// not stop a master job; a reader is told what is missing; bob, who may
// not read the repository, gets a missing repository's answer.
func TestCancelNeedsWriteOnTheJobsRef(t *testing.T) {
	push(t, "perref", nil) // job 0, master: runs for 300 s
	testenv.WaitUntil(t, "perref job 0 runs", time.Minute, func() bool { return listJSON(t, "alice", "perref")[0].State == "running" })
	push(t, "perref", nil, "HEAD:refs/heads/dev") // job 1, dev: queued behind it
	defer ssh("alice", "jobq", "cancel", "perref", "0")

	r := ssh("carol", "jobq", "cancel", "perref", "0")
	if r.Code != 1 || r.Stderr != "jobq: carol may not cancel perref job 0: that needs write access (W) on refs/heads/master\n" {
		t.Errorf("carol cancels a master job: %s", r)
	}
	if j := listJSON(t, "alice", "perref"); j[len(j)-1].State != "running" {
		t.Errorf("job 0 is %s after carol's cancel", j[len(j)-1].State)
	}
	sameAsMissing(t, "bob", "perref", "cancel", "perref", "0")
	sameAsMissing(t, "bob", "perref", "cancel", "perref", "1")
	sameAsMissing(t, "bob", "perref", "cancel", "perref", "77")

	if r := ssh("carol", "jobq", "cancel", "perref", "1"); r.Code != 0 || r.Stdout != "jobq: perref job 1 cancelled\n" {
		t.Errorf("carol cancels a dev job: %s", r)
	}
	if r := ssh("alice", "jobq", "cancel", "perref", "0"); r.Code != 0 || r.Stdout != "jobq: perref job 0 cancelled\n" {
		t.Errorf("alice cancels a master job: %s", r)
	}
}

// Retry needs W on the job's ref, and + where the ref has moved on since
// (running the job's revision again is a rollback, as a force push is).
func TestRetryNeedsWriteAndRewind(t *testing.T) {
	_, master := push(t, "rollback", nil)                         // job 0, master
	_, devOld := push(t, "rollback", nil, "HEAD:refs/heads/dev")  // job 1, dev
	_, devNow := push(t, "rollback", nil, "+HEAD:refs/heads/dev") // job 2: dev moved on
	waitFinal(t, "rollback", 3)
	if devOld == devNow {
		t.Fatal("dev did not move")
	}
	for _, tt := range []struct {
		user, id string
		code     int
		says     string
	}{
		{"carol", "0", 1, "jobq: carol may not retry rollback job 0: that needs write access (W) on refs/heads/master\n"},
		{"carol", "1", 1, fmt.Sprintf("jobq: carol may not retry rollback job 1: refs/heads/dev points at %s, so running %s again is a rollback; that needs force-push access (+) on it\n", devNow[:8], devOld[:8])},
		{"carol", "2", 0, "jobq: queued rollback job 3 in queue repo:rollback (0 ahead), a retry of job 2\n"},
		{"alice", "1", 0, "jobq: queued rollback job 4 in queue repo:rollback"},
		{"alice", "0", 0, "jobq: queued rollback job 5 in queue repo:rollback"},
	} {
		r := ssh(tt.user, "jobq", "retry", "rollback", tt.id)
		if r.Code != tt.code || !strings.Contains(r.Stdout+r.Stderr, tt.says) {
			t.Errorf("%s: jobq retry rollback %s: %s\nwant %d, %q", tt.user, tt.id, r, tt.code, tt.says)
		}
	}
	sameAsMissing(t, "bob", "rollback", "retry", "rollback", "1")
	sameAsMissing(t, "bob", "rollback", "retry", "rollback", "99")
	jobs := waitFinal(t, "rollback", 6)
	revs := map[int]string{}
	for _, j := range jobs {
		revs[j.ID] = j.NewRev
	}
	if revs[3] != devNow || revs[4] != devOld || revs[5] != master {
		t.Errorf("retries ran %v; want 3: %s, 4: %s, 5: %s", revs, devNow, devOld, master)
	}
}

// Retry runs with the repository's options now, not those recorded with
// the job; a repository that no longer runs jobq, or would not queue the
// ref, queues nothing.
func TestRetryUsesCurrentOptions(t *testing.T) {
	push(t, "retryopts", nil)
	if r := follow(t, "alice", "retryopts", 0); r.Code != 0 || !strings.Contains(r.Stdout, "jobq: runner exec: ") || !strings.Contains(r.Stdout, "\nfirst-options\n") {
		t.Fatalf("jobq retryopts 0: %s", r)
	}
	defer restoreConf(t)
	reconfigure(t, retryOptsConf, `
repo retryopts
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest echo second-options"
`)
	if r := ssh("alice", "jobq", "retry", "retryopts", "0"); r.Code != 0 || !strings.Contains(r.Stdout, "queued retryopts job 1") {
		t.Fatalf("retry: %s", r)
	}
	r := follow(t, "alice", "retryopts", 1)
	if r.Code != 0 || !strings.Contains(r.Stdout, "jobq: runner podman: localhost/jobq-busybox:latest echo second-options\n") || !strings.Contains(r.Stdout, "\nsecond-options\n") {
		t.Errorf("the retry did not run with the options of now: %s", r)
	}
	for _, tt := range []struct{ name, conf, says string }{
		{"no hook", `
repo retryopts
    RW+ = alice
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest true"
`, "jobq: retryopts no longer runs jobq (no option hook.post-receive = jobq); no job queued\n"},
		{"no command", `
repo retryopts
    RW+ = alice
    option hook.post-receive = jobq
`, "jobq: retryopts: JOBQ_COMMAND is not set; no job queued\n"},
		{"filtered out", `
repo retryopts
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest true"
    option ENV.JOBQ_REF_FILTER = "refs/tags/*"
`, "jobq: retryopts: JOBQ_REF_FILTER=\"refs/tags/*\" no longer selects refs/heads/master; no job queued\n"},
	} {
		reconfigure(t, retryOptsConf, tt.conf)
		if r := ssh("alice", "jobq", "retry", "retryopts", "0"); r.Code != 1 || r.Stderr != tt.says || r.Stdout != "" {
			t.Errorf("%s: retry: %s\nwant %q", tt.name, r, tt.says)
		}
	}
	if n := len(listJSON(t, "alice", "retryopts")); n != 2 {
		t.Errorf("%d jobs, want 2", n)
	}
}

// worker, gc and hook are the host's commands: through ssh they are
// refused in one line with exit status 2, and nothing is created or left
// running.
func TestHostCommandsRefusedOverSSH(t *testing.T) {
	before := dataDirEntries(t)
	for _, user := range []string{"bob", "alice"} {
		for _, args := range [][]string{{"gc"}, {"worker", "--queue", "anything"}, {"worker", "--all"}, {"hook"}, {"gc", "--help"}, {"hook", "--bogus"},
			{"secret", "ls"}, {"secret", "set", "x"}, {"secret", "rm", "x"}, {"secret", "ls", "--json"}} {
			// A worker that was not refused would stay: do not wait for it.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			r := env.SSH(ctx, user, append([]string{"jobq"}, args...)...)
			cancel()
			want := fmt.Sprintf("jobq: %s is the host's own command, not available through ssh\n", args[0])
			if r.Code != 2 || r.Stderr != want || r.Stdout != "" {
				t.Errorf("%s: jobq %s: %s", user, strings.Join(args, " "), r)
			}
		}
	}
	if after := dataDirEntries(t); !slices.Equal(before, after) {
		t.Errorf("the data directory changed:\nbefore %v\nafter  %v", before, after)
	}
	if _, err := os.Stat(filepath.Join(env.DataDir(), "queues", "anything")); err == nil {
		t.Error("queues/anything was created")
	}
	if ps := userProcesses("drain --all") + userProcesses("drain --queue anything"); ps != "" {
		t.Errorf("workers left running:\n%s", ps)
	}
}

// --json shows a reader what the listing shows, and nothing of the host:
// not the job's environment (JOBQ_PASS_ENV values), paths, options,
// connection or worker.
func TestJSONShowsNothingOfTheHost(t *testing.T) {
	push(t, "jsonview", nil)
	waitFinal(t, "jsonview", 1)
	for _, args := range [][]string{{"ls", "jsonview", "--json"}, {"jsonview", "--json"}, {"--json"}} {
		r := ssh("carol", append([]string{"jobq"}, args...)...)
		if r.Code != 0 {
			t.Fatalf("jobq %s: %s", strings.Join(args, " "), r)
		}
		for _, leak := range []string{"SSH_CLIENT", "127.0.0.1", env.Home, env.Bin, `"env"`, `"git_dir"`, `"options"`, `"worker"`, `"connection"`, `"seq"`} {
			if strings.Contains(r.Stdout, leak) {
				t.Errorf("jobq %s shows %s:\n%s", strings.Join(args, " "), leak, r.Stdout)
			}
		}
	}
	j := listJSON(t, "carol", "jsonview")
	if len(j) != 1 || j[0].State != "succeeded" || j[0].ExitCode == nil || j[0].Ref != "refs/heads/master" || len(j[0].NewRev) != 40 || j[0].FinishedAt.IsZero() {
		t.Errorf("--json lacks what the listing shows: %+v", j)
	}
}

// recordedSeq is a job's place in its queue, read from its record: users
// are not shown it.
func recordedSeq(t *testing.T, repo string, id int) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.DataDir(), "repos", repo, strconv.Itoa(id), "job.json"))
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Seq int64 `json:"seq"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	return j.Seq
}
