package podman

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/specgen"
	rspec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/jobq/jobq/internal/testenv"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

func testJob(gitDir, rev, command string) *queue.Job {
	return &queue.Job{
		Repo: "team/app", ID: 7, Queue: "deploy", Ref: "refs/heads/master",
		OldRev: strings.Repeat("0", 40), NewRev: rev, User: "alice", GitDir: gitDir,
		Env: map[string]string{"DEPLOY_TOKEN": "s3cret"},
		Options: queue.Options{Command: command, Runner: "podman", Pull: "missing",
			Timeout: time.Minute, PIDs: 1024, Keep: 10},
	}
}

func TestSpec(t *testing.T) {
	j := testJob("/srv/r.git", strings.Repeat("a", 40), `img sh -c "make ci"`)
	tests := []struct {
		name  string
		edit  func(*queue.Job)
		check func(t *testing.T, s *specGen)
	}{
		{"command, mounts, labels, env", func(*queue.Job) {}, func(t *testing.T, s *specGen) {
			if s.Image != "img" || strings.Join(s.Command, "|") != "sh|-c|make ci" {
				t.Errorf("image %q command %q", s.Image, s.Command)
			}
			if s.WorkDir != "/source" || len(s.Mounts) != 1 || s.Mounts[0].Destination != "/source" || s.Mounts[0].Source != "/tmp/co" {
				t.Errorf("workdir %q mounts %+v", s.WorkDir, s.Mounts)
			}
			if s.Labels[LabelRepo] != "team/app" || s.Labels[LabelJob] != "7" || s.Labels[LabelQueue] != "deploy" || s.Labels[LabelHome] != "/data" {
				t.Errorf("labels %v", s.Labels)
			}
			for k, v := range map[string]string{"GIT_REF": "refs/heads/master", "GL_REPO": "team/app", "GL_USER": "alice",
				"JOBQ_JOB_ID": "7", "JOBQ_QUEUE": "deploy", "CI": "true", "DEPLOY_TOKEN": "s3cret", "GIT_REV_NEW": strings.Repeat("a", 40)} {
				if s.Env[k] != v {
					t.Errorf("env %s=%q, want %q", k, s.Env[k], v)
				}
			}
			if s.ResourceLimits == nil || s.ResourceLimits.Pids.Limit != 1024 || s.ResourceLimits.Memory != nil {
				t.Errorf("limits %+v", s.ResourceLimits)
			}
			if !reflect.DeepEqual(s.Rlimits, []rspec.POSIXRlimit{{Type: "nofile", Soft: 4096, Hard: 4096}, {Type: "nproc", Soft: 1024, Hard: 1024}}) {
				t.Errorf("rlimits %+v", s.Rlimits)
			}
			if s.OOMScoreAdj == nil || *s.OOMScoreAdj != 1000 {
				t.Errorf("oom_score_adj %v", s.OOMScoreAdj)
			}
			if s.Remove != nil && *s.Remove {
				t.Error("auto-remove loses exit codes")
			}
			if s.Timeout != 60+5+30 || *s.StopTimeout != 5 {
				t.Errorf("timeout %d stop timeout %d", s.Timeout, *s.StopTimeout)
			}
		}},
		// The job's Argv, split at push time, is what runs: Spec does not
		// split Command again (here they differ, as no push makes them).
		{"argv from the push", func(j *queue.Job) { j.Options.Argv = []string{"other", "a b", "c"} }, func(t *testing.T, s *specGen) {
			if s.Image != "other" || strings.Join(s.Command, "|") != "a b|c" {
				t.Errorf("image %q command %q", s.Image, s.Command)
			}
		}},
		// A job queued before jobs kept Argv has only Command: Spec splits it.
		{"record without argv", func(j *queue.Job) { j.Options.Argv = nil }, func(t *testing.T, s *specGen) {
			if s.Image != "img" || strings.Join(s.Command, "|") != "sh|-c|make ci" {
				t.Errorf("image %q command %q", s.Image, s.Command)
			}
		}},
		{"limits", func(j *queue.Job) { j.Options.Memory, j.Options.CPUs, j.Options.PIDs = 1<<30, 1.5, 0 }, func(t *testing.T, s *specGen) {
			r := s.ResourceLimits
			if *r.Memory.Limit != 1<<30 || *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 || r.Pids != nil {
				t.Errorf("limits %+v", r)
			}
		}},
		{"network none", func(j *queue.Job) { j.Options.Network = "none" }, func(t *testing.T, s *specGen) {
			if s.NetNS.NSMode != "none" {
				t.Errorf("netns %+v", s.NetNS)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := *j
			tt.edit(&j)
			s, err := Spec(&j, "/data", "/tmp/co", 5*time.Second, false, nil, &hostInfo{}, hardLimits{nofile: 20000, nproc: 32768})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
	if _, err := Spec(testJob("/r", "a", "img 'open"), "/data", "/tmp/co", time.Second, false, nil, &hostInfo{}, hardLimits{nofile: 20000, nproc: 32768}); err == nil {
		t.Error("an unterminated quote made a spec")
	}
}

// podman is the rootful service the podman tests share.
var podman struct {
	once sync.Once
	svc  *testenv.RootfulPodman
	err  error
}

func newTestPodman(t *testing.T) (*Runner, *testenv.RootfulPodman) {
	t.Helper()
	_, err := exec.LookPath("podman")
	testenv.Require(t, err == nil && os.Geteuid() == 0, "podman and root")
	podman.once.Do(func() {
		dir, err := os.MkdirTemp("", "jobq-podman-")
		if err != nil {
			podman.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		podman.svc, podman.err = testenv.StartRootfulPodman(ctx, dir)
	})
	if podman.err != nil {
		t.Fatal(podman.err)
	}
	files := t.TempDir()
	// Root has no subordinate IDs here: job ID ranges from a file of the
	// tests' own.
	subid := filepath.Join(files, "subid")
	os.WriteFile(subid, []byte("root:1200000000:65536\n"), 0o644)
	r := New(Config{
		SubUID: subid, SubGID: subid,
		Service: Service{Getenv: func(k string) string {
			if k == "CONTAINER_HOST" {
				return podman.svc.URI
			}
			return ""
		}, StateDir: files},
		Home:  files,
		Grace: 2 * time.Second,
	})
	return r, podman.svc
}

func TestMain(m *testing.M) {
	nprocHelper()
	code := m.Run()
	if podman.svc != nil {
		podman.svc.Stop()
	}
	os.Exit(code)
}

// testHandle is job j as the worker hands it to r, with log: its run
// directory is one of the test's own per job ID, in r's data directory.
func testHandle(r *Runner, j *queue.Job, log *os.File) runner.Job {
	dir := filepath.Join(r.cfg.Home, "jobs", itoa(j.ID), "run")
	os.MkdirAll(dir, 0o700) // an error shows when a record is written
	return runner.Job{Job: j, Log: log, Dir: dir}
}

// runJob runs a job's command in busybox and returns exit, error and log.
func runJob(ctx context.Context, t *testing.T, r *Runner, j *queue.Job) (int, string, error) {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	exit, runErr := r.Run(ctx, testHandle(r, j, logf))
	// As the worker does: the result first, then the clean-up.
	r.Cleanup(context.Background(), testHandle(r, j, nil))
	b, _ := os.ReadFile(logf.Name())
	return exit, string(b), runErr
}

func labelled(t *testing.T, svc *testenv.RootfulPodman, j *queue.Job) string {
	t.Helper()
	out, err := svc.Podman(context.Background(), "ps", "-a", "-q", "--filter", "label=jobq.repo="+j.Repo, "--filter", "label=jobq.job="+itoa(j.ID))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestPodmanExitCodes(t *testing.T) {
	r, svc := newTestPodman(t)
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	for _, code := range []int{0, 3} {
		j := testJob(gitDir, rev, testenv.Busybox+` sh -c "exit `+itoa(int64(code))+`"`)
		exit, log, err := runJob(context.Background(), t, r, j)
		if err != nil || exit != code {
			t.Errorf("exit %d, %v, want %d\n%s", exit, err, code, log)
		}
		if c := labelled(t, svc, j); c != "" {
			t.Errorf("container left: %s", c)
		}
	}
}

func TestPodmanEnvAndSource(t *testing.T) {
	r, _ := newTestPodman(t)
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"VERSION": "v-runner\n", "ci.sh": "#!/bin/sh\necho script-ran\n"})
	j := testJob(gitDir, rev, testenv.Busybox+` sh -c "env; pwd; cat VERSION; ./ci.sh; ls -a /source; touch /source/made"`)
	exit, log, err := runJob(context.Background(), t, r, j)
	if err != nil || exit != 0 {
		t.Fatalf("exit %d %v\n%s", exit, err, log)
	}
	for _, want := range []string{"GIT_REF=refs/heads/master", "GIT_REV_NEW=" + rev, "GIT_REV_OLD=" + strings.Repeat("0", 40),
		"GL_REPO=team/app", "GL_USER=alice", "JOBQ_JOB_ID=7", "JOBQ_QUEUE=deploy", "CI=true", "DEPLOY_TOKEN=s3cret",
		"\n/source\n", "v-runner", "script-ran"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, ".git\n") {
		t.Errorf("/source has .git:\n%s", log)
	}
	if co, err := os.ReadFile(record(testHandle(r, j, nil), "checkout")); err == nil {
		t.Errorf("checkout record left: %s", co)
	}
	if m, _ := filepath.Glob(filepath.Join(os.TempDir(), "jobq-checkout-*", "made")); len(m) != 0 {
		t.Errorf("checkout left: %v", m)
	}
}

func TestPodmanInterleaving(t *testing.T) {
	r, _ := newTestPodman(t)
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	script := "echo out1; sleep 0.1; echo err1 >&2; sleep 0.1; echo out2; sleep 0.1; echo err2 >&2; sleep 0.1; printf no-newline"
	exit, log, err := runJob(context.Background(), t, r, testJob(gitDir, rev, testenv.Busybox+` sh -c "`+script+`"`))
	if err != nil || exit != 0 {
		t.Fatalf("exit %d %v", exit, err)
	}
	if log != "out1\nerr1\nout2\nerr2\nno-newline" {
		t.Errorf("log %q", log)
	}
}

// A local container's output is read from its conmon's attach socket
// (Podman 4.3.1's conmon 2.1.6 here), not relayed by the service: stdout
// and stderr in their order, bytes as written, to the container's end.
func TestPodmanConmonSocket(t *testing.T) {
	_, svc := newTestPodman(t)
	ctx := context.Background()
	out, err := svc.Podman(ctx, "create", "--log-driver", "k8s-file", testenv.Busybox, "sh", "-c",
		`printf 'out\n'; sleep 0.1; printf 'err\r' >&2; sleep 0.1; printf '\001\000\377end'`)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	defer svc.Podman(ctx, "rm", "-f", "-t", "0", id)
	conn, err := bindings.NewConnection(ctx, svc.URI)
	if err != nil {
		t.Fatal(err)
	}
	if err := containers.ContainerInit(conn, id, nil); err != nil {
		t.Fatal(err)
	}
	s, err := attachConmon(conn, id)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := containers.Start(conn, id, nil); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := s.copyTo(&log); err != nil || log.String() != "out\nerr\r\x01\x00\xffend" {
		t.Errorf("read %q, %v", log.String(), err)
	}
}

// A command that is not in the image fails at the container's init: the
// job's error is one line that names it, and nothing is left.
func TestPodmanMissingCommand(t *testing.T) {
	r, svc := newTestPodman(t)
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	j := testJob(gitDir, rev, testenv.Busybox+" /no-such-command-here")
	j.ID = 12
	_, log, err := runJob(context.Background(), t, r, j)
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "start container: ") || !strings.Contains(err.Error(), "no-such-command-here") || log != "" {
		t.Errorf("error %v, log %q; want one line naming the command, and no output", err, log)
	}
	if c := labelled(t, svc, j); c != "" {
		t.Errorf("container left: %s", c)
	}
}

// 200 MB of random bytes arrive byte for byte, and the runner's memory
// does not grow with them.
func TestPodmanLargeBinaryOutput(t *testing.T) {
	r, _ := newTestPodman(t)
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	const size = 200_000_000
	script := "head -c " + itoa(size) + " /dev/urandom > /tmp/d && cat /tmp/d && sha256sum /tmp/d"
	logf, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	before := peakRSS()
	j := testJob(gitDir, rev, testenv.Busybox+` sh -c "`+script+`"`)
	exit, err := r.Run(context.Background(), testHandle(r, j, logf))
	after := peakRSS()
	r.Cleanup(context.Background(), testHandle(r, j, nil))
	if err != nil || exit != 0 {
		t.Fatalf("exit %d %v", exit, err)
	}
	tail := len("  /tmp/d\n") + 64
	if fi, _ := logf.Stat(); fi.Size() != size+int64(tail) {
		t.Fatalf("log is %d bytes, want %d", fi.Size(), size+tail)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(logf, 0, size)); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 64)
	logf.ReadAt(want, size)
	if got := hex.EncodeToString(h.Sum(nil)); got != string(want) {
		t.Errorf("sha256 of the log's data %s, the container's %s", got, want)
	}
	t.Logf("peak RSS of the test process: %d MiB before, %d MiB after 200 MB of output", before>>20, after>>20)
	if after-before > 32<<20 {
		t.Errorf("peak RSS grew by %d MiB while copying the output", (after-before)>>20)
	}
}

// peakRSS is this process's peak resident set (VmHWM), in bytes.
func peakRSS() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			var kb int64
			for _, c := range f[1] {
				kb = kb*10 + int64(c-'0')
			}
			return kb << 10
		}
	}
	return 0
}

