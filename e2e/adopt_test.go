package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/termsafe"
	"github.com/jobq/jobq/internal/testenv"
)

func init() { confParts = append(confParts, adoptConf) }

// The adoption tests' repositories: a job outlives its worker.
const adoptConf = `
repo adopt-timeout adopt-term-pod
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"

repo adopt-timeout
    option ENV.JOBQ_TIMEOUT = "8s"

repo adopt-cancel adopt-term-exec
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/adopt-steps"
`

// adoptSteps is the exec jobs' program: numbered lines, a fifth of a
// second apart, until it is stopped or, with a number, that many.
const adoptSteps = `#!/bin/sh
trap 'echo got-term; exit 143' TERM
n=${1:-600}
i=0
while [ $i -lt $n ]; do echo "step-$i"; i=$((i+1)); sleep 0.2; done
`

const notice = "jobq: worker restarted; output continues\n"

// adoptedJob is a job as the listing's JSON shows it, with its adoptions.
type adoptedJob struct {
	jobJSON
	Adopted int `json:"adopted"`
}

func listAdopted(t *testing.T, repo string) []adoptedJob {
	t.Helper()
	r := ssh("alice", "jobq", "ls", "-n", "0", repo, "--json")
	var jobs []adoptedJob
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &jobs) != nil {
		t.Fatalf("jobq ls %s --json: %s", repo, r)
	}
	return jobs
}

// processGone waits until process pid has exited.
func processGone(t *testing.T, pid int) {
	t.Helper()
	testenv.WaitUntil(t, fmt.Sprintf("process %d exits", pid), time.Minute, func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return err != nil || strings.Contains(string(b), ") Z ")
	})
}

