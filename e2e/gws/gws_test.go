// Package gws tests the project's GWS image (Containerfile): built on a
// stand-in GWS base, run as an unprivileged outer container, with jobs run
// by jobq in rootless containers nested inside it.
package gws

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

// names are the stand-in, image and container of this test run's own
// (JOBQ_TEST_ACCOUNT, as for the other e2e tests): another run on the
// host builds from another tree with another admin key, and removes its
// container when it starts.
func names() (standin, image, container string) {
	run := os.Getenv("JOBQ_TEST_ACCOUNT")
	if run == "" {
		run = "jobq-test"
	}
	return "localhost/jobq-gws-standin-" + run + ":latest", "localhost/jobq-gws-e2e-" + run + ":latest", "jobq-gws-e2e-" + run
}

type fixture struct {
	t    *testing.T
	dir  string
	conf string // the host Podman's containers.conf
	port int
	http int // the container's nginx (cgit and jobq's web view)
}

func (f *fixture) run(ctx context.Context, name string, args ...string) string {
	f.t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+f.conf)
	cmd.Dir = testenv.SourceDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		f.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (f *fixture) podman(ctx context.Context, args ...string) string {
	f.t.Helper()
	return f.run(ctx, "podman", args...)
}

func (f *fixture) ssh(ctx context.Context, args ...string) testenv.Result {
	return f.sshAs(ctx, "admin", args...)
}

// sshAs runs an ssh command as a gitolite user (its key's name).
func (f *fixture) sshAs(ctx context.Context, user string, args ...string) testenv.Result {
	argv := append(strings.Fields(f.sshCommand(user)), "git@127.0.0.1")
	return testenv.Capture(exec.CommandContext(ctx, argv[0], append(argv[1:], args...)...))
}

func (f *fixture) sshCommand(user string) string {
	return fmt.Sprintf("ssh -i %s -p %d -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -o IdentitiesOnly=yes",
		filepath.Join(f.dir, user), f.port)
}

func (f *fixture) git(ctx context.Context, dir string, args ...string) string {
	f.t.Helper()
	return f.gitAs(ctx, "admin", dir, args...)
}

