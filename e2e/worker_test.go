package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
	"github.com/jobq/jobq/queue"
)

func init() { confParts = append(confParts, workerConf) }

// The worker's tests: clean-up after what a container did to its checkout,
// one pusher and the host's slots, a filesystem short of space.
const workerConf = `
repo wk-clean
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"

repo wk-bob-a wk-bob-b wk-alice
    RW+ = alice bob
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/gate %[1]s/gates"

repo wk-disk
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps ran"
`

// gate prints "started", waits until the test creates DIR/$GL_REPO-$JOBQ_JOB_ID,
// then ends: a job that runs exactly as long as the test wants.
const gate = `#!/bin/sh
echo started
while [ ! -e "$1/$GL_REPO-$JOBQ_JOB_ID" ]; do sleep 0.1; done
echo done
`

// setRC sets variables for the processes gitolite starts (hooks, and the
// workers they start) in the hosting account's ~/.gitolite.rc, until the
// test ends.
func setRC(t *testing.T, vars map[string]string) {
	t.Helper()
	rc := filepath.Join(env.Home, ".gitolite.rc")
	old, err := os.ReadFile(rc)
	if err != nil {
		t.Fatal(err)
	}
	var add strings.Builder
	for k, v := range vars {
		fmt.Fprintf(&add, "$ENV{%s} = '%s';\n", k, v)
	}
	if err := os.WriteFile(rc, append([]byte(add.String()), old...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(rc, old, 0o644); err != nil {
			t.Error(err)
		}
	})
}

// accountCheckouts lists the checkouts in the temporary directory that
// belong to the hosting account or to its subordinate IDs (a job may chown
// its checkout): only this test run's.
func accountCheckouts(t *testing.T) []string {
	t.Helper()
	owners := func(uid int) bool { return uid == env.UID }
	b, err := os.ReadFile("/etc/subuid")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) == 3 && (f[0] == env.User || f[0] == strconv.Itoa(env.UID)) {
			first, _ := strconv.Atoi(f[1])
			n, _ := strconv.Atoi(f[2])
			prev := owners
			owners = func(uid int) bool { return prev(uid) || uid >= first && uid < first+n }
		}
	}
	m, _ := filepath.Glob(filepath.Join(os.TempDir(), "jobq-checkout-*"))
	var mine []string
	for _, p := range m {
		if fi, err := os.Lstat(p); err == nil && owners(int(fi.Sys().(*syscall.Stat_t).Uid)) {
			mine = append(mine, p)
		}
	}
	return mine
}

// workerGone waits until no worker drains repo's own queue: until no process holds
// its worker.lock. /proc/locks tells without taking the lock, which a
// hook's try would then find taken.
func workerGone(t *testing.T, repo string) {
	t.Helper()
	q := queue.DefaultQueue(repo)
	fi, err := os.Stat(filepath.Join(env.DataDir(), "queues", q, "worker.lock"))
	if err != nil {
		t.Fatal(err)
	}
	ino := ":" + strconv.FormatUint(fi.Sys().(*syscall.Stat_t).Ino, 10) + " "
	testenv.WaitUntil(t, "the worker of "+q+" exits", 2*time.Minute, func() bool {
		locks, err := os.ReadFile("/proc/locks")
		return err == nil && !strings.Contains(string(locks), ino)
	})
}

// A job that shuts its checkout's directories (chmod 000) and gives
// entries to subordinate IDs (chown in a rootless container), the checkout
// itself last: clean-up removes all of it, and no record in the job's
// directory points at anything.
func TestCleanupAfterHostileJob(t *testing.T) {
	before := accountCheckouts(t)
	script := `mkdir shut && echo x >shut/f && chmod 000 shut
echo y >given && chown 1000:1000 given
mkdir sub && echo z >sub/f && chown -R 1000:1000 sub && chmod 000 sub
echo changed-the-checkout
chown 1000:1000 . && chmod 000 .
`
	push(t, "wk-clean", map[string]string{"ci.sh": script})
	if r := follow(t, "alice", "wk-clean", 0); r.Code != 0 || !strings.Contains(r.Stdout, "changed-the-checkout") {
		t.Fatalf("jobq wk-clean 0: %s", r)
	}
	workerGone(t, "wk-clean")
	var left []string
	for _, p := range accountCheckouts(t) {
		if !slices.Contains(before, p) {
			left = append(left, p)
		}
	}
	if len(left) != 0 {
		t.Errorf("checkouts left: %v", left)
	}
	if c := containers(t, "wk-clean"); c != "" {
		t.Errorf("containers left: %s", c)
	}
	jobDir := filepath.Join(env.DataDir(), "repos", "wk-clean", "0")
	for _, rec := range []string{"run/checkout", "run/container", "checkout", "container"} {
		if b, err := os.ReadFile(filepath.Join(jobDir, rec)); err == nil {
			t.Errorf("record %s left, naming %s", rec, b)
		}
	}
}

