package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/queue"
)

// --json shows what the listing shows, and nothing of the host: no
// environment values, paths, options, connections or pids.
func TestListJSONShowsNothingOfTheHost(t *testing.T) {
	home := t.TempDir()
	s, _ := queue.Open(home)
	gitDir := filepath.Join(t.TempDir(), "srv", "git", "secret-place", "r.git")
	os.MkdirAll(gitDir, 0o755)
	for range 2 {
		j := &queue.Job{Repo: "r", Queue: "q", Ref: "refs/heads/main", OldRev: strings.Repeat("a", 40), NewRev: strings.Repeat("b", 40),
			User: "alice", GitDir: gitDir, Env: map[string]string{"DEPLOY_TOKEN": "s3cret"},
			Options: queue.Options{Command: "img deploy --token-file /etc/hidden", Connection: "ssh://build@10.1.2.3/run/podman.sock",
				Network: "host", PassEnv: []string{"DEPLOY_TOKEN"}, Timeout: time.Minute, Keep: 5}}
		if _, err := s.Enqueue(j); err != nil {
			t.Fatal(err)
		}
	}
	code := 0
	s.Update("r", 0, func(j *queue.Job) error {
		j.State, j.Worker, j.ExitCode, j.Error = queue.Failed, 4242, &code, "runner: /run/user/1000/podman/podman.sock: refused"
		j.StartedAt = j.QueuedAt.Add(time.Second)
		j.FinishedAt = j.StartedAt.Add(1500 * time.Millisecond)
		return nil
	})
	code, out, stderr := invoke(t, map[string]string{"JOBQ_HOME": home}, "", "ls", "r", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, leak := range []string{"s3cret", "DEPLOY_TOKEN", "secret-place", "10.1.2.3", "/etc/hidden", "4242", "podman.sock", "host", "git_dir", "options", "worker", "env"} {
		if strings.Contains(out, leak) {
			t.Errorf("--json shows %q:\n%s", leak, out)
		}
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("%v:\n%s", err, out)
	}
	allowed := []string{"id", "state", "ahead", "queue", "ref", "old_rev", "new_rev", "user", "retry_of",
		"queued_at", "started_at", "finished_at", "duration_ms", "exit_code", "unreadable", "origin"}
	for _, row := range rows {
		for k := range row {
			if !slices.Contains(allowed, k) {
				t.Errorf("--json has key %q", k)
			}
		}
	}
	if rows[1]["duration_ms"] != 1500.0 || rows[1]["exit_code"] != 0.0 || rows[0]["ahead"] == nil || rows[1]["state"] != "failed" || rows[1]["origin"] != "push" {
		t.Errorf("--json lacks what the table shows:\n%s", out)
	}
}

// hostile is job output that acts on a terminal: a title, a cleared
// screen, a fake result line, a raw and a UTF-8 CSI, and hidden text left
// on for jobq's own result line.
const hostile = "jobq: job 0 of r\n\x1b]0;TITLE\x07\x1b[2J\x1b[31mred\x1b[0m\njobq: succeeded, exit code 0\n\x9b2J\u009b2J\rover\n\x1b[8m\njobq: failed, exit code 1, after 1s\n"

const hostileShown = "jobq: job 0 of r\n^[]0;TITLE^G^[[2J\x1b[31mred\x1b[0m\njobq: succeeded, exit code 0\n\\x9b2J\\u009b2J^Mover\n\x1b[8m\n\x1b[0mjobq: failed, exit code 1, after 1s\n"

// A job's log reaches the terminal with control characters made visible
// and colour kept; --raw gives the bytes.
func TestLogIsTerminalSafe(t *testing.T) {
	home := t.TempDir()
	s, _ := queue.Open(home)
	j := &queue.Job{Repo: "r", Queue: "r", Ref: "refs/heads/main", NewRev: strings.Repeat("b", 40), Options: queue.Options{Command: "x", Timeout: time.Minute, Keep: 5}}
	s.Enqueue(j)
	s.Update("r", 0, func(j *queue.Job) error {
		j.State, j.StartedAt, j.FinishedAt = queue.Failed, time.Now(), time.Now()
		return nil
	})
	if err := os.WriteFile(s.LogPath("r", 0), []byte(hostile), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"JOBQ_HOME": home}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"r", "0"}, 1, hostileShown},
		{[]string{"log", "r", "0"}, 1, hostileShown},
		{[]string{"log", "-f", "r", "0"}, 1, hostileShown},
		{[]string{"r", "0", "--raw"}, 1, hostile},
		{[]string{"log", "--raw", "r", "0"}, 1, hostile},
		{[]string{"r", "--raw"}, 2, ""},
	}
	for _, tt := range tests {
		code, out, stderr := invoke(t, vars, "", tt.args...)
		if code != tt.code || out != tt.want {
			t.Errorf("jobq %q: exit %d\n%q\nwant %d\n%q\n%s", tt.args, code, out, tt.code, tt.want, stderr)
		}
	}
}

// A listing shows a ref name terminal-safe too (git allows C1 controls
// in one, and a plain git server passes it on).
func TestListShowsRefSafely(t *testing.T) {
	home := t.TempDir()
	s, _ := queue.Open(home)
	s.Enqueue(&queue.Job{Repo: "r", Queue: "r", Ref: "refs/heads/x\u009b2J", NewRev: strings.Repeat("b", 40), Options: queue.Options{Command: "x", Timeout: time.Minute, Keep: 5}})
	code, out, _ := invoke(t, map[string]string{"JOBQ_HOME": home}, "", "r")
	if code != 0 || strings.Contains(out, "\u009b") || !strings.Contains(out, `refs/heads/x\u009b2J`) {
		t.Errorf("exit %d:\n%q", code, out)
	}
}

// cancel waits for a running job to stop only while its caller waits:
// interrupted, it says the job still runs and returns.
func TestCancelHonoursItsContext(t *testing.T) {
	home := t.TempDir()
	s, _ := queue.Open(home)
	s.Enqueue(&queue.Job{Repo: "r", Queue: "r", Ref: "refs/heads/main", NewRev: strings.Repeat("b", 40), Options: queue.Options{Command: "x", Timeout: time.Minute, Keep: 5}})
	// Running, with a live worker (this process) that never stops it.
	s.Update("r", 0, func(j *queue.Job) error {
		j.State, j.StartedAt, j.Worker = queue.Running, time.Now(), os.Getpid()
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	vars := map[string]string{"JOBQ_HOME": home}
	e := env{args: []string{"jobq", "cancel", "r", "0"}, stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return vars[k] }, lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
	code := run(ctx, e)
	if code != 1 || errb.String() != "jobq: r job 0: cancel requested; still running when jobq was interrupted\n" {
		t.Errorf("exit %d: %q", code, errb.String())
	}
	if j, _ := s.Job("r", 0); j.State != queue.Running {
		t.Errorf("state %s", j.State)
	}
}
