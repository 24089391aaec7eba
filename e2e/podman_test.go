package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const ciScript = `echo "job $JOBQ_JOB_ID of $GL_REPO at $GIT_REF in $(pwd) as uid $(id -u)"
cat VERSION
echo to-stderr >&2
test -d .git && echo "has .git"
echo "HOME passed: $HOME"
`

// The main job: a push runs IMAGE ARGS in a rootless container with the
// pushed revision at /source; ssh jobq REPO ID shows its output.
func TestPodmanJobFromPush(t *testing.T) {
	r, rev := push(t, "pod", map[string]string{"ci.sh": ciScript, "VERSION": "pod-v1\n"})
	if !strings.Contains(r.Stderr, "jobq: queued pod job 0 in queue repo:pod") {
		t.Fatalf("push output:\n%s", r.Stderr)
	}
	log := follow(t, "alice", "pod", 0)
	if log.Code != 0 {
		t.Fatalf("jobq pod 0: %s", log)
	}
	for _, want := range []string{"revision " + rev, "runner podman: localhost/jobq-busybox:latest sh ci.sh",
		"job 0 of pod at refs/heads/master in /source as uid 0", "pod-v1", "to-stderr", "HOME passed: " + env.Home,
		"jobq: succeeded, exit code 0"} {
		if !strings.Contains(log.Stdout, want) {
			t.Errorf("log lacks %q:\n%s", want, log.Stdout)
		}
	}
	if strings.Contains(log.Stdout, "has .git") {
		t.Error("the checkout has .git")
	}
	checkNothingLeft(t, "pod")
}

// Synchronous: the container's output in the push's own output.
func TestPodmanSyncPush(t *testing.T) {
	r, _ := push(t, "podsync", map[string]string{"ci.sh": ciScript, "VERSION": "podsync-v1\n"})
	for _, want := range []string{"remote: podsync-v1", "remote: to-stderr", "remote: jobq: succeeded, exit code 0"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("push output lacks %q:\n%s", want, r.Stderr)
		}
	}
}

func readLog(repo string, id int) string {
	b, _ := os.ReadFile(filepath.Join(env.DataDir(), "repos", repo, strconv.Itoa(id), "log"))
	return string(b)
}

// containers lists the hosting account's containers labelled with repo.
func containers(t *testing.T, repo string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := env.AsUser(ctx, nil, "podman", "ps", "-a", "-q", "--filter", "label=jobq.repo="+repo)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func checkNothingLeft(t *testing.T, repo string) {
	t.Helper()
	// Clean-up runs once the result is recorded, which the caller saw:
	// give the worker a moment to finish it.
	var c string
	var m []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		c, m = containers(t, repo), accountCheckouts(t)
		if c == "" && len(m) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if c != "" {
		t.Errorf("containers left: %s", c)
	}
	if len(m) != 0 {
		t.Errorf("checkouts left: %v", m)
	}
}
