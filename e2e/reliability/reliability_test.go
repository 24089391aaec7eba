// Package reliability is jobq's fault-injection suite: it kills real
// workers at each phase of a job, fills logs and process tables, and checks
// that no job is lost, run twice or left running, and that nothing is left
// behind. JOBQ_RELIABILITY_ROUNDS sets the rounds per crash phase (20 by
// default; RELIABILITY.md reports a longer run).
package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
	"github.com/jobq/jobq/queue"
)

// h is the harness the tests share: binaries, a rootful Podman service,
// a bare repository.
var h struct {
	bin    string // jobq, jobq-worker (release build)
	fi     string // the fault-injection worker
	podman *testenv.RootfulPodman
	gitDir string
	rev    string
	dir    string
}

func TestMain(m *testing.M) {
	if _, err := exec.LookPath("podman"); err != nil || os.Geteuid() != 0 {
		os.Exit(testenv.NotRun(m, "reliability", "needs root and podman"))
	}
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(1)
	}
	code := m.Run()
	h.podman.Stop()
	os.RemoveAll(h.dir)
	os.Exit(code)
}

// setup builds jobq, starts a Podman service and makes the repository.
func setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var err error
	if h.dir, err = os.MkdirTemp("", "jobq-reliability-"); err != nil {
		return err
	}
	h.bin = filepath.Join(h.dir, "bin")
	h.fi = filepath.Join(h.dir, "fi")
	for _, args := range [][]string{{"build", "BINDIR=" + h.bin}, {"build-faultinject", "BINDIR=" + h.fi}} {
		cmd := exec.CommandContext(ctx, "make", append([]string{"-s", "-C", testenv.SourceDir()}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("make %v: %v\n%s", args, err, out)
		}
	}
	// The tests start every worker themselves: the hook must find none.
	os.Remove(filepath.Join(h.bin, "jobq-worker"))
	if h.podman, err = testenv.StartRootfulPodman(ctx, filepath.Join(h.dir)); err != nil {
		return err
	}
	h.gitDir = filepath.Join(h.dir, "repo.git")
	work := filepath.Join(h.dir, "work")
	for _, c := range [][]string{{"init", "-q", "--bare", h.gitDir}, {"init", "-q", work}} {
		if out, err := exec.Command("git", c...).CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %v %s", c, err, out)
		}
	}
	os.WriteFile(filepath.Join(work, "file"), []byte("content\n"), 0o644)
	for _, c := range [][]string{{"add", "file"}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c"}, {"push", "-q", h.gitDir, "HEAD:refs/heads/main"}} {
		cmd := exec.Command("git", c...)
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %v %s", c, err, out)
		}
	}
	out, _ := exec.Command("git", "--git-dir", h.gitDir, "rev-parse", "refs/heads/main").Output()
	h.rev = strings.TrimSpace(string(out))
	return nil
}

// store is one test's data directory and temporary directory.
type store struct {
	t    *testing.T
	home string
	tmp  string
}

func newStore(t *testing.T) *store {
	return &store{t: t, home: filepath.Join(t.TempDir(), "data"), tmp: t.TempDir()}
}

// env is the environment of jobq and the workers for this store: the
// rootful service, and checkouts in a directory of the test's own.
func (s *store) env(extra ...string) []string {
	return append(append(os.Environ(), "JOBQ_HOME="+s.home, "CONTAINER_HOST="+h.podman.URI, "TMPDIR="+s.tmp), extra...)
}

// hook runs jobq as gitolite runs its hook (as post-receive: with GL_USER
// set, "jobq hook" is refused) for one push of h.rev to repo with options.
// The worker binary is not beside it: the test starts workers itself.
func (s *store) hook(repo string, opts ...string) string {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(h.bin, "jobq"))
	cmd.Args = []string{"post-receive"}
	cmd.Dir = h.gitDir
	cmd.Env = append(s.env(opts...), "GL_REPO="+repo, "GL_USER=tester", "JOBQ_ASYNC=1", "PATH=/usr/bin:/bin")
	cmd.Stdin = strings.NewReader(strings.Repeat("0", 40) + " " + h.rev + " refs/heads/main\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "jobq: queued") {
		s.t.Fatalf("jobq as post-receive: %v\n%s", err, out)
	}
	return string(out)
}

