// Package testenv sets up what jobq's end-to-end tests and the demo run
// against: a hosting account with gitolite 3, jobq installed as its
// repo-specific hook and as a gitolite command, and an sshd of its own on
// 127.0.0.1. It needs root and the Debian packages .ci/run installs.
package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Env is a running gitolite + sshd.
type Env struct {
	Dir    string // everything of this Env: keys, sshd files, binaries, the home
	User   string // the hosting account
	Home   string // its home directory
	Bin    string // jobq and jobq-worker
	Port   int    // sshd's port on 127.0.0.1
	UID    int
	GID    int
	admin  string // checkout of gitolite-admin
	sshd   *exec.Cmd
	Source string // the jobq source tree
}

// Options choose the hosting account and the users who get keys.
type Options struct {
	User  string   // hosting account, created if missing; default $JOBQ_TEST_ACCOUNT, else "jobq-test"
	Users []string // ssh users besides "admin"
	Dir   string   // where to put everything; default a new directory in /tmp
	Port  int      // sshd port; default a free one
	// Podman sets up rootless Podman for the hosting account: the
	// containers.conf these hosts need and the Busybox image.
	Podman bool
}

// Missing names the programs the environment needs that are not installed.
func Missing() []string {
	var miss []string
	for _, p := range []string{"gitolite", "/usr/sbin/sshd", "ssh", "ssh-keygen", "git", "runuser", "useradd", "make"} {
		if _, err := exec.LookPath(p); err != nil {
			miss = append(miss, p)
		}
	}
	if os.Geteuid() != 0 {
		miss = append(miss, "root")
	}
	return miss
}

// Require fails the test under CI and skips it elsewhere when a
// prerequisite is missing: CI installs everything, so there a gap is a
// defect, never a skip.
func Require(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("missing %s (CI must provide it)", what)
	}
	t.Skipf("missing %s; run scripts/test as root", what)
}