// The context ends (timeout or cancel): a process that ignores SIGTERM is
// killed after the grace period, and the container is gone.
func TestPodmanStopIgnoringSIGTERM(t *testing.T) {
	r, svc := newTestPodman(t)
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	j := testJob(gitDir, rev, testenv.Busybox+` sh -c "trap '' TERM; echo ready; while true; do sleep 1; done"`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	exit, log, err := runJob(ctx, t, r, j)
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("stopping took %s", d)
	}
	if err != nil || exit != 137 || !strings.Contains(log, "ready") {
		t.Errorf("exit %d, %v, log %q; want 137 (SIGKILL)", exit, err, log)
	}
	if c := labelled(t, svc, j); c != "" {
		t.Errorf("container left: %s", c)
	}
}

// A job over its log limit that ignores SIGTERM must not go on writing
// through the grace period. Over the limit, the container is killed at once, and what it
// writes after is dropped: its SIGTERM trap never runs.
func TestPodmanLogLimitKillsAtOnce(t *testing.T) {
	r, svc := newTestPodman(t)
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	j := testJob(gitDir, rev, testenv.Busybox+` sh -c "trap 'echo got-term' TERM; echo ready; while true; do sleep 0.1; done"`)
	logf, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	type result struct {
		exit int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		exit, err := r.Run(ctx, testHandle(r, j, logf))
		done <- result{exit, err}
	}()
	testenv.WaitUntil(t, "the job runs", time.Minute, func() bool {
		b, _ := os.ReadFile(logf.Name())
		return strings.Contains(string(b), "ready")
	})
	cancel(runner.ErrLogLimit) // as the worker does when the log is over its limit
	res := <-done
	r.Cleanup(context.Background(), testHandle(r, j, nil))
	b, _ := os.ReadFile(logf.Name())
	if res.err != nil || res.exit != 137 || strings.Contains(string(b), "got-term") {
		t.Errorf("exit %d, %v, log %q; want 137, killed without SIGTERM", res.exit, res.err, b)
	}
	if c := labelled(t, svc, j); c != "" {
		t.Errorf("container left: %s", c)
	}
}

