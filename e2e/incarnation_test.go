package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

func init() { confParts = append(confParts, incarnationConf) }

// Wild repositories: alice and bob may each create one, as gitolite's
// wild-repository users do.
const incarnationConf = `
repo wild/..*
    C   = alice bob
    RW+ = CREATOR
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "echo the-secret-is-42"

repo slowwild/..*
    C   = alice bob
    RW+ = CREATOR
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_REF_FILTER = "refs/heads/master"
    option ENV.JOBQ_COMMAND = "%[1]s/steps ran sleep:4"
`

// pushAs creates repo if need be (a wild repository is created by its
// first access) and pushes a new commit to its master as user.
func pushAs(t *testing.T, user, repo string) { pushRefAs(t, user, repo, "refs/heads/master") }

// pushRefAs is pushAs for any ref.
func pushRefAs(t *testing.T, user, repo, ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	steps := [][]string{
		{"clone", "-q", env.URL(repo), "w"},
		{"-C", "w", "commit", "-q", "--allow-empty", "-m", "by " + user},
		{"-C", "w", "push", "-q", "origin", "HEAD:" + ref},
	}
	for _, args := range steps {
		if r := env.Git(ctx, user, dir, args...); r.Code != 0 {
			t.Fatalf("%s: git %v: %s", user, args, r)
		}
	}
}

// alice's wild repository printed a secret in a job's log and was
// deleted; bob created one of the same name. bob must not read alice's log
// with "jobq NAME 0", nor see his IDs go on from hers in one list.
func TestHistoryBelongsToOneIncarnation(t *testing.T) {
	const repo = "wild/reborn"
	pushAs(t, "alice", repo)
	if r := follow(t, "alice", repo, 0); r.Code != 0 || !strings.Contains(r.Stdout, "the-secret-is-42") {
		t.Fatalf("alice's job: %s", r)
	}

	// Deleted, as an administrator (or gitolite's D command) deletes it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := env.AsUser(ctx, nil, "rm", "-rf", filepath.Join(env.Home, "repositories", repo+".git")); err != nil {
		t.Fatalf("delete %s: %v %s", repo, err, out)
	}
	missing := ssh("alice", "jobq", "no-such-repository-at-all")
	for _, user := range []string{"alice", "bob"} {
		r := ssh(user, "jobq", repo, "0")
		if strings.Contains(r.Stdout+r.Stderr, "secret") {
			t.Errorf("%s read the deleted repository's log: %s", user, r)
		}
	}

	// Created again by bob, who pushes his own job.
	pushAs(t, "bob", repo)
	var jobs []jobJSON
	testenv.WaitUntil(t, "bob's job ends", time.Minute, func() bool {
		jobs = listJSON(t, "bob", repo)
		return len(jobs) > 0 && jobs[0].ID > 0 && jobs[0].State == "succeeded"
	})
	if len(jobs) != 1 {
		t.Errorf("bob's listing shows the old incarnation's jobs: %+v", jobs)
	}
	if r := ssh("bob", "jobq", repo, "0"); strings.Contains(r.Stdout+r.Stderr, "secret") || r.Code == 0 {
		t.Errorf("bob read the old incarnation's log: %s", r)
	}
	var summary []struct {
		Repo   string         `json:"repo"`
		Counts map[string]int `json:"counts"`
	}
	r := ssh("bob", "jobq", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &summary); err != nil {
		t.Fatalf("jobq --json: %v: %s", err, r)
	}
	for _, row := range summary {
		if row.Repo == repo && (row.Counts["succeeded"] != 1 || len(row.Counts) != 1) {
			t.Errorf("bob's summary counts the old incarnation's jobs: %+v", row)
		}
	}
	// alice may not read bob's repository: the answer is the missing one's.
	r = ssh("alice", "jobq", repo)
	if r.Code != missing.Code || strings.ReplaceAll(r.Stderr, repo, "X") != strings.ReplaceAll(missing.Stderr, "no-such-repository-at-all", "X") {
		t.Errorf("alice on bob's repository: %s\nwant as missing: %s", r, missing)
	}
	// The old history is the administrator's, out of the ssh commands' reach.
	logs, _ := filepath.Glob(filepath.Join(env.DataDir(), "retired", "wild%2Freborn", "*", "0", "log"))
	if len(logs) != 1 {
		t.Fatalf("the old incarnation's log is not kept in retired/: %v", logs)
	}
	if b, _ := os.ReadFile(logs[0]); !strings.Contains(string(b), "the-secret-is-42") {
		t.Errorf("retired log: %q", b)
	}
	// jobq gc counts them for the administrator.
	out, err := env.AsUser(ctx, nil, filepath.Join(env.Bin, "jobq"), "gc")
	if err != nil || !strings.Contains(out, "deleted repositories kept in "+filepath.Join(env.DataDir(), "retired")) {
		t.Errorf("jobq gc: %v: %s", err, out)
	}
}