// worker runs the fault-injection worker on repo's own queue until it
// drains the queue or is killed at crashAt; it reports whether it was
// killed.
func (s *store) worker(repo, crashAt string, extra ...string) bool {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(h.fi, "jobq-worker-faultinject"), "drain", "--queue", queue.DefaultQueue(repo))
	cmd.Env = s.env(append(extra, "JOBQ_CRASH_AT="+crashAt)...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == -1 {
		return true
	}
	if err != nil {
		s.t.Fatalf("worker: %v\n%s", err, out)
	}
	return false
}

type job struct {
	ID         int       `json:"id"`
	State      string    `json:"state"`
	ExitCode   *int      `json:"exit_code"`
	Error      string    `json:"error"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

func (s *store) job(repo string, id int) job {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.home, "repos", repo, strconv.Itoa(id), "job.json"))
	if err != nil {
		s.t.Fatal(err)
	}
	var j job
	if err := json.Unmarshal(b, &j); err != nil {
		s.t.Fatal(err)
	}
	return j
}

func (s *store) log(repo string, id int) string {
	b, _ := os.ReadFile(filepath.Join(s.home, "repos", repo, strconv.Itoa(id), "log"))
	return string(b)
}

// leftovers lists what jobs of repo left behind: containers, checkouts.
func (s *store) leftovers(repo string) []string {
	s.t.Helper()
	var left []string
	out, err := h.podman.Podman(context.Background(), "ps", "-a", "-q", "--filter", "label=jobq.repo="+repo)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, c := range strings.Fields(out) {
		left = append(left, "container "+c)
	}
	m, _ := filepath.Glob(filepath.Join(s.tmp, "jobq-checkout-*"))
	for _, d := range m {
		left = append(left, "checkout "+d)
	}
	return left
}

func rounds() int {
	if n, err := strconv.Atoi(os.Getenv("JOBQ_RELIABILITY_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 20
}

// report adds a line to $JOBQ_RELIABILITY_REPORT (RELIABILITY.md's figures).
func report(format string, args ...any) {
	if p := os.Getenv("JOBQ_RELIABILITY_REPORT"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err == nil {
			fmt.Fprintf(f, format+"\n", args...)
			f.Close()
		}
	}
}

// adoptScript is a job whose output tests exactness across a worker's
// death: a numbered sequence on stdout and stderr, then binary data (NUL,
// 0xff, a carriage return, an escape sequence) over several writes, then a
// final line without a newline.
const adoptScript = `i=0; while [ $i -lt 30 ]; do echo n=$i; echo e=$i >&2; i=$((i+1)); sleep 0.01; done; ` +
	`i=0; while [ $i -lt 20 ]; do printf "bin\\000\\001\\177\\200\\377\\r\\033[1m"; i=$((i+1)); done; sleep 0.1; printf "last line, no newline"`

// adoptStdout is what adoptScript writes to stdout; to stderr it writes
// e=0 to e=29, a line each.
func adoptStdout() string {
	var b strings.Builder
	for i := range 30 {
		fmt.Fprintf(&b, "n=%d\n", i)
	}
	b.WriteString(strings.Repeat("bin\x00\x01\x7f\x80\xff\r\x1b[1m", 20))
	b.WriteString("last line, no newline")
	return b.String()
}

const notice = "jobq: worker restarted; output continues\n"

// checkOutput checks adoptScript's output in a job's log, byte for byte:
// the log is header, output, result line; an adopted job's log has one
// notice per adoption, after a newline jobq adds if the output was cut
// within a line. stdout must be exact, and the stderr lines each there
// once, in order: the order of writes to two pipes is not defined, so a
// stderr line may come anywhere in stdout, even after output without a
// newline. It returns what is wrong, or "".
func checkOutput(log string, adoptions int) string {
	rest := log
	for range 4 { // the header's lines
		_, rest, _ = strings.Cut(rest, "\n")
	}
	end := strings.LastIndex(rest, "jobq: ")
	if end < 0 {
		return "no result line"
	}
	body := rest[:end]
	if n := strings.Count(body, notice); n != adoptions {
		return fmt.Sprintf("%d notices, want %d", n, adoptions)
	}
	// Each notice out, with or without the newline before it (jobq's, if
	// the output before it was cut within a line): one must be exact.
	bodies := []string{body}
	for range adoptions {
		var next []string
		for _, b := range bodies {
			i := strings.Index(b, notice)
			next = append(next, b[:i]+b[i+len(notice):])
			if i > 0 && b[i-1] == '\n' {
				next = append(next, b[:i-1]+b[i+len(notice):])
			}
		}
		bodies = next
	}
	var bad string
	for _, b := range bodies {
		if bad = checkStreams(b); bad == "" {
			return ""
		}
	}
	return bad
}

var stderrLine = regexp.MustCompile(`e=[0-9]+\n`)

// checkStreams checks adoptScript's output without notices.
func checkStreams(body string) string {
	errs := stderrLine.FindAllString(body, -1)
	for i, l := range errs {
		if l != fmt.Sprintf("e=%d\n", i) {
			return fmt.Sprintf("stderr line %d is %q", i, l)
		}
	}
	if len(errs) != 30 {
		return fmt.Sprintf("%d stderr lines, want 30", len(errs))
	}
	// The result line comes after a newline jobq adds, where the log does
	// not end with one (the output does not; a notice does).
	got := strings.TrimSuffix(stderrLine.ReplaceAllString(body, ""), "\n")
	if want := adoptStdout(); got != want {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		return fmt.Sprintf("stdout differs at byte %d: got %q, want %q", i, got[i:min(len(got), i+80)], want[i:min(len(want), i+80)])
	}
	return ""
}

// The crash matrix: SIGKILL the worker at each phase of a job, many times;
// the next worker must settle everything: adopt a job whose container
// started (its log exact), and declare lost only one that never started.
func TestCrashMatrix(t *testing.T) {
	phases := []struct {
		point, what string
		want        string // the job's state after recovery
		adoptions   int    // notices in the log
		then        string // a second kill: the adopting worker's
	}{
		{"claim-moved", "just after claiming (entry moved, not yet marked running)", "succeeded", 0, ""},
		{"claim-marked", "just after claiming (marked running)", "lost", 0, ""},
		{"checked-out", "during checkout (checked out, no container yet)", "lost", 0, ""},
		{"container-created", "after container create", "lost", 0, ""},
		{"container-started", "while the container runs", "succeeded", 1, ""},
		{"run-returned", "after exit, before the state is written", "succeeded", 1, ""},
		{"container-started", "while the container runs, then the adopting worker after its notice", "succeeded", 2, "adopt-noticed"},
		{"container-started", "while the container runs, then the adopting worker as it adopts", "succeeded", 1, "adopt-marked"},
	}
	n := rounds()
	for pi, p := range phases {
		t.Run(p.point+"+"+p.then, func(t *testing.T) {
			s := newStore(t)
			repo := fmt.Sprintf("crash-%d-%s", pi, p.point)
			counts := map[string]int{}
			for i := range n {
				s.hook(repo, "JOBQ_COMMAND="+testenv.Busybox+" sh -c '"+adoptScript+"'")
				if !s.worker(repo, p.point) {
					t.Fatalf("round %d: the worker was not killed at %s", i, p.point)
				}
				if p.then != "" && !s.worker(repo, p.then) {
					t.Fatalf("round %d: the adopting worker was not killed at %s", i, p.then)
				}
				s.worker(repo, "") // the next worker recovers and drains
				j := s.job(repo, i)
				counts[j.State]++
				if j.State != p.want {
					t.Errorf("round %d: job %d is %s (%s), want %s", i, i, j.State, j.Error, p.want)
				}
				log := s.log(repo, i)
				if h := strings.Count(log, "jobq: job "+strconv.Itoa(i)+" of"); h > 1 {
					t.Errorf("round %d: the job started %d times:\n%s", i, h, log)
				}
				if p.want == "succeeded" {
					if bad := checkOutput(log, p.adoptions); bad != "" {
						t.Errorf("round %d: %s; log:\n%q", i, bad, log)
					}
				}
				if left := s.leftovers(repo); len(left) > 0 {
					t.Errorf("round %d: left behind: %v", i, left)
				}
			}
			running, _ := filepath.Glob(filepath.Join(s.home, "queues", queue.DefaultQueue(repo), "running", "*"))
			pending, _ := filepath.Glob(filepath.Join(s.home, "queues", queue.DefaultQueue(repo), "pending", "*"))
			if len(running)+len(pending) > 0 {
				t.Errorf("entries left: %v %v", running, pending)
			}
			report("| %s | %d | %v | %d | %d |", p.what, n, counts, len(running)+len(pending), len(s.leftovers(repo)))
		})
	}
}

// A worker killed at any moment of a job's output, for both runners: the
// next worker adopts the job, and its log holds every byte once, in order.
func TestKillMidOutput(t *testing.T) {
	for _, tt := range []struct{ runner, command string }{
		{"podman", testenv.Busybox + " sh -c '" + adoptScript + "'"},
		{"exec", adoptScript},
	} {
		t.Run(tt.runner, func(t *testing.T) {
			s := newStore(t)
			repo := "mid-" + tt.runner
			n := max(rounds()/2, 1)
			exact := 0
			for i := range n {
				s.hook(repo, "JOBQ_RUNNER="+tt.runner, "JOBQ_COMMAND="+tt.command)
				cmd := exec.Command(filepath.Join(h.fi, "jobq-worker-faultinject"), "drain", "--queue", queue.DefaultQueue(repo))
				cmd.Env = s.env()
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				// Somewhere in the numbers, a different place each round.
				mark := fmt.Sprintf("n=%d\n", 3+i*7%25)
				deadline := time.Now().Add(time.Minute)
				for !strings.Contains(s.log(repo, i), mark) && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				cmd.Process.Kill()
				cmd.Wait()
				s.worker(repo, "")
				j := s.job(repo, i)
				log := s.log(repo, i)
				if j.State != "succeeded" {
					t.Errorf("round %d: job %s (%s)", i, j.State, j.Error)
				} else if bad := checkOutput(log, 1); bad != "" {
					t.Errorf("round %d: %s; log:\n%q", i, bad, log)
				} else {
					exact++
				}
				if left := s.leftovers(repo); len(left) > 0 {
					t.Errorf("round %d: left behind: %v", i, left)
				}
			}
			report("| worker SIGKILLed mid-output, %s runner | %d | %d adopted with an exact log | |", tt.runner, n, exact)
		})
	}
}

// A job that writes without end is stopped at the log limit, and its log
// says where it was cut; for both runners.
func TestLogLimit(t *testing.T) {
	for _, tt := range []struct{ runner, command string }{
		{"exec", "yes jobq-log-line"},
		{"podman", testenv.Busybox + " yes jobq-log-line"},
	} {
		t.Run(tt.runner, func(t *testing.T) {
			s := newStore(t)
			s.hook("loud", "JOBQ_RUNNER="+tt.runner, "JOBQ_COMMAND="+tt.command)
			start := time.Now()
			s.worker("loud", "", "JOBQ_LOG_LIMIT=1m")
			j := s.job("loud", 0)
			fi, err := os.Stat(filepath.Join(s.home, "repos", "loud", "0", "log"))
			if err != nil {
				t.Fatal(err)
			}
			log := s.log("loud", 0)
			tail := log[max(0, len(log)-300):]
			if j.State != "failed" || !strings.Contains(tail, "output cut at the log limit of 1048576 bytes (JOBQ_LOG_LIMIT)") {
				t.Errorf("state %s, log ends:\n%s", j.State, tail)
			}
			if fi.Size() > 1<<20+2048 {
				t.Errorf("log is %d bytes, limit 1 MiB", fi.Size())
			}
			report("| log limit, %s runner | 1 MiB | %s after %s | log %d bytes |", tt.runner, j.State, time.Since(start).Round(time.Millisecond), fi.Size())
		})
	}
}

// A fork bomb in a job is held by JOBQ_PIDS, and the job still ends.
func TestForkBombHeldByPidsLimit(t *testing.T) {
	s := newStore(t)
	// 300 background sleeps against a limit of 64: count what got through.
	// A shell whose fork fails exits, so the forks happen in a subshell, and
	// the count uses builtins only (no fork is left to spare).
	script := `(i=0; while [ $i -lt 300 ]; do sleep 60 & i=$((i+1)); done) 2>/dev/null; set -- /proc/[0-9]*; echo procs=$#`
	s.hook("bomb", "JOBQ_PIDS=64", "JOBQ_TIMEOUT=30s", "JOBQ_COMMAND="+testenv.Busybox+` sh -c '`+script+`'`)
	s.worker("bomb", "")
	log := s.log("bomb", 0)
	i := strings.LastIndex(log, "procs=") // the header shows the command too
	if i < 0 {
		t.Fatalf("log:\n%s", log)
	}
	var procs int
	fmt.Sscanf(log[i:], "procs=%d", &procs)
	if procs > 64 || procs < 10 {
		t.Errorf("%d processes ran in the container with JOBQ_PIDS=64:\n%s", procs, log)
	}
	// A real fork bomb: held, stopped at the timeout, nothing left.
	s.hook("bomb", "JOBQ_PIDS=64", "JOBQ_TIMEOUT=5s", "JOBQ_COMMAND="+testenv.Busybox+` sh -c 'b() { b | b & }; b'`)
	start := time.Now()
	s.worker("bomb", "")
	j := s.job("bomb", 1)
	if j.State != "timed-out" && j.State != "failed" && j.State != "succeeded" {
		t.Errorf("fork bomb job: %s %s", j.State, j.Error)
	}
	if left := s.leftovers("bomb"); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	report("| fork bomb, JOBQ_PIDS=64 | 300 forks tried | %d processes got through | bomb job %s after %s |", procs, j.State, time.Since(start).Round(time.Second))
}