func TestPodmanPullNever(t *testing.T) {
	r, _ := newTestPodman(t)
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	j := testJob(gitDir, rev, "localhost/jobq-no-such-image true")
	j.Options.Pull = "never"
	_, _, err := runJob(context.Background(), t, r, j)
	if err == nil || !strings.Contains(err.Error(), "is not present and JOBQ_PULL=never") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %v", err)
	}
	j.Options.Pull = "missing" // a pull that fails: no registry is reachable
	_, _, err = runJob(context.Background(), t, r, j)
	if err == nil || !strings.Contains(err.Error(), "pull image localhost/jobq-no-such-image") {
		t.Errorf("error %v", err)
	}
}

// The service restarts mid-job: conmon keeps the container running and its
// log, and the job goes on from it, its output whole, rather than ending
// there (its stream cut, its result whatever the broken wait said).
func TestPodmanServiceRestartedMidJob(t *testing.T) {
	r, svc := newTestPodman(t)
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	j := testJob(gitDir, rev, testenv.Busybox+` sh -c "echo before; sleep 3; echo after; exit 4"`)
	j.ID = 10
	done := make(chan struct{})
	var exit int
	var log string
	var err error
	go func() {
		exit, log, err = runJob(context.Background(), t, r, j)
		close(done)
	}()
	testenv.WaitUntil(t, "the job's container runs", time.Minute, func() bool { return labelled(t, svc, j) != "" })
	time.Sleep(time.Second) // within the sleep
	if err := svc.Restart(); err != nil {
		t.Fatal(err)
	}
	<-done
	if err != nil || exit != 4 || log != "before\nafter\n" {
		t.Errorf("exit %d, %v, log %q; want 4, \"before\\nafter\\n\"", exit, err, log)
	}
	if c := labelled(t, svc, j); c != "" {
		t.Errorf("container left: %s", c)
	}
}