func (f *fixture) gitAs(ctx context.Context, user, dir string, args ...string) string {
	f.t.Helper()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+f.sshCommand(user), "GIT_AUTHOR_NAME=admin", "GIT_AUTHOR_EMAIL=a@example.com",
		"GIT_COMMITTER_NAME=admin", "GIT_COMMITTER_EMAIL=a@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		f.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// push commits ci.sh to repo and pushes it; it returns the push's output.
func (f *fixture) push(ctx context.Context, repo, script string) string {
	f.t.Helper()
	return f.pushAs(ctx, "admin", repo, script)
}

func (f *fixture) pushAs(ctx context.Context, user, repo, script string) string {
	f.t.Helper()
	w := filepath.Join(f.dir, "work-"+repo)
	if _, err := os.Stat(w); err != nil {
		f.gitAs(ctx, user, f.dir, "clone", "-q", fmt.Sprintf("ssh://git@127.0.0.1:%d/%s", f.port, repo), w)
	}
	os.WriteFile(filepath.Join(w, "ci.sh"), []byte(script), 0o644)
	f.gitAs(ctx, user, w, "add", "ci.sh")
	f.gitAs(ctx, user, w, "commit", "-q", "-m", "ci")
	return f.gitAs(ctx, user, w, "push", "origin", "HEAD:refs/heads/master")
}

func TestGWSImage(t *testing.T) {
	for _, p := range []string{"podman", "debootstrap", "ssh", "git", "make"} {
		_, err := exec.LookPath(p)
		testenv.Require(t, err == nil && os.Geteuid() == 0, p+" and root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	standin, image, container := names()
	f := &fixture{t: t, dir: t.TempDir()}
	f.conf = filepath.Join(f.dir, "containers.conf")
	os.WriteFile(f.conf, []byte(testenv.ContainersConf), 0o644)
	cleanup := func() {
		exec.Command("podman", "rm", "-f", "-t", "0", container).Run()
		exec.Command("podman", "volume", "rm", "-f", container).Run()
	}
	cleanup()
	t.Cleanup(cleanup)

	// The stand-in base: debootstrap'd Debian (cached, shared with the
	// build hosts of e2e/remote), then GWS's layout.
	if err := testenv.EnsureDebianImage(ctx, f.conf); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"admin", "mallory"} {
		f.run(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", user, "-f", filepath.Join(f.dir, user))
	}
	standinDir := filepath.Join(f.dir, "standin")
	os.MkdirAll(standinDir, 0o755)
	f.run(ctx, "cp", filepath.Join(testenv.SourceDir(), "e2e/gws/testdata/standin.Containerfile"), filepath.Join(f.dir, "admin.pub"), standinDir)
	f.podman(ctx, "build", "-q", "-t", standin, "-f", filepath.Join(standinDir, "standin.Containerfile"), standinDir)

	// The project's one command that builds the image.
	f.run(ctx, "make", "-s", "image", "BASE="+standin, "IMAGE="+image)

	f.port, f.http = freePort(t), freePort(t)
	// The documented outer run line: no --privileged; limits that leave
	// room for sshd beside JOBQ_SLOTS jobs of JOBQ_PIDS (Containerfile).
	// nofile as testenv.ContainersConf has it: a --ulimit replaces its
	// default_ulimits, and these hosts lack CAP_SYS_RESOURCE for Podman's
	// own default.
	f.podman(ctx, "run", "-d", "--name", container, "--device", "/dev/fuse", "--security-opt", "label=disable",
		"--pids-limit", "4096", "--ulimit", "nproc=4096:4096", "--ulimit", "nofile=1024:1024",
		"-p", fmt.Sprintf("127.0.0.1:%d:2222", f.port), "-p", fmt.Sprintf("127.0.0.1:%d:8080", f.http), "-v", container+":/config", image)
	waitSSH(t, f)

	// The job image, inside: imported into git's nested storage.
	err := testenv.ImportBusybox(ctx, f.dir, func(ctx context.Context, name string, args ...string) (string, error) {
		tarball := filepath.Join(f.dir, "busybox.tar")
		f.podman(ctx, "cp", tarball, container+":/tmp/busybox.tar")
		for i, a := range args {
			if a == tarball {
				args[i] = "/tmp/busybox.tar"
			}
		}
		// Not f.podman: ImportBusybox asks first whether the image
		// exists, and "no" is an exit status, not a failure of the test.
		cmd := exec.CommandContext(ctx, "podman", append([]string{"exec", container, name}, args...)...)
		cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+f.conf)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("podman exec %s %s: %w: %s", name, strings.Join(args, " "), err, out)
		}
		return string(out), nil
	})
	if err != nil {
		t.Fatal(err)
	}

	admin := filepath.Join(f.dir, "gitolite-admin")
	f.git(ctx, f.dir, "clone", "-q", fmt.Sprintf("ssh://git@127.0.0.1:%d/gitolite-admin", f.port), admin)
	conf, _ := os.ReadFile(filepath.Join(admin, "conf/gitolite.conf"))
	conf = append(conf, []byte(`
repo app slow
    RW+ = admin
    R   = gitweb
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"

repo iso-a
    RW+ = admin
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"
    option ENV.JOBQ_MEMORY = "64m"

repo iso-b limits-other budget-other
    RW+ = mallory
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"

repo bomb uidbomb
    RW+ = admin
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_TIMEOUT = "3m"
    option ENV.JOBQ_PIDS = "100"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"
`)...)
	os.WriteFile(filepath.Join(admin, "conf/gitolite.conf"), conf, 0o644)
	f.run(ctx, "cp", filepath.Join(f.dir, "mallory.pub"), filepath.Join(admin, "keydir"))
	f.git(ctx, admin, "add", "keydir")
	f.git(ctx, admin, "commit", "-q", "-am", "jobs")
	f.git(ctx, admin, "push", "-q")

	// A push runs a job in a nested rootless container.
	out := f.push(ctx, "app", "echo \"nested job $JOBQ_JOB_ID of $GL_REPO in $(pwd)\"\ncat /proc/self/uid_map\n")
	if !strings.Contains(out, "jobq: queued app job 0 in queue repo:app") {
		t.Fatalf("push output:\n%s", out)
	}
	r := f.ssh(ctx, "jobq", "app", "0")
	if r.Code != 0 || !strings.Contains(r.Stdout, "nested job 0 of app in /source") || !strings.Contains(r.Stdout, "jobq: succeeded") {
		t.Fatalf("jobq app 0: %s", r)
	}
	// The image's nginx serves the job's page beside cgit's.
	for path, want := range map[string]string{"/jobq/app/0": "nested job 0 of app in ", "/": "cgit"} {
		if code, body := httpGet(ctx, fmt.Sprintf("http://127.0.0.1:%d%s", f.http, path)); code != 200 || !strings.Contains(body, want) {
			_, tail, _ := strings.Cut(body, "<pre")
			t.Errorf("GET %s from the image's nginx: %d\n%.3000s", path, code, tail)
		}
	}

	// One job running, one queued; then the outer container restarts.
	f.push(ctx, "slow", "echo started\nsleep 300\n")
	testenv.WaitUntil(t, "slow job 0 runs", 2*time.Minute, func() bool { return strings.Contains(f.ssh(ctx, "jobq", "log", "slow", "0").Stdout, "started") })
	f.push(ctx, "slow", "echo quick\n")
	if r := f.ssh(ctx, "jobq", "slow"); !strings.Contains(r.Stdout, "queued (1 ahead)") {
		t.Fatalf("before the restart: %s", r)
	}
	f.podman(ctx, "restart", "-t", "1", container)
	waitSSH(t, f)

	// Logs and the queued job survived.
	if r := f.ssh(ctx, "jobq", "app", "0"); r.Code != 0 || !strings.Contains(r.Stdout, "nested job 0 of app in /source") {
		t.Errorf("after the restart, jobq app 0: %s", r)
	}
	if r := f.ssh(ctx, "jobq", "slow"); !strings.Contains(r.Stdout, "queued") {
		t.Errorf("after the restart, jobq slow: %s", r)
	}
	// The next push starts a worker: the interrupted job is lost, the
	// queued one and the new one run.
	f.push(ctx, "slow", "echo third\n")
	for id, want := range map[int]string{1: "quick", 2: "third"} {
		if r := f.ssh(ctx, "jobq", "slow", fmt.Sprint(id)); r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Errorf("jobq slow %d: %s", id, r)
		}
	}
	if r := f.ssh(ctx, "jobq", "slow", "0"); !strings.Contains(r.Stdout, "jobq: lost") {
		t.Errorf("jobq slow 0: %s", r)
	}
	if out := f.podman(ctx, "exec", container, "podman", "ps", "-a", "-q", "--filter", "label=jobq.repo"); strings.TrimSpace(out) != "" {
		t.Errorf("nested containers left: %s", out)
	}
	isolation(ctx, t, f)
	limits(ctx, t, f)
	budget(ctx, t, f)
}