// deleteRepo deletes a repository as an administrator (or gitolite's D
// command) does.
func deleteRepo(t *testing.T, repo string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := env.AsUser(ctx, nil, "rm", "-rf", filepath.Join(env.Home, "repositories", repo+".git")); err != nil {
		t.Fatalf("delete %s: %v %s", repo, err, out)
	}
}

// readRecord reads a job record from the data directory, as the host's
// administrator would.
func readRecord(t *testing.T, repo string, id int) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.DataDir(), "repos", strings.ReplaceAll(repo, "/", "%2F"), fmt.Sprint(id), "job.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// History recorded before jobq kept incarnations must not pass to
// whoever creates the repository again.
func TestLegacyHistoryNotPassedOn(t *testing.T) {
	const repo = "wild/legacy"
	pushAs(t, "alice", repo)
	if r := follow(t, "alice", repo, 0); r.Code != 0 {
		t.Fatalf("alice's job: %s", r)
	}
	// Make it history from before incarnations were kept.
	rd := filepath.Join(env.DataDir(), "repos", "wild%2Flegacy")
	m := readRecord(t, repo, 0)
	delete(m, "incarnation")
	b, _ := json.Marshal(m)
	for _, err := range []error{
		os.Remove(filepath.Join(rd, "incarnation")),
		os.WriteFile(filepath.Join(rd, "0", "job.json"), b, 0o600),
		os.Remove(filepath.Join(env.Home, "repositories", repo+".git", "jobq-incarnation")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if r := ssh("alice", "jobq", repo, "0"); r.Code != 0 || !strings.Contains(r.Stdout, "the-secret-is-42") {
		t.Fatalf("alice no longer reads her own history: %s", r)
	}
	deleteRepo(t, repo)
	pushAs(t, "bob", repo)
	testenv.WaitUntil(t, "bob's job ends", time.Minute, func() bool {
		jobs := listJSON(t, "bob", repo)
		return len(jobs) > 0 && jobs[0].ID > 0 && jobs[0].State == "succeeded"
	})
	if jobs := listJSON(t, "bob", repo); len(jobs) != 1 {
		t.Errorf("bob's listing shows the old history: %+v", jobs)
	}
	if r := ssh("bob", "jobq", repo, "0"); strings.Contains(r.Stdout+r.Stderr, "secret") || r.Code == 0 {
		t.Errorf("bob read the old history's log: %s", r)
	}
}

// A job queued in a deleted repository must not run, with its pusher's
// options and variables, in the repository another user created under the
// same name (whose own push queued nothing, so nothing
// was retired).
func TestQueuedJobOfDeletedRepositoryDoesNotRun(t *testing.T) {
	const repo = "slowwild/queued"
	pushAs(t, "alice", repo)
	pushAs(t, "alice", repo)
	testenv.WaitUntil(t, "alice's first job runs", time.Minute, func() bool {
		jobs := listJSON(t, "alice", repo)
		return len(jobs) == 2 && jobs[1].State == "running" && jobs[0].State == "queued"
	})
	deleteRepo(t, repo)
	pushRefAs(t, "bob", repo, "refs/heads/other") // outside the filter: queues nothing
	var m map[string]any
	testenv.WaitUntil(t, "alice's second job ends", time.Minute, func() bool {
		m = readRecord(t, repo, 1)
		return m["state"] != "queued" && m["state"] != "running"
	})
	if m["state"] != "cancelled" || m["started_at"] != nil {
		t.Errorf("the deleted repository's queued job: %v, want cancelled before it started", m)
	}
}