// The service dies mid-job for good: the job fails with one line once it
// gave up waiting for the service (Config.ResumeFor); once the service is
// back, the next job runs and the orphaned container is swept away.
func TestPodmanServiceStoppedMidJob(t *testing.T) {
	r, svc := newTestPodman(t)
	r.cfg.ResumeFor = 2 * time.Second
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	// A container of another data directory on the same service: the sweep
	// must leave it alone.
	other, _ := svc.Podman(context.Background(), "run", "-d", "--label", LabelHome+"=/elsewhere", "--label", LabelJob+"=1", "--label", LabelRepo+"=x", testenv.Busybox, "sleep", "300")
	other = strings.TrimSpace(other)
	defer svc.Podman(context.Background(), "rm", "-f", "-t", "0", other)
	j := testJob(gitDir, rev, testenv.Busybox+" sleep 300")
	done := make(chan error, 1)
	go func() {
		exit, log, err := runJob(context.Background(), t, r, j)
		t.Logf("exit %d, log %q, err %v", exit, log, err)
		done <- err
	}()
	testenv.WaitUntil(t, "the job's container exists", time.Minute, func() bool { return labelled(t, svc, j) != "" })
	time.Sleep(500 * time.Millisecond)
	svc.Stop()
	select {
	case err := <-done:
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %v, want one line", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the job did not end when the service went away")
	}
	if err := svc.Restart(); err != nil {
		t.Fatal(err)
	}
	j2 := testJob(gitDir, rev, testenv.Busybox+" echo next")
	j2.ID = 8
	exit, log, err := runJob(context.Background(), t, r, j2)
	if err != nil || exit != 0 || log != "next\n" {
		t.Errorf("next job: %d %v %q", exit, err, log)
	}
	if c := labelled(t, svc, j); c != "" {
		t.Errorf("the orphaned container was not swept: %s", c)
	}
	if out, _ := svc.Podman(context.Background(), "ps", "-q", "--filter", "id="+other); strings.TrimSpace(out) == "" {
		t.Error("the sweep removed a container of another data directory")
	}
}