// limits: a job that tries to start 2000 processes under JOBQ_PIDS=100 is
// held near 100 (RLIMIT_NPROC: rootless Podman inside cannot use the pids
// cgroup), and meanwhile sshd answers: another user's push succeeds and
// its job runs.
func limits(ctx context.Context, t *testing.T, f *fixture) {
	_, _, container := names()
	if out := f.podman(ctx, "exec", container, "grep", "JOBQ_SLOTS", "/config/.gitolite.rc"); !strings.Contains(out, "$ENV{JOBQ_SLOTS} = 2;") {
		t.Errorf("the image's JOBQ_SLOTS in .gitolite.rc: %q", out)
	}
	f.push(ctx, "bomb", testenv.BombScript)
	var log string
	testenv.WaitUntil(t, "the bomb is held", 2*time.Minute, func() bool {
		log = f.ssh(ctx, "jobq", "log", "bomb", "0").Stdout
		return testenv.BombHeld.MatchString(log)
	})
	n, _ := strconv.Atoi(testenv.BombHeld.FindStringSubmatch(log)[1])
	if n > 100 || n < 50 {
		t.Errorf("the bomb started %d of %d processes under JOBQ_PIDS=100:\n%s", n, testenv.BombMax, log)
	}
	if !strings.Contains(log, "jobq: JOBQ_PIDS=100 is applied to each user ID of the job (RLIMIT_NPROC), not by the pids cgroup") || !strings.Contains(log, "oom_score_adj 1000") {
		t.Errorf("the bomb's log does not say what bounds it:\n%s", log)
	}
	// What GWS runs beside the jobs, for the arithmetic of the
	// Containerfile: every task in the container, the bomb's included.
	tasks := f.podman(ctx, "exec", container, "sh", "-c", "n=0; for t in /proc/[0-9]*/task/*; do n=$((n+1)); done; echo $n")
	t.Logf("the bomb started %d processes; GWS holds %s tasks in all", n, strings.TrimSpace(tasks))

	out := f.pushAs(ctx, "mallory", "limits-other", "echo other job ran\n")
	if !strings.Contains(out, "jobq: queued limits-other job 0") {
		t.Errorf("the other user's push beside the bomb:\n%s", out)
	}
	if r := f.sshAs(ctx, "mallory", "jobq", "limits-other", "0"); r.Code != 0 || !strings.Contains(r.Stdout, "other job ran") || !strings.Contains(r.Stdout, "jobq: succeeded") {
		t.Errorf("the other user's job beside the bomb: %s", r)
	}
	if strings.Contains(f.ssh(ctx, "jobq", "log", "bomb", "0").Stdout, "bomb released") {
		t.Fatal("the bomb ended before the other job did: the two did not run at once")
	}
	f.podman(ctx, "exec", container, "sh", "-c", `podman unshare touch "$(cat /config/.local/share/jobq/repos/bomb/0/run/checkout)/release"`)
	if r := f.ssh(ctx, "jobq", "bomb", "0"); !strings.Contains(r.Stdout, "bomb released") || !strings.Contains(r.Stdout, "jobq: succeeded") {
		t.Errorf("the bomb's end: %s", r)
	}
	testenv.WaitUntil(t, "the bomb's container is removed", time.Minute, func() bool {
		return strings.TrimSpace(f.podman(ctx, "exec", container, "podman", "ps", "-a", "-q", "--filter", "label=jobq.repo")) == ""
	})
}

