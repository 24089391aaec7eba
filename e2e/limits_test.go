package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
