package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

// A job that starts processes until it can start no more, under
// JOBQ_PIDS=100, and another user's repository.
const limitsConf = `
repo limits-bomb
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_TIMEOUT = "3m"
    option ENV.JOBQ_PIDS = "100"
    option ENV.JOBQ_MEMORY = "256m"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"

repo limits-uidbomb
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_TIMEOUT = "3m"
    option ENV.JOBQ_PIDS = "100"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"

repo limits-budget-other
    RW+ = bob
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"

repo limits-other
    RW+ = bob
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"
`

func init() { confParts = append(confParts, limitsConf) }

// A job that tries to start 2000 processes under JOBQ_PIDS=100 is held
// near 100, on a cgroup v1 host too (RLIMIT_NPROC); meanwhile another
// user's push over ssh succeeds and its job runs. The job is the OOM
// killer's first choice and has a bound on open files.
func TestLimitsProcessBomb(t *testing.T) {
	pushScript(t, "alice", "limits-bomb", testenv.BombScript)
	testenv.WaitUntil(t, "the bomb is held", 2*time.Minute, func() bool { return testenv.BombHeld.MatchString(readLog("limits-bomb", 0)) })
	logA := readLog("limits-bomb", 0)
	n, _ := strconv.Atoi(testenv.BombHeld.FindStringSubmatch(logA)[1])
	// The job's sh, the bomb's sh and the sleepers share the 100.
	if n > 100 || n < 50 {
		t.Errorf("the bomb started %d of %d processes under JOBQ_PIDS=100:\n%s", n, testenv.BombMax, logA)
	}
	if !strings.Contains(logA, "-n 4096; oom_score_adj 1000") {
		t.Errorf("no bound on open files or no OOM score:\n%s", logA)
	}
	// Where the cgroup cannot apply the limits (rootless Podman on cgroup
	// v1 or hybrid hosts, as the CI machines are), the log says what does
	// instead.
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil &&
		!strings.Contains(logA, "jobq: JOBQ_PIDS=100 is applied to each user ID of the job (RLIMIT_NPROC), not by the pids cgroup: rootless Podman cannot limit a container on cgroup v1\n") {
		t.Errorf("the log does not say what bounds the job's processes:\n%s", logA)
	}
	// Said once: each of jobq's lines before the container starts is
	// written once, whatever else the runner says after it.
	if n := strings.Count(logA, "jobq: JOBQ_PIDS=100 is applied"); n > 1 {
		t.Errorf("the log says %d times what bounds the job's processes:\n%s", n, logA)
	}
	if strings.Contains(logA, "JOBQ_MEMORY is not applied") && !strings.Contains(logA, "the job's memory is not capped, and the kernel's OOM killer takes the job first (oom_score_adj 1000)") {
		t.Errorf("the log does not say that the job's memory is not capped:\n%s", logA)
	}
	t.Logf("the bomb started %d of %d processes", n, testenv.BombMax)

	// While the bomb holds every process it may have, another user's push
	// over the real sshd succeeds, and its job runs.
	pushScript(t, "bob", "limits-other", "echo other job ran\n")
	logB := follow(t, "bob", "limits-other", 0)
	if logB.Code != 0 || !strings.Contains(logB.Stdout, "other job ran") || !strings.Contains(logB.Stdout, "jobq: succeeded") {
		t.Errorf("the other user's job beside the bomb: %s", logB)
	}
	if strings.Contains(readLog("limits-bomb", 0), "bomb released") {
		t.Fatal("the bomb ended before the other job did: the two did not run at once")
	}

	co, err := os.ReadFile(filepath.Join(env.DataDir(), "repos", "limits-bomb", "0", "run", "checkout"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(string(co), "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := follow(t, "alice", "limits-bomb", 0); !strings.Contains(r.Stdout, "bomb released") {
		t.Errorf("the bomb's end: %s", r)
	}
	for _, repo := range []string{"limits-bomb", "limits-other"} {
		checkNothingLeft(t, repo)
	}
}

// jobsNproc is the budget TestLimitsAllJobsTogether gives the service:
// below the 5 × 100 processes its job could have with JOBQ_PIDS for each
// of its user IDs.
const jobsNproc = 300

// A job that is root in its container and switches among 5 of its user
// IDs, each held to JOBQ_PIDS=100, is held to JOBQ_JOBS_NPROC with every
// other job (the Podman service's RLIMIT_NPROC, which bounds all the
// user namespaces it creates), not to 5 × 100; meanwhile another user's
// push over ssh succeeds, and its job runs once the bomb is released.
// One slot: a job that starts while another holds the whole budget fails
// to start (the runtime cannot make a thread), as docs/troubleshooting.md
// says; what the budget is for is that the account keeps the rest.
func TestLimitsAllJobsTogether(t *testing.T) {
	// The service jobq starts gets the budget; one an earlier test
	// started has the default.
	stopService(t)
	t.Cleanup(func() { stopService(t) })
	setRC(t, map[string]string{"JOBQ_JOBS_NPROC": strconv.Itoa(jobsNproc), "JOBQ_SLOTS": "1"})

	pushScript(t, "alice", "limits-uidbomb", testenv.UIDBombScript(5, 100))
	// Released however the test ends, and ended, before the service is
	// stopped.
	t.Cleanup(func() {
		release(t, "limits-uidbomb")
		follow(t, "alice", "limits-uidbomb", 0)
		checkNothingLeft(t, "limits-uidbomb")
	})
	testenv.WaitUntil(t, "the bomb is held", 2*time.Minute, func() bool { return testenv.BombHeld.MatchString(readLog("limits-uidbomb", 0)) })
	logA := readLog("limits-uidbomb", 0)
	n, _ := strconv.Atoi(testenv.BombHeld.FindStringSubmatch(logA)[1])
	users := strings.Fields(testenv.BombUsers.FindStringSubmatch(logA)[1])
	t.Logf("the bomb started %d processes as %d users (%v)", n, len(users), users)
	// More than one user ID's 100: the job did switch IDs, and what holds
	// it is not its own RLIMIT_NPROC.
	if len(users) < 2 || n <= 100 {
		t.Fatalf("the bomb did not start processes as several users:\n%s", logA)
	}
	// The service's own threads, conmon and the job's root processes take
	// their share of the budget.
	if n > jobsNproc {
		t.Errorf("the bomb started %d processes as %d users, over JOBQ_JOBS_NPROC=%d:\n%s", n, len(users), jobsNproc, logA)
	}
	svcLog, _ := os.ReadFile(filepath.Join(env.DataDir(), "podman-service.log"))
	if want := fmt.Sprintf("with RLIMIT_NPROC %d: all jobs' processes and threads together", jobsNproc); !strings.Contains(string(svcLog), want) {
		t.Errorf("the service's log does not say %q:\n%s", want, svcLog)
	}

	// The account's other processes are not held by the budget: another
	// user's push over the real sshd succeeds while the bomb holds it all.
	pushScript(t, "bob", "limits-budget-other", "echo other job ran\n")
	if strings.Contains(readLog("limits-uidbomb", 0), "bomb released") {
		t.Fatal("the bomb ended before the other push: the two did not run at once")
	}

	release(t, "limits-uidbomb")
	if r := follow(t, "alice", "limits-uidbomb", 0); !strings.Contains(r.Stdout, "bomb released") {
		t.Errorf("the bomb's end: %s", r)
	}
	logB := follow(t, "bob", "limits-budget-other", 0)
	if logB.Code != 0 || !strings.Contains(logB.Stdout, "other job ran") || !strings.Contains(logB.Stdout, "jobq: succeeded") {
		t.Errorf("the other user's job: %s", logB)
	}
	for _, repo := range []string{"limits-uidbomb", "limits-budget-other"} {
		checkNothingLeft(t, repo)
	}
}

// release ends a bomb's hold: it creates "release" in the checkout of the
// repository's job 0, if the job is still running.
func release(t *testing.T, repo string) {
	t.Helper()
	co, err := os.ReadFile(filepath.Join(env.DataDir(), "repos", repo, "0", "run", "checkout"))
	if errors.Is(err, os.ErrNotExist) {
		return // it ended
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(string(co), "release"), nil, 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}

// stopService stops the hosting account's Podman service, if it runs (a
// worker starts the next one), and waits until it has exited.
func stopService(t *testing.T) {
	t.Helper()
	out, _ := exec.Command("pgrep", "-u", env.User, "-f", "podman system service").Output()
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Fatal(err)
		}
	}
	testenv.WaitUntil(t, "the Podman service exits", 2*time.Minute, func() bool { return userProcesses("podman system service") == "" })
}
