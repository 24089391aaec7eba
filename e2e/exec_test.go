package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type jobJSON struct {
	ID         int       `json:"id"`
	State      string    `json:"state"`
	Ref        string    `json:"ref"`
	NewRev     string    `json:"new_rev"`
	ExitCode   *int      `json:"exit_code"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Ahead      *int      `json:"ahead"`
	Seq        int64     `json:"seq"`
	Unreadable string    `json:"unreadable"`
}

func listJSON(t *testing.T, user, repo string) []jobJSON {
	t.Helper()
	r := ssh(user, "jobq", "ls", "-n", "0", repo, "--json")
	if r.Code != 0 {
		t.Fatalf("jobq ls %s --json: %s", repo, r)
	}
	var jobs []jobJSON
	if err := json.Unmarshal([]byte(r.Stdout), &jobs); err != nil {
		t.Fatalf("jobq ls --json: %v\n%s", err, r.Stdout)
	}
	return jobs
}

// The article's setup: a push to master runs run-deployment, which checks
// the pushed revision out and runs make -f Makefile.ci deploy.
func TestPushRunsArticleDeployment(t *testing.T) {
	makefile := "deploy:\n\t@echo deploying from $(CURDIR) && cat VERSION\n"
	r, rev := push(t, "demo", map[string]string{"Makefile.ci": makefile, "VERSION": "v-e2e-1\n"})
	if !strings.Contains(r.Stderr, "jobq: queued demo job 0 in queue repo:demo (0 ahead)") {
		t.Fatalf("push output lacks the queued line:\n%s", r.Stderr)
	}
	log := follow(t, "alice", "demo", 0)
	if log.Code != 0 {
		t.Fatalf("jobq demo 0: %s", log)
	}
	for _, want := range []string{"jobq: job 0 of demo, queue repo:demo, pushed by alice", "revision " + rev, "deploying from /tmp/", "v-e2e-1", "jobq: succeeded, exit code 0"} {
		if !strings.Contains(log.Stdout, want) {
			t.Errorf("log lacks %q:\n%s", want, log.Stdout)
		}
	}
	ls := ssh("alice", "jobq", "demo")
	if ls.Code != 0 || !strings.Contains(ls.Stdout, "succeeded") || !strings.Contains(ls.Stdout, rev[:8]) {
		t.Errorf("jobq demo: %s", ls)
	}
	// A reader may see and follow it too.
	if r := follow(t, "carol", "demo", 0); r.Code != 0 || !strings.Contains(r.Stdout, "v-e2e-1") {
		t.Errorf("carol: jobq demo 0: %s", r)
	}
	// The summary shows it to users who can read it.
	if r := ssh("alice", "jobq"); r.Code != 0 || !strings.Contains(r.Stdout, "demo") {
		t.Errorf("jobq: %s", r)
	}
}

// A user without read access learns nothing: the same answer as for a
// repository that does not exist, for every command.
func TestNoReadAccessLooksLikeNoRepository(t *testing.T) {
	push(t, "private", nil)
	if r := follow(t, "alice", "private", 0); r.Code != 0 || !strings.Contains(r.Stdout, "private-output") {
		t.Fatalf("alice: jobq private 0: %s", r)
	}
	for _, args := range [][]string{{"private"}, {"private", "0"}, {"ls", "private"}, {"log", "private", "0"}, {"cancel", "private", "0"}, {"retry", "private", "0"}} {
		denied := ssh("bob", append([]string{"jobq"}, args...)...)
		var other []string
		for _, a := range args {
			other = append(other, strings.ReplaceAll(a, "private", "nosuchrepo"))
		}
		missing := ssh("bob", append([]string{"jobq"}, other...)...)
		if denied.Code == 0 || strings.Contains(denied.Stdout+denied.Stderr, "private-output") {
			t.Errorf("bob: jobq %v: %s", args, denied)
		}
		if strings.ReplaceAll(denied.Stderr, "private", "X") != strings.ReplaceAll(missing.Stderr, "nosuchrepo", "X") || denied.Code != missing.Code {
			t.Errorf("bob: jobq %v answers differently for a denied and a missing repository:\n%s\n---\n%s", args, denied, missing)
		}
	}
	if r := ssh("bob", "jobq"); r.Code != 0 || strings.Contains(r.Stdout, "private") {
		t.Errorf("bob: jobq lists private: %s", r)
	}
}

func TestRefOutsideFilterQueuesNothing(t *testing.T) {
	before := len(listJSON(t, "alice", "demo"))
	r, _ := push(t, "demo", nil, "HEAD:refs/heads/feature/x")
	if strings.Contains(r.Stderr, "queued") {
		t.Errorf("a push to refs/heads/feature/x queued a job:\n%s", r.Stderr)
	}
	if after := len(listJSON(t, "alice", "demo")); after != before {
		t.Errorf("jobs: %d before, %d after", before, after)
	}
}

// Two repositories sharing a queue: their jobs run one at a time, in the
// order they were pushed.
func TestSharedQueueRunsInPushOrder(t *testing.T) {
	order := []string{"shared-a", "shared-b", "shared-a", "shared-b"}
	ids := map[string]int{}
	for _, repo := range order {
		r, _ := push(t, repo, nil)
		if !strings.Contains(r.Stderr, "in queue shared") {
			t.Fatalf("push %s: %s", repo, r.Stderr)
		}
		ids[repo]++
	}
	for repo, n := range ids {
		if r := follow(t, "alice", repo, n-1); r.Code != 0 {
			t.Fatalf("jobq %s %d: %s", repo, n-1, r)
		}
	}
	// Merge both repositories' jobs in push order and check the runs.
	a, b := listJSON(t, "alice", "shared-a"), listJSON(t, "alice", "shared-b")
	byRepo := map[string][]jobJSON{"shared-a": reverse(a), "shared-b": reverse(b)}
	var runs []jobJSON
	for _, repo := range order {
		runs = append(runs, byRepo[repo][0])
		byRepo[repo] = byRepo[repo][1:]
	}
	for i, j := range runs {
		if j.State != "succeeded" {
			t.Errorf("run %d: %s", i, j.State)
		}
		if i > 0 && j.StartedAt.Before(runs[i-1].FinishedAt) {
			t.Errorf("run %d (%s job %d) started at %s, before run %d finished at %s",
				i, order[i], j.ID, j.StartedAt, i-1, runs[i-1].FinishedAt)
		}
	}
}

func reverse(js []jobJSON) []jobJSON {
	out := make([]jobJSON, len(js))
	for i, j := range js {
		out[len(js)-1-i] = j
	}
	return out
}

// Without JOBQ_ASYNC the pusher sees the job's output live, then its result.
func TestSyncModeShowsOutputInPush(t *testing.T) {
	start := time.Now()
	r, _ := push(t, "syncrepo", nil)
	for _, want := range []string{"jobq: queued syncrepo job 0", "sync-output", "sync-done", "jobq: succeeded, exit code 0"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("push output lacks %q:\n%s", want, r.Stderr)
		}
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("a synchronous push returned after %s, before its 1 s job could end", d)
	}
}

// A synchronous pusher who hangs up does not take the job with them.
func TestSyncPusherDisconnects(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if r := env.Git(ctx, "alice", dir, "clone", "-q", env.URL("syncdrop"), "w"); r.Code != 0 {
		t.Fatal(r)
	}
	w := filepath.Join(dir, "w")
	os.WriteFile(filepath.Join(w, "f"), []byte("x"), 0o644)
	env.Git(ctx, "alice", w, "add", "f")
	env.Git(ctx, "alice", w, "commit", "-q", "-m", "x")
	cmd := env.GitCmd(ctx, "alice", w, "push", "origin", "HEAD:refs/heads/master")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var seen string
	for !strings.Contains(seen, "begin") {
		n, err := stderr.Read(buf)
		if err != nil {
			t.Fatalf("push ended before the job began: %v\n%s", err, seen)
		}
		seen += string(buf[:n])
	}
	cmd.Process.Kill() // the pusher goes away mid-job
	cmd.Wait()
	r := follow(t, "alice", "syncdrop", 0)
	if r.Code != 0 || !strings.Contains(r.Stdout, "end") || !strings.Contains(r.Stdout, "jobq: succeeded") {
		t.Errorf("jobq syncdrop 0 after the pusher left: %s", r)
	}
}

// A job that outlives JOBQ_TIMEOUT is stopped, SIGTERM-ignoring children
// and all, and ends timed-out.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	push(t, "slow", nil)
	start := time.Now()
	r := follow(t, "alice", "slow", 0)
	if r.Code != 1 || !strings.Contains(r.Stdout, "jobq: timed-out") {
		t.Fatalf("jobq slow 0: %s", r)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the 2 s timeout took %s to stop the job", d)
	}
	jobs := listJSON(t, "alice", "slow")
	if jobs[0].State != "timed-out" {
		t.Errorf("state %s, want timed-out", jobs[0].State)
	}
	if ps := userProcesses("sleep 300"); ps != "" {
		t.Errorf("processes left behind:\n%s", ps)
	}
}

// cancel and retry need write access; a reader is refused.
func TestCancelAndRetry(t *testing.T) {
	push(t, "longrun", nil)
	// Wait until it runs.
	deadline := time.Now().Add(30 * time.Second)
	for listJSON(t, "alice", "longrun")[0].State != "running" {
		if time.Now().After(deadline) {
			t.Fatal("job 0 never started")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := ssh("carol", "jobq", "cancel", "longrun", "0"); r.Code != 1 || !strings.Contains(r.Stderr, "write access") {
		t.Errorf("carol (read only) cancel: %s", r)
	}
	if r := ssh("alice", "jobq", "cancel", "longrun", "0"); r.Code != 0 || !strings.Contains(r.Stdout, "cancelled") {
		t.Fatalf("alice cancel: %s", r)
	}
	if r := follow(t, "alice", "longrun", 0); r.Code != 1 || !strings.Contains(r.Stdout, "started") || !strings.Contains(r.Stdout, "jobq: cancelled") {
		t.Errorf("jobq longrun 0: %s", r)
	}
	if ps := userProcesses("sleep 300"); ps != "" {
		t.Errorf("processes left behind:\n%s", ps)
	}
	if r := ssh("carol", "jobq", "retry", "longrun", "0"); r.Code != 1 {
		t.Errorf("carol (read only) retry: %s", r)
	}
	r := ssh("alice", "jobq", "retry", "longrun", "0")
	if r.Code != 0 || !strings.Contains(r.Stdout, "queued longrun job 1") {
		t.Fatalf("alice retry: %s", r)
	}
	jobs := listJSON(t, "alice", "longrun")
	if len(jobs) != 2 || jobs[0].NewRev != jobs[1].NewRev || jobs[0].Ref != jobs[1].Ref {
		t.Errorf("retry is not the same ref and revision: %+v", jobs)
	}
	if r := ssh("alice", "jobq", "cancel", "longrun", "1"); r.Code != 0 {
		t.Errorf("cancel the retry: %s", r)
	}
}

// A malformed option: one clear line, the push succeeds, nothing queued.
func TestMalformedOptionDoesNotFailPush(t *testing.T) {
	r, _ := push(t, "badopt", nil)
	if !strings.Contains(r.Stderr, `jobq: JOBQ_TIMEOUT="abc" is not a duration; no job queued`) {
		t.Errorf("push output:\n%s", r.Stderr)
	}
	if r := ssh("alice", "jobq", "badopt"); r.Code == 0 {
		t.Errorf("jobq badopt lists jobs: %s", r)
	}
}
