package e2e

import (
	"os"
	"path/filepath"
	"regexp"
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

// bombScript starts at most bombMax sleeping processes, each counted in a
// file, until a fork fails (busybox's sh then ends the shell that tried).
// It then holds them without forking (sh's builtins only) until the test
// writes /source/release, and ends them: the job ends by itself, within
// its timeout at worst, and its sleepers end with it. It must not be
// unbounded: bombMax is what the job starts where nothing limits it.
const bombMax = 2000

var bombScript = `echo "ulimit -u $(ulimit -u) -n $(ulimit -n); oom_score_adj $(cat /proc/self/oom_score_adj)"
mkfifo /tmp/tick
sh -c 'i=0; while [ $i -lt ` + strconv.Itoa(bombMax) + ` ]; do i=$((i+1)); sh -c "echo >>/tmp/started; exec sleep 150" & done'
# No fork from here on while the sleepers hold the job's processes.
exec 3<>/tmp/tick
read -t 1 x <&3
n=0; while read l; do n=$((n+1)); done </tmp/started
echo "bomb held: $n processes started"
while [ ! -e /source/release ]; do read -t 1 x <&3; done
kill -9 -1
echo "bomb released"
`

// A job that tries to start 2000 processes under JOBQ_PIDS=100 is held
// near 100, on a cgroup v1 host too (RLIMIT_NPROC); meanwhile another
// user's push over ssh succeeds and its job runs. The job is the OOM
// killer's first choice and has a bound on open files.
func TestLimitsProcessBomb(t *testing.T) {
	pushScript(t, "alice", "limits-bomb", bombScript)
	held := regexp.MustCompile(`bomb held: (\d+) processes started`)
	testenv.WaitUntil(t, "the bomb is held", 2*time.Minute, func() bool { return held.MatchString(readLog("limits-bomb", 0)) })
	logA := readLog("limits-bomb", 0)
	n, _ := strconv.Atoi(held.FindStringSubmatch(logA)[1])
	// The job's sh, the bomb's sh and the sleepers share the 100.
	if n > 100 || n < 50 {
		t.Errorf("the bomb started %d of %d processes under JOBQ_PIDS=100:\n%s", n, bombMax, logA)
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
	t.Logf("the bomb started %d of %d processes", n, bombMax)

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