// WaitUntil polls cond until it holds, failing the test after timeout.
func WaitUntil(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// SourceDir is the root of the jobq source tree.
func SourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Start sets everything up; Close undoes it.
func Start(ctx context.Context, o Options) (e *Env, err error) {
	if miss := Missing(); len(miss) > 0 {
		return nil, fmt.Errorf("missing: %s (run .ci/run or scripts/setup as root)", strings.Join(miss, ", "))
	}
	if o.User == "" {
		// Two test runs at once (two checkouts on one machine) need two
		// accounts: each kills and removes its account's processes.
		o.User = os.Getenv("JOBQ_TEST_ACCOUNT")
	}
	if o.User == "" {
		o.User = "jobq-test"
	}
	e = &Env{User: o.User, Source: SourceDir()}
	started := e // e is nil once an error is returned
	defer func() {
		if err != nil {
			started.Close()
		}
	}()
	if o.Dir == "" {
		if e.Dir, err = os.MkdirTemp("", "jobq-e2e-"); err != nil {
			return nil, err
		}
	} else {
		e.Dir = o.Dir
		if err = os.MkdirAll(e.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	if err = os.Chmod(e.Dir, 0o755); err != nil {
		return nil, err
	}
	e.Home = filepath.Join(e.Dir, "home")
	e.Bin = filepath.Join(e.Dir, "bin")
	for _, d := range []string{e.Bin, filepath.Join(e.Dir, "keys"), filepath.Join(e.Dir, "sshd"), "/run/sshd"} {
		if err = os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	os.Chmod(filepath.Join(e.Dir, "keys"), 0o700)
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"build jobq", e.build},
		{"hosting account", e.account},
		{"keys", func(ctx context.Context) error { return e.keys(ctx, append([]string{"admin"}, o.Users...)) }},
		{"gitolite", e.gitolite},
		{"rootless podman", func(ctx context.Context) error {
			if !o.Podman {
				return nil
			}
			return e.rootlessPodman(ctx)
		}},
		{"sshd", func(ctx context.Context) error { return e.startSSHD(ctx, o.Port) }},
		{"gitolite-admin", e.cloneAdmin},
	}
	for _, s := range steps {
		if err := s.fn(ctx); err != nil {
			return nil, fmt.Errorf("test environment: %s: %w", s.name, err)
		}
	}
	return e, nil
}

// run runs a command and returns its combined output in the error.
func run(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func (e *Env) build(ctx context.Context) error {
	_, err := run(ctx, e.Source, nil, "make", "-s", "build", "BINDIR="+e.Bin)
	if err != nil {
		return err
	}
	return os.Chmod(e.Bin, 0o755)
}

func (e *Env) account(ctx context.Context) error {
	if _, err := user.Lookup(e.User); err != nil {
		if _, err := run(ctx, "", nil, "useradd", "--create-home", "--home-dir", e.Home, "--shell", "/bin/sh", e.User); err != nil {
			return err
		}
	} else {
		// A fresh home for this run; nothing of an earlier one may linger.
		run(ctx, "", nil, "pkill", "-KILL", "-u", e.User)
		if u, err := user.Lookup(e.User); err == nil {
			os.RemoveAll(filepath.Join(os.TempDir(), "podman-run-"+u.Uid)) // rootless Podman's state of an earlier home
			// Secrets of an earlier run's jobs, whose workers the kill
			// above stopped before their clean-up, and whose data
			// directory is gone.
			os.RemoveAll(filepath.Join("/dev/shm", "jobq-secrets-"+u.Uid))
		}
		if _, err := run(ctx, "", nil, "usermod", "--home", e.Home, e.User); err != nil {
			return err
		}
	}
	// sshd refuses a locked account.
	if _, err := run(ctx, "", nil, "usermod", "-p", "*", e.User); err != nil {
		return err
	}
	u, err := user.Lookup(e.User)
	if err != nil {
		return err
	}
	e.UID, _ = strconv.Atoi(u.Uid)
	e.GID, _ = strconv.Atoi(u.Gid)
	if err := os.MkdirAll(e.Home, 0o700); err != nil {
		return err
	}
	return os.Chown(e.Home, e.UID, e.GID)
}

func (e *Env) keys(ctx context.Context, names []string) error {
	for _, n := range names {
		key := e.Key(n)
		if _, err := os.Stat(key); err == nil {
			continue
		}
		if _, err := run(ctx, "", nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", n, "-f", key); err != nil {
			return err
		}
	}
	return nil
}

// Key is the private key file of an ssh user.
func (e *Env) Key(name string) string { return filepath.Join(e.Dir, "keys", name) }

// AsUser runs a command as the hosting account, in its home, with a plain
// environment plus extra.
func (e *Env) AsUser(ctx context.Context, extra []string, name string, args ...string) (string, error) {
	env := append([]string{"HOME=" + e.Home, "USER=" + e.User, "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}, extra...)
	argv := append([]string{"-u", e.User, "--", "env", "-i"}, env...)
	argv = append(argv, append([]string{name}, args...)...)
	return run(ctx, e.Home, nil, "runuser", argv...)
}

func (e *Env) gitolite(ctx context.Context) error {
	pub := filepath.Join(e.Home, "admin.pub")
	b, err := os.ReadFile(e.Key("admin") + ".pub")
	if err != nil {
		return err
	}
	if err := os.WriteFile(pub, b, 0o644); err != nil {
		return err
	}
	if _, err := e.AsUser(ctx, nil, "gitolite", "setup", "-pk", pub); err != nil {
		return err
	}
	// jobq is installed the way the README says, by the project's script.
	script := filepath.Join(e.Bin, "gitolite-install-jobq")
	if _, err := run(ctx, "", nil, "install", "-m", "0755", filepath.Join(e.Source, "scripts", "gitolite-install-jobq"), script); err != nil {
		return err
	}
	if _, err := run(ctx, "", nil, "chown", "-R", e.User+":", e.Home); err != nil {
		return err
	}
	_, err = e.AsUser(ctx, nil, script, filepath.Join(e.Bin, "jobq"))
	return err
}

func (e *Env) startSSHD(ctx context.Context, port int) error {
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	e.Port = port
	dir := filepath.Join(e.Dir, "sshd")
	hostKey := filepath.Join(dir, "host_ed25519")
	if _, err := run(ctx, "", nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey); err != nil {
		return err
	}
	conf := fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
HostKey %s
PidFile %s
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowUsers %s
MaxStartups 100:30:200
MaxSessions 100
LogLevel ERROR
`, port, hostKey, filepath.Join(dir, "sshd.pid"), e.User)
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "sshd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	e.sshd = exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", cfg)
	e.sshd.Stdout, e.sshd.Stderr = logf, logf
	// A session of its own: the demo leaves it running after it exits.
	e.sshd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := e.sshd.Start(); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return nil
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
	return fmt.Errorf("sshd did not listen on port %d: %s", port, log)
}

// SSHCommand is the ssh client command line for an ssh user, as
// GIT_SSH_COMMAND takes it.
func (e *Env) SSHCommand(name string) string {
	return fmt.Sprintf("ssh -i %s -p %d -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -o IdentitiesOnly=yes", e.Key(name), e.Port)
}

// URL is a repository's address for git.
func (e *Env) URL(repo string) string {
	return fmt.Sprintf("ssh://%s@127.0.0.1:%d/%s", e.User, e.Port, repo)
}

// Result is a finished command's output and exit status.
type Result struct {
	Stdout, Stderr string
	Code           int
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// SSH runs "ssh HOSTING-USER@127.0.0.1 ARGS..." as an ssh user.
func (e *Env) SSH(ctx context.Context, name string, args ...string) Result {
	argv := append(strings.Fields(e.SSHCommand(name)), e.User+"@127.0.0.1")
	argv = append(argv, args...)
	return Capture(exec.CommandContext(ctx, argv[0], argv[1:]...))
}

// Git runs git in dir as an ssh user (for clone, push, fetch).
func (e *Env) Git(ctx context.Context, name, dir string, args ...string) Result {
	return Capture(e.GitCmd(ctx, name, dir, args...))
}

// GitCmd is the command Git runs, not started.
func (e *Env) GitCmd(ctx context.Context, name, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+e.SSHCommand(name),
		"GIT_AUTHOR_NAME="+name, "GIT_AUTHOR_EMAIL="+name+"@example.com",
		"GIT_COMMITTER_NAME="+name, "GIT_COMMITTER_EMAIL="+name+"@example.com")
	return cmd
}

// Capture runs cmd and returns its output and exit status.
func Capture(cmd *exec.Cmd) Result {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		errb.WriteString(err.Error())
	}
	return Result{out.String(), errb.String(), code}
}

func (e *Env) cloneAdmin(ctx context.Context) error {
	e.admin = filepath.Join(e.Dir, "gitolite-admin")
	if r := e.Git(ctx, "admin", e.Dir, "clone", "-q", e.URL("gitolite-admin"), e.admin); r.Code != 0 {
		return fmt.Errorf("clone gitolite-admin: %s", r)
	}
	return nil
}

// Configure replaces conf/gitolite.conf with conf (gitolite-admin's repo
// rule is kept first), adds the users' keys and pushes it as admin.
func (e *Env) Configure(ctx context.Context, conf string) error {
	keydir := filepath.Join(e.admin, "keydir")
	ents, _ := os.ReadDir(filepath.Join(e.Dir, "keys"))
	for _, k := range ents {
		if !strings.HasSuffix(k.Name(), ".pub") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(e.Dir, "keys", k.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(keydir, k.Name()), b, 0o644); err != nil {
			return err
		}
	}
	full := "repo gitolite-admin\n    RW+ = admin\n\n" + conf
	if err := os.WriteFile(filepath.Join(e.admin, "conf", "gitolite.conf"), []byte(full), 0o644); err != nil {
		return err
	}
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "--allow-empty", "-m", "configure"}, {"push", "-q", "origin", "HEAD"}} {
		if r := e.Git(ctx, "admin", e.admin, args...); r.Code != 0 {
			return fmt.Errorf("gitolite-admin: git %s: %s", strings.Join(args, " "), r)
		}
	}
	return nil
}

// DataDir is jobq's data directory for the hosting account.
func (e *Env) DataDir() string { return filepath.Join(e.Home, ".local", "share", "jobq") }

// Close stops sshd and every process of the hosting account and removes
// the environment's files.
func (e *Env) Close() error {
	if e.sshd != nil && e.sshd.Process != nil {
		e.sshd.Process.Kill()
		e.sshd.Wait()
	}
	if e.User != "" {
		exec.Command("pkill", "-KILL", "-u", e.User).Run()
	}
	if e.Dir != "" && strings.HasPrefix(e.Dir, os.TempDir()) {
		return os.RemoveAll(e.Dir)
	}
	return nil
}

// MakeRepo makes a bare repository whose one commit holds files.
func MakeRepo(t testing.TB, files map[string]string) (gitDir, rev string) {
	t.Helper()
	dir := t.TempDir()
	gitDir = filepath.Join(dir, "repo.git")
	work := filepath.Join(dir, "work")
	git := func(dir string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git(dir, "init", "-q", "--bare", gitDir)
	git(dir, "init", "-q", work)
	for name, body := range files {
		p := filepath.Join(work, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	git(work, "add", "-A")
	git(work, "commit", "-q", "-m", "c")
	rev = git(work, "rev-parse", "HEAD")
	git(work, "push", "-q", gitDir, "HEAD:refs/heads/master")
	return gitDir, rev
}

// NotRun is for a TestMain whose suite cannot run here (why): under CI it
// fails (exit status 1); elsewhere it runs no test, so that go test says
// "[no tests to run]" instead of a bare ok, and -v says why.
func NotRun(m *testing.M, suite, why string) int {
	if os.Getenv("CI") != "" {
		fmt.Fprintf(os.Stderr, "%s: FAIL: %s (CI must provide it)\n", suite, why)
		return 1
	}
	fmt.Fprintf(os.Stderr, "%s: skipped: %s; run scripts/test as root\n", suite, why)
	flag.Set("test.run", "^$")
	return m.Run()
}

// Numbered checks that out holds the lines prefix-0 to prefix-(n-1), each
// once and in order: a job's numbered output, across a cut (a worker's
// death, an adoption), with no gap and no repeat.
func Numbered(t testing.TB, out, prefix string, n int) {
	t.Helper()
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			got = append(got, l)
		}
	}
	for i := range n {
		if i >= len(got) || got[i] != prefix+strconv.Itoa(i) {
			t.Errorf("line %d of the output is not %s%d (a gap or a repeat):\n%s", i, prefix, i, out)
			return
		}
	}
	if len(got) != n {
		t.Errorf("%d numbered lines, want %d:\n%s", len(got), n, out)
	}
}

// JobWorker waits until job 0 of repo runs and its log contains want, and
// returns its worker's pid (to kill it mid-job).
func (e *Env) JobWorker(t testing.TB, repo, want string) int {
	t.Helper()
	var job struct {
		State  string `json:"state"`
		Worker int    `json:"worker"`
	}
	dir := filepath.Join(e.DataDir(), "repos", repo, "0")
	WaitUntil(t, repo+" job 0 runs and says "+want, 2*time.Minute, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "job.json"))
		if err != nil || json.Unmarshal(b, &job) != nil || job.State != "running" || job.Worker <= 0 {
			return false
		}
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		return strings.Contains(string(log), want)
	})
	return job.Worker
}