// Containers that exit at once, before any output: every exit code arrives
// and every job ends in its state.
func TestQuickExits(t *testing.T) {
	s := newStore(t)
	n := rounds()
	for i := range n {
		s.hook("quick", "JOBQ_COMMAND="+testenv.Busybox+` sh -c "exit `+strconv.Itoa(i%3)+`"`)
	}
	s.worker("quick", "")
	for i := range n {
		j := s.job("quick", i)
		want := "succeeded"
		if i%3 != 0 {
			want = "failed"
		}
		if j.State != want || j.ExitCode == nil || *j.ExitCode != i%3 {
			t.Errorf("job %d: %s exit %v, want %s exit %d", i, j.State, j.ExitCode, want, i%3)
		}
	}
	if left := s.leftovers("quick"); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	report("| containers exiting at once (exit 0, 1, 2) | %d | all exit codes right | |", n)
}

// The Podman service restarts while a job runs: conmon keeps the container
// and its log, so the job goes on. With its worker dead (the next worker
// adopts the job through the new service) and with its worker alive (its
// stream breaks: it takes the job over again itself), the job ends with
// its true result and an exact log.
func TestServiceRestart(t *testing.T) {
	for _, tt := range []struct {
		name        string
		workerAlive bool
	}{
		{"worker dead", false},
		{"worker alive", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			repo := "svc-" + strings.ReplaceAll(tt.name, " ", "-")
			s.hook(repo, "JOBQ_COMMAND="+testenv.Busybox+" sh -c '"+adoptScript+"'")
			cmd := exec.Command(filepath.Join(h.fi, "jobq-worker-faultinject"), "drain", "--queue", queue.DefaultQueue(repo))
			cmd.Env = s.env()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(time.Minute)
			for !strings.Contains(s.log(repo, 0), "n=10\n") && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if !tt.workerAlive {
				cmd.Process.Kill()
				cmd.Wait()
			}
			if err := h.podman.Restart(); err != nil {
				t.Fatal(err)
			}
			if tt.workerAlive {
				cmd.Wait()
			} else {
				s.worker(repo, "")
			}
			j := s.job(repo, 0)
			log := s.log(repo, 0)
			notices := 1 // the next worker's
			if tt.workerAlive {
				notices = 0 // the same worker goes on
			}
			if j.State != "succeeded" {
				t.Errorf("job %s (%s); log:\n%q", j.State, j.Error, log)
			} else if bad := checkOutput(log, notices); bad != "" {
				t.Errorf("%s; log:\n%q", bad, log)
			}
			if left := s.leftovers(repo); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
			report("| Podman service restarted while a job runs, %s | 1 | %s, %d notice(s) | |", tt.name, j.State, strings.Count(log, notice))
		})
	}
}