// isolation: jobs of two users, running at once, attack each other as
// hostile pushers would, and every probe is refused.
func isolation(ctx context.Context, t *testing.T, f *fixture) {
	f.push(ctx, "iso-a", testenv.ProbeScript(t, "a", "b", 2222, 0))
	f.pushAs(ctx, "mallory", "iso-b", testenv.ProbeScript(t, "b", "a", 2222, 0))
	a, b := f.sshAs(ctx, "admin", "jobq", "iso-a", "0"), f.sshAs(ctx, "mallory", "jobq", "iso-b", "0")
	mapA, mapB := testenv.CheckProbeLog(t, "a", a.Stdout), testenv.CheckProbeLog(t, "b", b.Stdout)
	testenv.CheckDisjoint(t, mapA, mapB)
	// Rootless Podman on cgroup v1 cannot limit a job: the log says so.
	if !strings.Contains(a.Stdout, "jobq: JOBQ_MEMORY is not applied: rootless Podman cannot limit a container on cgroup v1") {
		t.Errorf("no word on the memory limit:\n%s", a.Stdout)
	}
	// /dev/shm is the job's own: what a job leaves there goes with it, and
	// Podman's lock file in GWS's /dev/shm is out of its reach.
	f.push(ctx, "app", "echo junk >/dev/shm/libpod_rootless_lock_1000 && echo left >/dev/shm/left && echo shm-written\n")
	if r := f.ssh(ctx, "jobq", "app", "1"); r.Code != 0 || !strings.Contains(r.Stdout, "shm-written") {
		t.Errorf("jobq app 1: %s", r)
	}
	_, _, container := names()
	if out := f.podman(ctx, "exec", container, "sh", "-c", "ls /dev/shm; cat /dev/shm/libpod_rootless_lock_1000 | head -c 4 | od -c"); strings.Contains(out, "iso-") || strings.Contains(out, "left") || strings.Contains(out, "j   u   n   k") {
		t.Errorf("GWS's /dev/shm after the jobs:\n%s", out)
	}
	f.push(ctx, "app", "echo next job runs\n")
	if r := f.ssh(ctx, "jobq", "app", "2"); r.Code != 0 || !strings.Contains(r.Stdout, "next job runs") {
		t.Errorf("jobq app 2: %s", r)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func httpGet(ctx context.Context, url string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitSSH(t *testing.T, f *fixture) {
	t.Helper()
	testenv.WaitUntil(t, "sshd in the container answers", 2*time.Minute, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return f.ssh(ctx, "info").Code == 0
	})
}

// budget: the Podman service inside, which jobq starts, has git's 4096
// processes less 512 (JOBQ_JOBS_NPROC's default): a bound on all jobs
// together that leaves sshd, nginx and the workers 512. With a budget of
// 300, a job that is root in its container and switches among 5 of its
// user IDs, each held to JOBQ_PIDS=100, is held to 300 together with the
// service; meanwhile another user's push succeeds, and its job runs once
// the bomb is released (one slot: a job that starts while another holds
// the whole budget fails to start).
func budget(ctx context.Context, t *testing.T, f *fixture) {
	_, _, container := names()
	const svcLog = "/config/.local/share/jobq/podman-service.log"
	if out := f.podman(ctx, "exec", container, "cat", svcLog); !strings.Contains(out, "with RLIMIT_NPROC 3584: all jobs' processes and threads together") {
		t.Errorf("the service inside does not have 4096 - 512 processes:\n%s", out)
	}
	// As docs/gws-image.md says to set them.
	f.podman(ctx, "exec", "-e", "JOBQ_SLOTS=1", "-e", "JOBQ_JOBS_NPROC=300", container, "gitolite-install-jobq", "/usr/local/bin/jobq")
	if out := f.podman(ctx, "exec", container, "grep", "JOBQ_", "/config/.gitolite.rc"); strings.Count(out, "JOBQ_") != 2 ||
		!strings.Contains(out, "$ENV{JOBQ_SLOTS} = 1; # set by gitolite-install-jobq") || !strings.Contains(out, "$ENV{JOBQ_JOBS_NPROC} = 300; # set by gitolite-install-jobq") {
		t.Fatalf("the settings in .gitolite.rc: %s", out)
	}
	f.stopInnerService(ctx, t)

	f.push(ctx, "uidbomb", testenv.UIDBombScript(5, 100))
	var log string
	testenv.WaitUntil(t, "the bomb is held", 2*time.Minute, func() bool {
		log = f.ssh(ctx, "jobq", "log", "uidbomb", "0").Stdout
		return testenv.BombHeld.MatchString(log) && testenv.BombUsers.MatchString(log)
	})
	n, _ := strconv.Atoi(testenv.BombHeld.FindStringSubmatch(log)[1])
	users := strings.Fields(testenv.BombUsers.FindStringSubmatch(log)[1])
	t.Logf("the bomb started %d processes as %d users", n, len(users))
	if len(users) < 2 || n <= 100 || n > 300 {
		t.Errorf("the bomb started %d processes as %d users, under JOBQ_PIDS=100 and JOBQ_JOBS_NPROC=300:\n%s", n, len(users), log)
	}
	if out := f.podman(ctx, "exec", container, "cat", svcLog); !strings.Contains(out, "with RLIMIT_NPROC 300: ") {
		t.Errorf("the service's log does not say JOBQ_JOBS_NPROC=300:\n%s", out)
	}

	out := f.pushAs(ctx, "mallory", "budget-other", "echo other job ran\n")
	if !strings.Contains(out, "jobq: queued budget-other job 0") {
		t.Errorf("the other user's push beside the bomb:\n%s", out)
	}
	if strings.Contains(f.ssh(ctx, "jobq", "log", "uidbomb", "0").Stdout, "bomb released") {
		t.Fatal("the bomb ended before the other push: the two did not run at once")
	}
	f.podman(ctx, "exec", container, "sh", "-c", `podman unshare touch "$(cat /config/.local/share/jobq/repos/uidbomb/0/run/checkout)/release"`)
	if r := f.ssh(ctx, "jobq", "uidbomb", "0"); !strings.Contains(r.Stdout, "bomb released") || !strings.Contains(r.Stdout, "jobq: succeeded") {
		t.Errorf("the bomb's end: %s", r)
	}
	if r := f.sshAs(ctx, "mallory", "jobq", "budget-other", "0"); r.Code != 0 || !strings.Contains(r.Stdout, "other job ran") || !strings.Contains(r.Stdout, "jobq: succeeded") {
		t.Errorf("the other user's job: %s", r)
	}
	testenv.WaitUntil(t, "the bomb's container is removed", time.Minute, func() bool {
		return strings.TrimSpace(f.podman(ctx, "exec", container, "podman", "ps", "-a", "-q", "--filter", "label=jobq.repo")) == ""
	})
}

// stopInnerService stops the Podman service inside the container (the
// next job's worker starts another), and waits until it has exited.
func (f *fixture) stopInnerService(ctx context.Context, t *testing.T) {
	t.Helper()
	_, _, container := names()
	// $s: the script's own command line does not name the service.
	const scan = `s=system; for p in /proc/[0-9]*; do case "$(tr '\0' ' ' <$p/cmdline 2>/dev/null)" in *"podman $s service"*) echo ${p#/proc/};; esac; done`
	f.podman(ctx, "exec", container, "sh", "-c", scan+" | xargs -r kill")
	testenv.WaitUntil(t, "the Podman service inside exits", 2*time.Minute, func() bool {
		return strings.TrimSpace(f.podman(ctx, "exec", container, "sh", "-c", scan)) == ""
	})
}
