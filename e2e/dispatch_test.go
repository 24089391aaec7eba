package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

func init() { confParts = append(confParts, dispatchConf) }

// Wild repositories alice may create at will, each its own queue; each job
// prints the command line of every jobq process it can see on the host.
const dispatchConf = `
repo many/..*
    C   = alice
    RW+ = CREATOR
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/cmdlines"

repo many-gate
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/gate %[1]s/gates"
`

// cmdlines prints the command line of every jobq-worker process, as any
// job on the host may read them.
const cmdlines = `#!/bin/sh
for f in /proc/[0-9]*/cmdline; do
    c=$(tr '\0' ' ' <"$f" 2>/dev/null) || continue
    case "$c" in *jobq-worker*) echo "cmdline: $c" ;; esac
done
echo ran
`

// recordJSON is what the test reads of a job record in the data directory.
type recordJSON struct {
	State     string    `json:"state"`
	QueuedAt  time.Time `json:"queued_at"`
	StartedAt time.Time `json:"started_at"`
}

func record(t *testing.T, repo string, id int) recordJSON {
	t.Helper()
	var r recordJSON
	b, err := os.ReadFile(filepath.Join(env.DataDir(), "repos", strings.ReplaceAll(repo, "/", "%2F"), strconv.Itoa(id), "job.json"))
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	if err != nil {
		t.Fatalf("%s %d: %v", repo, id, err)
	}
	return r
}

// workerProcesses lists the hosting account's jobq-worker processes
// (supervisors of exec jobs aside), by their command lines.
func workerProcesses() []string {
	var ps []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		fi, err := os.Stat(filepath.Join("/proc", e.Name()))
		if err != nil || int(fi.Sys().(*syscall.Stat_t).Uid) != env.UID {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		c := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(c, "jobq-worker") && !strings.Contains(c, " supervise ") {
			ps = append(ps, e.Name()+" "+c)
		}
	}
	return ps
}

// One user creates 30 repositories in a row while the only slot is busy.
// A jobq-worker per waiting queue would make 30 waiting processes; the
// waiting queues are held by one dispatcher instead:
// the account's workers stay a handful; every job runs once, oldest first
// (so FIFO in each queue); no worker's command line, as any job can read
// it, names a queue or a repository; and the dispatcher is gone once
// nothing waits.
func TestWaitingQueuesShareOneProcess(t *testing.T) {
	const n = 30
	if err := os.WriteFile(filepath.Join(env.Bin, "cmdlines"), []byte(cmdlines), 0o755); err != nil {
		t.Fatal(err)
	}
	gates := filepath.Join(env.Bin, "gates")
	if err := os.MkdirAll(gates, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(env.Bin, "gate"), []byte(gate), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(gates, "many-gate-0"))
	openGate := func() { os.WriteFile(filepath.Join(gates, "many-gate-0"), nil, 0o644) }
	defer openGate()
	setRC(t, map[string]string{"JOBQ_SLOTS": "1"})
	pushAs(t, "alice", "many-gate")
	testenv.WaitUntil(t, "the blocking job runs", time.Minute, func() bool {
		return strings.Contains(readLog("many-gate", 0), "started")
	})

	var mu sync.Mutex
	most, seen := 0, map[string]bool{}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			ps := workerProcesses()
			mu.Lock()
			most = max(most, len(ps))
			for _, p := range ps {
				seen[p[strings.IndexByte(p, ' ')+1:]] = true
			}
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	// Each repository once, then the first three again: two jobs in their
	// queues, the second younger than every first.
	var pushed []string
	for i := range n + 3 {
		repo := fmt.Sprintf("many/r%02d", i%n)
		pushAs(t, "alice", repo)
		pushed = append(pushed, repo)
	}
	testenv.WaitUntil(t, "every job waits, saying why", time.Minute, func() bool {
		for i := range n {
			if b, err := os.ReadFile(filepath.Join(env.DataDir(), "repos", fmt.Sprintf("many%%2Fr%02d", i), "0", "waiting")); err != nil || len(b) == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(500 * time.Millisecond) // a hook's worker that would stay shows up
	mu.Lock()
	waiting := most
	mu.Unlock()
	t.Logf("at most %d jobq-worker processes while %d queues waited", waiting, n)
	// The blocking job's worker, the dispatcher, and a hook's worker that
	// has not exited yet.
	if waiting > 4 {
		t.Errorf("%d jobq-worker processes while %d queues wait; want at most 4:\n%s", waiting, n, strings.Join(workerProcesses(), "\n"))
	}
	openGate()
	type started struct {
		repo string
		id   int
		r    recordJSON
	}
	var all []started
	testenv.WaitUntil(t, "every job ends", 3*time.Minute, func() bool {
		all = all[:0]
		count := map[string]int{}
		for _, repo := range pushed {
			id := count[repo]
			count[repo]++
			r := record(t, repo, id)
			if r.State == "queued" || r.State == "running" {
				return false
			}
			all = append(all, started{repo, id, r})
		}
		return true
	})
	close(stop)
	<-sampled
	for _, s := range all {
		if s.r.State != "succeeded" {
			t.Errorf("%s %d: %s", s.repo, s.id, s.r.State)
		}
	}
	byQueued := slices.Clone(all)
	slices.SortFunc(byQueued, func(a, b started) int { return a.r.QueuedAt.Compare(b.r.QueuedAt) })
	byStart := slices.Clone(all)
	slices.SortFunc(byStart, func(a, b started) int { return a.r.StartedAt.Compare(b.r.StartedAt) })
	for i := range byStart {
		if byStart[i].repo != byQueued[i].repo || byStart[i].id != byQueued[i].id {
			t.Errorf("start %d: %s %d, want the oldest, %s %d", i, byStart[i].repo, byStart[i].id, byQueued[i].repo, byQueued[i].id)
		}
	}
	// What the jobs saw, and what the test saw, of workers' command lines.
	var lines []string
	for _, s := range all {
		log := readLog(strings.ReplaceAll(s.repo, "/", "%2F"), s.id)
		if !strings.Contains(log, "\nran\n") {
			t.Errorf("%s %d: log %q", s.repo, s.id, log)
		}
		for _, l := range strings.Split(log, "\n") {
			if strings.HasPrefix(l, "cmdline: ") {
				lines = append(lines, l)
			}
		}
	}
	mu.Lock()
	for c := range seen {
		lines = append(lines, c)
	}
	mu.Unlock()
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "jobq-worker drain") }) {
		t.Errorf("no worker's command line seen: %q", lines)
	}
	for _, l := range lines {
		if strings.Contains(l, "many/") || strings.Contains(l, "many%2F") || strings.Contains(l, "many-gate") {
			t.Errorf("a command line names a repository or queue: %s", l)
		}
	}
	testenv.WaitUntil(t, "no worker is left", time.Minute, func() bool { return len(workerProcesses()) == 0 })
	if ents, _ := os.ReadDir(filepath.Join(env.DataDir(), "handoff")); len(ents) != 0 {
		t.Errorf("hand-offs left: %v", ents)
	}
}