// hookWorker starts the fault-injection worker for repo's own queue as the
// hook starts one (drain --queue - --wait, the queue's name on its standard
// input): it
// hands its queue off, or becomes the dispatcher, while the slot is busy.
func (s *store) hookWorker(repo, crashAt string) *exec.Cmd {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(h.fi, "jobq-worker-faultinject"), "drain", "--queue", "-", "--wait")
	cmd.Env = s.env("JOBQ_SLOTS=1", "JOBQ_CRASH_AT="+crashAt)
	cmd.Stdin = strings.NewReader(queue.DefaultQueue(repo) + "\n")
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	return cmd
}

// killed waits for cmd and reports whether SIGKILL ended it.
func killed(cmd *exec.Cmd) bool {
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	return ok && ee.ExitCode() == -1
}

// busySlot takes the only slot (JOBQ_SLOTS=1) as a running job's worker
// holds it, until the returned function lets it go.
func (s *store) busySlot() func() {
	s.t.Helper()
	if err := os.MkdirAll(filepath.Join(s.home, "slots"), 0o700); err != nil {
		s.t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(s.home, "slots", "0.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		s.t.Fatal(err)
	}
	f.WriteString("blocker")
	return func() { f.Close() }
}

// waiting waits until job id of repo says why it waits: a worker holds its
// queue and waits for the slot.
func (s *store) waiting(repo string, id int) {
	s.t.Helper()
	path := filepath.Join(s.home, "repos", repo, strconv.Itoa(id), "waiting")
	deadline := time.Now().Add(time.Minute)
	for b, _ := os.ReadFile(path); len(b) == 0; b, _ = os.ReadFile(path) {
		if time.Now().After(deadline) {
			s.t.Fatalf("%s %d does not wait for a slot", repo, id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The crash matrix of the hand-off: a hook's worker whose job cannot start
// (the only slot busy) killed as it hands its queue off, and the
// dispatcher killed as it takes a queue handed to it and while it runs a
// job of one. Afterwards every job runs once (adopted where it had
// started), nothing is left, no hand-off mark stays, and a dispatcher
// that lives on exits once nothing waits.
func TestCrashHandOff(t *testing.T) {
	job := "JOBQ_COMMAND=" + testenv.Busybox + " sh -c '" + adoptScript + "'"
	phases := []struct {
		point, what string
		// dispatcher: a dispatcher (the first queue's worker) runs before
		// the second queue's worker, which is killed at point; else the
		// first queue's worker is killed there, then the second hands its
		// queue to it.
		dispatcher bool
		adoptions  int // notices in the first queue's job's log
	}{
		{"handoff-marked", "hook's worker, hand-off marked, queue still held", false, 0},
		{"handoff-released", "hook's worker, queue let go to a running dispatcher", true, 0},
		{"dispatch-took", "dispatcher, just after taking a queue handed off", false, 0},
		{"container-started", "dispatcher, while a job of a queue handed off runs", false, 1},
	}
	n := max(rounds()/4, 2)
	for pi, p := range phases {
		t.Run(p.point, func(t *testing.T) {
			s := newStore(t)
			a, b := fmt.Sprintf("ho-%d-a", pi), fmt.Sprintf("ho-%d-b", pi)
			counts := map[string]int{}
			for i := range n {
				release := s.busySlot()
				s.hook(a, job)
				s.hook(b, job)
				var first *exec.Cmd
				if p.dispatcher {
					first = s.hookWorker(a, "") // becomes the dispatcher
					s.waiting(a, i)
					if !killed(s.hookWorker(b, p.point)) {
						t.Fatalf("round %d: the worker of %s was not killed at %s", i, b, p.point)
					}
				} else {
					first = s.hookWorker(a, p.point)
					if p.point != "handoff-marked" {
						s.waiting(a, i) // the dispatcher now
						if err := s.hookWorker(b, "").Wait(); err != nil {
							t.Fatalf("round %d: the worker of %s: %v", i, b, err)
						}
					}
				}
				switch {
				case p.dispatcher:
					// The dispatcher lives: it was woken by the killed
					// worker's mark, took its queue, runs both, and exits.
					release()
					if err := first.Wait(); err != nil {
						t.Fatalf("round %d: the dispatcher: %v", i, err)
					}
				case p.adoptions > 0: // killed while a job runs: after the slot frees
					release()
					if !killed(first) {
						t.Fatalf("round %d: the worker of %s was not killed at %s", i, a, p.point)
					}
				default:
					if !killed(first) {
						t.Fatalf("round %d: the worker of %s was not killed at %s", i, a, p.point)
					}
					release()
				}
				// The next workers settle what is left.
				s.worker(a, "")
				s.worker(b, "")
				for _, repo := range []string{a, b} {
					j := s.job(repo, i)
					counts[j.State]++
					log := s.log(repo, i)
					if j.State != "succeeded" {
						t.Errorf("round %d: %s %d is %s (%s)", i, repo, i, j.State, j.Error)
					} else if want := map[bool]int{true: p.adoptions, false: 0}[repo == a]; checkOutput(log, want) != "" {
						t.Errorf("round %d: %s: %s; log:\n%q", i, repo, checkOutput(log, want), log)
					}
					if h := strings.Count(log, "jobq: job "+strconv.Itoa(i)+" of"); h != 1 {
						t.Errorf("round %d: %s started %d times", i, repo, h)
					}
					if left := s.leftovers(repo); len(left) > 0 {
						t.Errorf("round %d: left behind: %v", i, left)
					}
				}
			}
			var left []string
			for _, pattern := range []string{"queues/*/running/*", "queues/*/pending/*", "handoff/*", "slots/wait/*"} {
				m, _ := filepath.Glob(filepath.Join(s.home, pattern))
				left = append(left, m...)
			}
			if len(left) > 0 {
				t.Errorf("left: %v", left)
			}
			report("| %s | %d | %v | %d | %d |", p.what, n, counts, len(left), len(s.leftovers(a))+len(s.leftovers(b)))
		})
	}
}