// bob's two long jobs in two repositories take one of the two slots,
// one after the other; alice's job, pushed after them, runs at once.
func TestOnePusherCannotTakeEverySlot(t *testing.T) {
	gates := filepath.Join(env.Bin, "gates")
	if err := os.MkdirAll(gates, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(env.Bin, "gate"), []byte(gate), 0o755); err != nil {
		t.Fatal(err)
	}
	open := func(repo string) {
		if err := os.WriteFile(filepath.Join(gates, repo+"-0"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Whatever happens, no job is left waiting on a gate.
	defer func() {
		for _, r := range []string{"wk-bob-a", "wk-bob-b", "wk-alice"} {
			open(r)
		}
	}()
	setRC(t, map[string]string{"JOBQ_SLOTS": "2"}) // JOBQ_USER_SLOTS: its default, 1
	pushAs(t, "bob", "wk-bob-a")
	pushAs(t, "bob", "wk-bob-b")
	state := func(repo string) jobJSON { return listJSON(t, "bob", repo)[0] }
	var first, second string
	testenv.WaitUntil(t, "one of bob's jobs runs", time.Minute, func() bool {
		for _, pair := range [][2]string{{"wk-bob-a", "wk-bob-b"}, {"wk-bob-b", "wk-bob-a"}} {
			if state(pair[0]).State == "running" {
				first, second = pair[0], pair[1]
				return true
			}
		}
		return false
	})
	pushAs(t, "alice", "wk-alice")
	testenv.WaitUntil(t, "alice's job runs beside bob's", time.Minute, func() bool {
		return strings.Contains(readLog("wk-alice", 0), "started")
	})
	testenv.WaitUntil(t, "bob's other job says why it waits", time.Minute, func() bool {
		r := ssh("bob", "jobq", second)
		return strings.Contains(r.Stdout, "queued (0 ahead)  ") && strings.HasSuffix(r.Stdout, "  waiting: its pusher runs 1 job, JOBQ_USER_SLOTS=1\n")
	})
	open("wk-alice")
	if j := waitFinal(t, "wk-alice", 1)[0]; j.State != "succeeded" {
		t.Errorf("alice's job: %+v", j)
	}
	if s := state(first).State; s != "running" {
		t.Fatalf("bob's first job is %s before its gate opened", s)
	}
	if s := state(second).State; s != "queued" {
		t.Errorf("bob's second job is %s while his first runs", s)
	}
	open(first)
	testenv.WaitUntil(t, "bob's second job runs", time.Minute, func() bool { return state(second).State == "running" })
	open(second)
	a, b := waitFinal(t, first, 1)[0], waitFinal(t, second, 1)[0]
	if a.State != "succeeded" || b.State != "succeeded" || b.StartedAt.Before(a.FinishedAt) {
		t.Errorf("bob's jobs overlapped or failed:\n%+v\n%+v", a, b)
	}
}

// While the data directory's filesystem has less free space than
// JOBQ_MIN_FREE, a push still queues; the job waits and the listing and its
// log say why; cancel ends it.
func TestJobsWaitForSpace(t *testing.T) {
	setRC(t, map[string]string{"JOBQ_MIN_FREE": "100000g"}) // more than any disk here
	r, _ := push(t, "wk-disk", nil)
	if !strings.Contains(r.Stderr, "jobq: queued wk-disk job 0") {
		t.Fatalf("push: %s", r)
	}
	r, _ = push(t, "wk-disk", nil)
	if !strings.Contains(r.Stderr, "jobq: queued wk-disk job 1 in queue repo:wk-disk (1 ahead)") {
		t.Fatalf("second push: %s", r)
	}
	testenv.WaitUntil(t, "the listing says why job 0 waits", time.Minute, func() bool {
		ls := ssh("alice", "jobq", "wk-disk").Stdout
		return strings.Contains(ls, "queued (0 ahead)  ") && strings.Contains(ls, "  waiting: ") && strings.Contains(ls, " free, JOBQ_MIN_FREE=100000g\n")
	})
	for _, id := range []string{"0", "1"} {
		if r := ssh("alice", "jobq", "cancel", "wk-disk", id); r.Code != 0 || !strings.Contains(r.Stdout, "cancelled") {
			t.Errorf("cancel %s: %s", id, r)
		}
	}
	workerGone(t, "wk-disk")
	for _, j := range listJSON(t, "alice", "wk-disk") {
		if j.State != "cancelled" || !j.StartedAt.IsZero() {
			t.Errorf("job %d: %+v", j.ID, j)
		}
	}
	log := follow(t, "alice", "wk-disk", 0)
	if !strings.Contains(log.Stdout, "jobq: job 0 waits to start: ") || !strings.Contains(log.Stdout, "JOBQ_MIN_FREE=100000g") ||
		!strings.Contains(log.Stdout, "cancelled before it started") || strings.Contains(log.Stdout, "ran") {
		t.Errorf("jobq wk-disk 0: %s", log)
	}
}