// Cleanup, as a later worker calls it for a lost job, removes the
// container and the checkout.
func TestPodmanCleanup(t *testing.T) {
	r, svc := newTestPodman(t)
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	j := testJob(gitDir, rev, testenv.Busybox+" sleep 300")
	j.ID = 9
	done := make(chan struct{})
	go func() { runJob(context.Background(), t, r, j); close(done) }()
	testenv.WaitUntil(t, "the job's container exists", time.Minute, func() bool { return labelled(t, svc, j) != "" })
	co, _ := os.ReadFile(record(testHandle(r, j, nil), "checkout"))
	if err := r.Cleanup(context.Background(), testHandle(r, j, nil)); err != nil {
		t.Fatal(err)
	}
	if c := labelled(t, svc, j); c != "" {
		t.Errorf("container left: %s", c)
	}
	if _, err := os.Stat(string(co)); len(co) == 0 || err == nil {
		t.Errorf("checkout %q left", co)
	}
	<-done
	if err := r.Cleanup(context.Background(), testHandle(r, j, nil)); err != nil {
		t.Errorf("a second Cleanup: %v", err)
	}
	// Removing a missing container counts as done: the service's typed
	// not-found answer, not its wording, says so.
	conn, _, err := r.cfg.Service.Connect(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	const missing = "0123456789abcdef"
	if ok, err := containers.Exists(conn, missing, nil); err != nil || ok {
		t.Fatalf("container %s exists: %v, %v", missing, ok, err)
	}
	if err := remove(conn, missing); err != nil {
		t.Errorf("removing a missing container: %v", err)
	}
	if _, err := containers.Inspect(conn, missing, nil); !notFound(err) {
		t.Errorf("inspect of a missing container: %v, not a not-found answer", err)
	}
}

type specGen = specgen.SpecGenerator
