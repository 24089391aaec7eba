package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

// Two users' repositories whose jobs run at the same time in the account's
// rootless Podman.
const isoConf = `
repo iso-a
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"

repo iso-b
    RW+ = bob
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"
`

func init() { confParts = append(confParts, isoConf) }

// pushScript commits ci.sh to a fresh clone of repo and pushes it as user.
func pushScript(t *testing.T, user, repo, script string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if r := env.Git(ctx, user, dir, "clone", "-q", env.URL(repo), "w"); r.Code != 0 {
		t.Fatalf("clone %s: %s", repo, r)
	}
	w := filepath.Join(dir, "w")
	if err := os.WriteFile(filepath.Join(w, "ci.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", "probe"}, {"push", "-q", "origin", "HEAD:refs/heads/master"}} {
		if r := env.Git(ctx, user, w, args...); r.Code != 0 {
			t.Fatalf("git %v: %s", args, r)
		}
	}
}

// Jobs of two users running at once on a plain host: each attacks the
// other through /proc, /dev/shm, loopback and its output, and every probe
// is refused; the two run with disjoint IDs.
func TestIsolationPlainHost(t *testing.T) {
	// a holds until the test releases it: neither job can see the other
	// here, so they cannot wait for each other.
	pushScript(t, "alice", "iso-a", testenv.ProbeScript(t, "a", "b", env.Port, 120))
	testenv.WaitUntil(t, "job a probed", 2*time.Minute, func() bool { return strings.Contains(readLog("iso-a", 0), "a probes done") })
	pushScript(t, "bob", "iso-b", testenv.ProbeScript(t, "b", "a", env.Port, 0))
	logB := follow(t, "bob", "iso-b", 0)
	if strings.Contains(readLog("iso-a", 0), "a end") {
		t.Fatal("job a ended before job b did: the two did not run at once")
	}
	co, err := os.ReadFile(filepath.Join(env.DataDir(), "repos", "iso-a", "0", "run", "checkout"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(string(co), "iso-release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	logA := follow(t, "alice", "iso-a", 0)
	mapA, mapB := testenv.CheckProbeLog(t, "a", logA.Stdout), testenv.CheckProbeLog(t, "b", logB.Stdout)
	// "0 HOST 4096;": the container's root is a different ID in each job,
	// and not the account itself.
	testenv.CheckDisjoint(t, mapA, mapB)
	// Both cleaned up, though the checkouts belong to the jobs' ranges
	// (checkNothingLeft gives the worker its moment after the result).
	for _, repo := range []string{"iso-a", "iso-b"} {
		checkNothingLeft(t, repo)
	}
	if _, err := os.Stat(string(co)); !os.IsNotExist(err) {
		t.Errorf("job a's checkout is left: %v", err)
	}
}
