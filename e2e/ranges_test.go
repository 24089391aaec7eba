package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

func init() { confParts = append(confParts, rangesConf) }

// The ID ranges' tests: podman jobs that each run for rangeSleep seconds,
// under a timeout shorter than two of them.
const rangesConf = `
repo wk-range-a wk-range-b
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_TIMEOUT = "10s"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"
`

// rangeScript runs 6 s: two of them one after the other exceed the
// repositories' JOBQ_TIMEOUT of 10 s, one alone does not.
const rangeScript = "echo started\nsleep 6\necho done\n"

// accountRanges is how many ID ranges (4096 IDs) the hosting account's
// /etc/subuid and /etc/subgid give it.
func accountRanges(t *testing.T) int {
	t.Helper()
	count := func(file string) int {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Split(l, ":")
			if len(f) == 3 && (f[0] == env.User || f[0] == strconv.Itoa(env.UID)) {
				size, _ := strconv.Atoi(f[2])
				n += size
			}
		}
		return n
	}
	return min(count("/etc/subuid"), count("/etc/subgid")) / 4096
}

// holdRanges holds n of the account's ID ranges until the test ends, as
// jobs (running, or still being cleaned up after) would: any n, as an
// earlier test's worker may still be cleaning up in one.
func holdRanges(t *testing.T, total, n int) {
	t.Helper()
	dir := filepath.Join(env.DataDir(), "idranges")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := env.AsUser(ctx, nil, "mkdir", "-p", "-m", "700", dir); err != nil {
		t.Fatalf("mkdir %s: %v: %s", dir, err, out)
	}
	held := map[int]bool{}
	testenv.WaitUntil(t, fmt.Sprintf("%d ID ranges are held", n), 2*time.Minute, func() bool {
		for i := 0; i < total && len(held) < n; i++ {
			if held[i] {
				continue
			}
			path := filepath.Join(dir, strconv.Itoa(i)+".lock")
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Chown(env.UID, env.GID); err != nil {
				t.Fatal(err)
			}
			if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
				f.Close()
				continue
			}
			held[i] = true
			t.Cleanup(func() { f.Close() })
		}
		return len(held) == n
	})
}

type rangeJob struct {
	State      string    `json:"state"`
	Waiting    string    `json:"waiting"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

func rangeJobOf(t *testing.T, repo string) rangeJob {
	t.Helper()
	r := ssh("alice", "jobq", "--json", repo)
	var v []rangeJob
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil || len(v) != 1 {
		t.Fatalf("jobq %s --json: %v: %s", repo, err, r)
	}
	return v[0]
}

// With every ID range but one held (by jobs running or being cleaned up)
// and slots to spare, a second podman job does not take a slot only to
// wait for a range, shown running with an empty log while its timeout
// runs: it stays queued, says why, and once the first job's range is free
// it runs, its timeout counted from its start. JOBQ_SLOTS above the
// account's ranges is lowered to them, and the worker's log says so.
func TestJobWaitsQueuedForIDRange(t *testing.T) {
	n := accountRanges(t)
	if n < 2 {
		t.Fatalf("the test account has %d ID ranges, the test needs 2 or more", n)
	}
	setRC(t, map[string]string{"JOBQ_SLOTS": strconv.Itoa(n + 2)})
	t.Cleanup(func() {
		if t.Failed() {
			wlog, _ := os.ReadFile(filepath.Join(env.DataDir(), "worker.log"))
			t.Logf("worker.log:\n%s\nwk-range-a 0:\n%s\nwk-range-b 0:\n%s\nlisting:\n%s", wlog, readLog("wk-range-a", 0), readLog("wk-range-b", 0),
				ssh("alice", "jobq", "wk-range-a").String()+ssh("alice", "jobq", "wk-range-b").String())
		}
	})
	holdRanges(t, n, n-1)
	if r, _ := push(t, "wk-range-a", map[string]string{"ci.sh": rangeScript}); !strings.Contains(r.Stderr, "jobq: queued wk-range-a job 0") {
		t.Fatalf("push: %s", r)
	}
	testenv.WaitUntil(t, "wk-range-a 0 runs", 2*time.Minute, func() bool {
		return strings.Contains(readLog("wk-range-a", 0), "started\n")
	})
	push(t, "wk-range-b", map[string]string{"ci.sh": rangeScript})
	want := fmt.Sprintf("waiting for an ID range: all %d in use", n)
	testenv.WaitUntil(t, "wk-range-b 0 says why it waits", time.Minute, func() bool {
		b := rangeJobOf(t, "wk-range-b")
		if b.State != "queued" {
			t.Errorf("wk-range-b 0 is %s while wk-range-a 0 holds the last range", b.State)
			return true
		}
		return b.Waiting == want
	})
	if ls := ssh("alice", "jobq", "wk-range-b").Stdout; !strings.Contains(ls, "queued (0 ahead)  ") || !strings.HasSuffix(ls, "  waiting: "+want+"\n") {
		t.Errorf("jobq wk-range-b:\n%s", ls)
	}
	for _, repo := range []string{"wk-range-a", "wk-range-b"} {
		if r := follow(t, "alice", repo, 0); r.Code != 0 || !strings.Contains(r.Stdout, "\ndone\n") || !strings.Contains(r.Stdout, "jobq: succeeded") {
			t.Errorf("jobq %s 0: %s", repo, r)
		}
	}
	a, b := rangeJobOf(t, "wk-range-a"), rangeJobOf(t, "wk-range-b")
	if !b.StartedAt.After(a.FinishedAt) {
		t.Errorf("wk-range-b 0 started at %s, before wk-range-a 0 ended at %s", b.StartedAt, a.FinishedAt)
	}
	if log := readLog("wk-range-b", 0); !strings.HasPrefix(log, "jobq: job 0 waits to start: "+want+"\n") {
		t.Errorf("wk-range-b 0's log:\n%s", log)
	}
	wlog, _ := os.ReadFile(filepath.Join(env.DataDir(), "worker.log"))
	if lowered := fmt.Sprintf("JOBQ_SLOTS lowered from %d to %d: ", n+2, n); !strings.Contains(string(wlog), lowered) {
		t.Errorf("worker.log lacks %q:\n%s", lowered, wlog)
	}
	checkNothingLeft(t, "wk-range-a")
	checkNothingLeft(t, "wk-range-b")
}