// "ssh jobq REPO ID" follows a job across its worker's death: the
// worker is SIGKILLed mid-output, the follower starts the next worker,
// which adopts the job; the follower sees every line once, the notice,
// and ends with the job's true status, rather than stopping ("its worker
// died") with the job lost.
func TestFollowAcrossWorkerKill(t *testing.T) {
	script := "i=0; while [ $i -lt 40 ]; do echo line-$i; i=$((i+1)); sleep 0.1; done; exit 3\n"
	push(t, "podkill", map[string]string{"ci.sh": script, "VERSION": "x"})
	pid := env.JobWorker(t, "podkill", "line-5\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	followed := make(chan testenv.Result, 1)
	go func() { followed <- env.SSH(ctx, "alice", "jobq", "podkill", "0") }()
	// The follower is under way (it has printed the log so far) before the
	// kill.
	time.Sleep(500 * time.Millisecond)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r := <-followed
	// The notice, mid-output, is jobq's: shown unmarked.
	if r.Code != 1 || !strings.Contains(r.Stdout, "jobq: failed, exit code 3") || strings.Count(r.Stdout, "\n"+notice) != 1 ||
		strings.Contains(r.Stdout, termsafe.Marker) {
		t.Errorf("jobq podkill 0 across the kill: %s", r)
	}
	testenv.Numbered(t, r.Stdout, "line-", 40)
	if j := listAdopted(t, "podkill")[0]; j.State != "failed" || j.ExitCode == nil || *j.ExitCode != 3 || j.Adopted != 1 {
		t.Errorf("job after adoption: %+v", j)
	}
	if ls := ssh("alice", "jobq", "podkill").Stdout; !strings.Contains(ls, "failed (adopted)") {
		t.Errorf("the listing does not say the job was adopted:\n%s", ls)
	}
	checkNothingLeft(t, "podkill")
}

// A job adopted after its worker died still ends at its own deadline,
// counted from its start (8 s), not from the adoption.
func TestTimeoutAfterAdoption(t *testing.T) {
	script := "trap 'echo got-term; exit 143' TERM\necho started\nwhile :; do sleep 0.1; done\n"
	push(t, "adopt-timeout", map[string]string{"ci.sh": script})
	pid := env.JobWorker(t, "adopt-timeout", "started\n")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r := follow(t, "alice", "adopt-timeout", 0) // starts the next worker
	j := listAdopted(t, "adopt-timeout")[0]
	if j.State != "timed-out" || j.Adopted != 1 || !strings.Contains(r.Stdout, "\n"+notice+"got-term\n") || strings.Contains(r.Stdout, termsafe.Marker) {
		t.Fatalf("job %+v; log: %s", j, r)
	}
	deadline := j.StartedAt.Add(8 * time.Second)
	if off := j.FinishedAt.Sub(deadline); off < -2*time.Second || off > 2*time.Second {
		t.Errorf("ended %s from its deadline (started %s, ended %s), want within 2 s", off, j.StartedAt, j.FinishedAt)
	}
	checkNothingLeft(t, "adopt-timeout")
}

// An exec job adopted after its worker died is cancelled by jobq
// cancel: the adopting worker honours the cancel request.
func TestCancelAfterAdoption(t *testing.T) {
	installAdoptSteps(t)
	push(t, "adopt-cancel", nil)
	pid := env.JobWorker(t, "adopt-cancel", "step-2\n")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	followed := make(chan testenv.Result, 1)
	go func() { followed <- env.SSH(ctx, "alice", "jobq", "adopt-cancel", "0") }()
	testenv.WaitUntil(t, "the job is adopted", time.Minute, func() bool {
		return listAdopted(t, "adopt-cancel")[0].Adopted == 1
	})
	if r := ssh("alice", "jobq", "cancel", "adopt-cancel", "0"); r.Code != 0 {
		t.Fatalf("cancel: %s", r)
	}
	r := <-followed
	if r.Code != 1 || !strings.Contains(r.Stdout, "got-term") || !strings.Contains(r.Stdout, "jobq: cancelled, exit code 143: cancelled by request") {
		t.Errorf("jobq adopt-cancel 0: %s", r)
	}
	if j := listAdopted(t, "adopt-cancel")[0]; j.State != "cancelled" {
		t.Errorf("job: %+v", j)
	}
	if ps := userProcesses("adopt-steps") + userProcesses(" supervise "); ps != "" {
		t.Errorf("processes left:\n%s", ps)
	}
}

// SIGTERM to the workers while two jobs run (a container, an exec
// job) stops the workers and leaves both jobs running; the next worker, a
// service (jobq-worker drain --all), adopts and finishes both: stopping
// a worker (an upgrade, a restart) must not cancel jobs ("the worker was
// stopped").
func TestSIGTERMLeavesJobsRunning(t *testing.T) {
	installAdoptSteps(t)
	setRC(t, map[string]string{"JOBQ_SLOTS": "2", "JOBQ_USER_SLOTS": "2"})
	podScript := "i=0; while [ $i -lt 30 ]; do echo line-$i; i=$((i+1)); sleep 0.2; done\n"
	push(t, "adopt-term-pod", map[string]string{"ci.sh": podScript})
	push(t, "adopt-term-exec", map[string]string{"README": "x"})
	var pids []int
	for _, repo := range []string{"adopt-term-pod", "adopt-term-exec"} {
		want := "line-3\n"
		if repo == "adopt-term-exec" {
			want = "step-3\n"
		}
		pids = append(pids, env.JobWorker(t, repo, want))
	}
	// The next worker gets the environment a hook gives its workers.
	workerEnv, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pids[0]))
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, pid := range pids {
		processGone(t, pid)
	}
	for _, repo := range []string{"adopt-term-pod", "adopt-term-exec"} {
		if j := listAdopted(t, repo)[0]; j.State != "running" {
			t.Fatalf("%s after SIGTERM to its worker: %+v\n%s", repo, j, readLog(repo, 0))
		}
	}
	if containers(t, "adopt-term-pod") == "" {
		t.Fatal("the container was removed")
	}
	// The exec job goes on without a worker: its supervisor runs.
	n := strings.Count(readLog("adopt-term-exec", 0), "step-")
	testenv.WaitUntil(t, "the exec job writes on without a worker", time.Minute, func() bool {
		return strings.Count(readLog("adopt-term-exec", 0), "step-") > n
	})

	// The next worker: one service for every queue.
	args := append([]string{"-u", env.User, "--", "env", "-i"}, strings.Split(strings.TrimRight(string(workerEnv), "\x00"), "\x00")...)
	svc := exec.Command("runuser", append(args, filepath.Join(env.Bin, "jobq-worker"), "drain", "--all")...)
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		svc.Process.Signal(syscall.SIGTERM)
		svc.Wait()
	}()
	pod := waitFinal(t, "adopt-term-pod", 1)[0]
	if pod.State != "succeeded" {
		t.Errorf("the container job after adoption: %+v\n%s", pod, readLog("adopt-term-pod", 0))
	}
	testenv.Numbered(t, readLog("adopt-term-pod", 0), "line-", 30)
	// The exec job runs until stopped: cancel it, through its adopter.
	testenv.WaitUntil(t, "the exec job is adopted", time.Minute, func() bool {
		return listAdopted(t, "adopt-term-exec")[0].Adopted == 1
	})
	ssh("alice", "jobq", "cancel", "adopt-term-exec", "0")
	ex := waitFinal(t, "adopt-term-exec", 1)[0]
	if ex.State != "cancelled" {
		t.Errorf("the exec job after adoption: %+v", ex)
	}
	for _, repo := range []string{"adopt-term-pod", "adopt-term-exec"} {
		if log := readLog(repo, 0); strings.Count(log, notice) != 1 || strings.Count(log, "jobq: job 0 of") != 1 {
			t.Errorf("%s log:\n%s", repo, log)
		}
	}
	prefix := "step-"
	testenv.Numbered(t, readLog("adopt-term-exec", 0), prefix, strings.Count(readLog("adopt-term-exec", 0), prefix))
	checkNothingLeft(t, "adopt-term-pod")
}

func installAdoptSteps(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(env.Bin, "adopt-steps"), []byte(adoptSteps), 0o755); err != nil {
		t.Fatal(err)
	}
}
