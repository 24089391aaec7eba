package podman

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/secret"
	"github.com/jobq/jobq/internal/testenv"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// Values the tests give, each with something hostile in it.
var (
	keyValue   = []byte("-----BEGIN KEY-----\nAAAAline-one-of-the-key\nBBBBline-two-of-the-key\n-----END KEY-----\n")
	tokenValue = []byte("tok3n-value-xyzzy")
	nulValue   = []byte("nul\x00inside-value")
)

func testSecrets() []runner.Secret {
	return []runner.Secret{
		{Name: "deploy_key", Var: "DEPLOY_KEY", Value: keyValue},
		{Name: "token.v1", Var: "API_TOKEN", Value: tokenValue},
		{Name: "raw-file", Value: nulValue},
	}
}

func TestCheckSecrets(t *testing.T) {
	for _, tc := range []struct {
		name string
		ss   []runner.Secret
		ok   bool
	}{
		{"fine", testSecrets(), true},
		{"a path", []runner.Secret{{Name: "../x", Value: tokenValue}}, false},
		{"a slash", []runner.Secret{{Name: "a/b", Value: tokenValue}}, false},
		{"dot-dot", []runner.Secret{{Name: "..", Value: tokenValue}}, false},
		{"empty", []runner.Secret{{Name: "", Value: tokenValue}}, false},
		{"a plus", []runner.Secret{{Name: "a+b", Value: tokenValue}}, false},
		{"a newline", []runner.Secret{{Name: "a\nb", Value: tokenValue}}, false},
		{"twice", []runner.Secret{{Name: "a", Value: tokenValue}, {Name: "a", Value: tokenValue}}, false},
		{"a bad variable", []runner.Secret{{Name: "a", Var: "1A", Value: tokenValue}}, false},
		{"a variable with '='", []runner.Secret{{Name: "a", Var: "A=B", Value: tokenValue}}, false},
		{"a reserved variable", []runner.Secret{{Name: "a", Var: "PATH", Value: tokenValue}}, false},
		{"a variable twice", []runner.Secret{{Name: "a", Var: "A", Value: tokenValue}, {Name: "b", Var: "A", Value: tokenValue}}, false},
	} {
		err := checkSecrets(tc.ss)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err != nil && (bytes.Contains([]byte(err.Error()), tokenValue) || strings.Contains(err.Error(), "\n")) {
			t.Errorf("%s: the error %q shows a value or has several lines", tc.name, err)
		}
	}
}

// The spec holds paths and names, never a value, whichever way the
// secrets come; jobq-env runs exactly what Podman would have.
func TestSecretsApply(t *testing.T) {
	j := testJob("/srv/r.git", strings.Repeat("a", 40), `img make deploy`)
	for _, tc := range []struct {
		name string
		d    delivery
		want func(t *testing.T, s *specGen)
	}{
		{"local", delivery{dir: "/dev/shm/jobq-secrets-0/d", env: "/opt/jobq/jobq-env"}, func(t *testing.T, s *specGen) {
			if len(s.Mounts) != 1+3+1 {
				t.Fatalf("mounts %+v", s.Mounts)
			}
			m := s.Mounts[1]
			if m.Source != "/dev/shm/jobq-secrets-0/d/deploy_key" || m.Destination != "/run/secrets/deploy_key" || strings.Join(m.Options, ",") != "rbind,ro,U" {
				t.Errorf("secret mount %+v", m)
			}
			if m := s.Mounts[4]; m.Source != "/opt/jobq/jobq-env" || m.Destination != envEntry || strings.Join(m.Options, ",") != "rbind,ro" {
				t.Errorf("jobq-env mount %+v", m)
			}
		}},
		{"build host", delivery{volume: "jobq-v", envVolume: "jobq-e", env: "/opt/jobq/jobq-env"}, func(t *testing.T, s *specGen) {
			if len(s.Mounts) != 1 || len(s.Volumes) != 2 {
				t.Fatalf("mounts %+v volumes %+v", s.Mounts, s.Volumes)
			}
			if e := s.Volumes[1]; e.Name != "jobq-e" || e.Dest != "/run/jobq" || !e.IsAnonymous || strings.Join(e.Options, ",") != "ro,nocopy" {
				t.Errorf("jobq-env volume %+v", e)
			}
			v := s.Volumes[0]
			if v.Name != "jobq-v" || v.Dest != "/run/secrets" || !v.IsAnonymous || !strings.Contains(strings.Join(v.Options, ","), "ro,U,nocopy,noexec,nosuid,nodev,volume-opt=type=tmpfs") {
				t.Errorf("volume %+v", v)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Spec(j, "/data", "/tmp/co", 5*time.Second, false, nil, nil, hardLimits{})
			if err != nil {
				t.Fatal(err)
			}
			tc.d.secrets = testSecrets()
			tc.d.apply(s, false, []string{"/entry", "make", "deploy"})
			tc.want(t, s)
			if strings.Join(s.Entrypoint, " ") != envEntry || strings.Join(s.Command, " ") != "deploy_key=DEPLOY_KEY token.v1=API_TOKEN -- /entry make deploy" {
				t.Errorf("entrypoint %q command %q", s.Entrypoint, s.Command)
			}
			b, _ := json.Marshal(s)
			for _, sec := range testSecrets() {
				if bytes.Contains(b, sec.Value[:8]) {
					t.Errorf("the spec holds %s's value: %s", sec.Name, b)
				}
			}
		})
	}
	// Without a variable, the command is left to Podman.
	s, _ := Spec(j, "/data", "/tmp/co", 5*time.Second, false, nil, nil, hardLimits{})
	(&delivery{dir: "/d", secrets: []runner.Secret{{Name: "a", Value: tokenValue}}}).apply(s, false, nil)
	if s.Entrypoint != nil || strings.Join(s.Command, " ") != "make deploy" {
		t.Errorf("entrypoint %q command %q", s.Entrypoint, s.Command)
	}
}

// Masked output is the same however the stream splits it, and an adoption
// (a new maskStage that skips what the log holds) continues it exactly,
// wherever the last worker stopped: even within a value it held back.
func TestMaskStageResumes(t *testing.T) {
	values := [][]byte{keyValue, tokenValue}
	out := []byte("start " + string(tokenValue) + string(tokenValue) + " mid\n" + string(keyValue) + "AAAAline-one-of-the-key\r\nend " + string(tokenValue[:5]))
	var whole bytes.Buffer
	m := secret.NewMasker(&whole, values)
	m.Write(out)
	m.Flush()
	if bytes.Contains(whole.Bytes(), tokenValue) || bytes.Contains(whole.Bytes(), []byte("line-one")) {
		t.Fatalf("not masked: %q", whole.Bytes())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for cut := 0; cut <= len(out); cut++ {
		// The first worker: random writes up to cut, then it dies (no
		// flush: what its masker held back never reaches the log).
		var log bytes.Buffer
		first := newMaskStage(&log, values)
		for rest := out[:cut]; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(7))
			first.Write(rest[:n])
			rest = rest[n:]
		}
		held := int64(log.Len())
		// The next one masks the container's log from its start.
		next := newMaskStage(&skipWriter{w: &log, n: held}, values)
		for rest := out; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(300))
			next.Write(rest[:n])
			rest = rest[n:]
		}
		next.finish(next.dst)
		if !bytes.Equal(log.Bytes(), whole.Bytes()) {
			t.Fatalf("cut at %d: log %q, want %q", cut, log.Bytes(), whole.Bytes())
		}
	}
	// The tail kept for tailHeld is the raw output's end.
	s := newMaskStage(io.Discard, values)
	big := bytes.Repeat([]byte("0123456789"), 3*tailWindow/10)
	for rest := big; len(rest) > 0; rest = rest[min(len(rest), 1000):] {
		s.Write(rest[:min(len(rest), 1000)])
	}
	if !s.endsWith(big[len(big)-tailWindow:]) || s.endsWith([]byte("x")) || len(s.tail) > 2*tailWindow {
		t.Errorf("tail of %d bytes, ends right: %v", len(s.tail), s.endsWith(big[len(big)-tailWindow:]))
	}
}

// A secrets directory goes only to a tmpfs, and one made by someone else
// (or open to others) is refused.
func TestSecretsBase(t *testing.T) {
	// A directory beside the package's source, which is on a disk even
	// where $TMPDIR is a tmpfs.
	disk, err := os.MkdirTemp(".", ".secrets-base-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(disk) })
	if disk, err = filepath.Abs(disk); err != nil {
		t.Fatal(err)
	}
	testenv.Require(t, !isTmpfs(disk), "a directory on a disk (the source tree is on a tmpfs)")
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if d, err := secretsBase(env(map[string]string{"XDG_RUNTIME_DIR": disk})); err != nil || d != "/dev/shm" {
		t.Errorf("XDG_RUNTIME_DIR on a disk: %q, %v; want /dev/shm", d, err)
	}
	if d, err := secretsBase(env(map[string]string{"XDG_RUNTIME_DIR": "/dev/shm"})); err != nil || d != "/dev/shm" {
		t.Errorf("%q, %v", d, err)
	}
	open := filepath.Join(disk, "open")
	os.Mkdir(open, 0o755)
	if err := privateDir(open); err == nil {
		t.Error("a directory others may enter was taken")
	}
	link := filepath.Join(disk, "link")
	os.Symlink(disk, link)
	if err := privateDir(link); err == nil {
		t.Error("a symbolic link was taken")
	}
	if err := privateDir(filepath.Join(disk, "new")); err != nil {
		t.Error(err)
	}
}

var envHelperBuild struct {
	once sync.Once
	path string
	err  error
}

// testEnvHelper builds jobq-env for the tests, once.
func testEnvHelper(t *testing.T) string {
	t.Helper()
	envHelperBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "jobq-env-")
		if err != nil {
			envHelperBuild.err = err
			return
		}
		os.Chmod(dir, 0o755)
		envHelperBuild.path = filepath.Join(dir, EnvHelper)
		// The toolchain make build uses: go on PATH.
		cmd := exec.Command("go", "build", "-trimpath", "-o", envHelperBuild.path, "./cmd/jobq-env")
		cmd.Dir = testenv.SourceDir()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			envHelperBuild.err = errors.New(string(out))
		}
	})
	if envHelperBuild.err != nil {
		t.Fatal(envHelperBuild.err)
	}
	return envHelperBuild.path
}

// secretsScript prints what a job sees of its secrets: their files' modes
// and owners, the variables, and the values (which the log must mask).
const secretsScript = `id -u; ls -ln /run/secrets | grep -v total | while read m n u g rest; do echo "$m $u $g ${rest##* }"; done; ` +
	`cat /run/secrets/token.v1; echo; printf %s "$DEPLOY_KEY" | head -2 | tail -1; echo "$API_TOKEN"; ` +
	`test -z "$RAW_FILE" && echo no-var; od -c /run/secrets/raw-file | head -1; ` +
	`echo x >> /run/secrets/token.v1 || echo read-only; mount | grep -c /run/secrets; cat /proc/1/cmdline | tr "\0" " "; echo`

// checkSecretsJob checks a job's log and what it left: masked values,
// files of the container's root, 0400, read-only; the variables set.
func checkSecretsJob(t *testing.T, log string) {
	t.Helper()
	for _, want := range []string{
		"\n-r-------- 0 0 deploy_key\n", "\n-r-------- 0 0 raw-file\n", "\n-r-------- 0 0 token.v1\n",
		"\n***\n***\n***\n", // the file, a line of the key from $DEPLOY_KEY, $API_TOKEN
		"no-var", `0000000   n   u   l  \0   i   n   s   i   d   e   -   v   a   l   u   e`,
		"read-only", "\nsh -c id -u;", // jobq-env is no longer there: the command took its place
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	for _, v := range [][]byte{tokenValue, []byte("line-one-of"), []byte("line-two-of")} {
		if strings.Contains(log, string(v)) {
			t.Errorf("log shows %q:\n%s", v, log)
		}
	}
}

// leftSecrets lists what of home's jobs' secrets is left on this host's
// tmpfs.
func leftSecrets(t *testing.T) []string {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(secretDirs("/dev/shm"), "*"))
	return left
}

// A local job: its secrets as files and variables, their values masked,
// none in podman inspect, nothing left after its clean-up.
func TestPodmanSecrets(t *testing.T) {
	r, svc := newTestPodman(t)
	r.cfg.EnvHelper = testEnvHelper(t)
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	j := testJob(gitDir, rev, testenv.Busybox+` sh -c '`+secretsScript+`; sleep 2'`)
	j.ID = 30
	logf, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	h := testHandle(r, j, logf)
	h.Secrets = testSecrets()
	done := make(chan error, 1)
	var exit int
	go func() {
		var err error
		exit, err = r.Run(context.Background(), h)
		done <- err
	}()
	testenv.WaitUntil(t, "the job's container runs", time.Minute, func() bool { return labelled(t, svc, j) != "" })
	time.Sleep(500 * time.Millisecond)
	inspected, err := svc.Podman(context.Background(), "inspect", labelled(t, svc, j))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range [][]byte{tokenValue, []byte("line-one-of"), []byte("inside-value")} {
		if strings.Contains(inspected, string(v)) {
			t.Errorf("podman inspect shows %q", v)
		}
	}
	if err := <-done; err != nil || exit != 0 {
		t.Fatalf("exit %d, %v", exit, err)
	}
	if err := r.Cleanup(context.Background(), testHandle(r, j, nil)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(logf.Name())
	checkSecretsJob(t, string(b))
	if left := leftSecrets(t); len(left) != 0 {
		t.Errorf("left on the tmpfs: %v", left)
	}
	if _, err := os.Stat(record(testHandle(r, j, nil), "secrets")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("secrets record left: %v", err)
	}
}

// tcpService relays tcp://127.0.0.1:PORT to the test's service: a service
// that shares no files with the worker, as a build host's.
func tcpService(t *testing.T, socket string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("unix", socket)
				if err != nil {
					return
				}
				defer s.Close()
				go func() { io.Copy(s, c); s.(*net.UnixConn).CloseWrite() }()
				io.Copy(c, s)
			}()
		}
	}()
	return "tcp://" + l.Addr().String()
}

// A job on a service that shares no files with the worker: its secrets in
// a tmpfs volume, filled through the archive endpoint; killed mid-job (its
// worker gone), its clean-up leaves no volume, container or file.
func TestPodmanSecretsRemote(t *testing.T) {
	r, svc := newTestPodman(t)
	r.cfg.EnvHelper = testEnvHelper(t)
	uri := tcpService(t, strings.TrimPrefix(svc.URI, "unix://"))
	getenv := r.cfg.Service.Getenv
	r.cfg.Service.Getenv = func(k string) string {
		if k == "CONTAINER_HOST" {
			return uri
		}
		return getenv(k)
	}
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	run := func(id int64, script string, ctx context.Context) (*queue.Job, string, int, error) {
		j := testJob(gitDir, rev, testenv.Busybox+` sh -c '`+script+`'`)
		j.ID = id
		logf, err := os.Create(filepath.Join(t.TempDir(), "log"))
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		h := testHandle(r, j, logf)
		h.Secrets = testSecrets()
		exit, err := r.Run(ctx, h)
		b, _ := os.ReadFile(logf.Name())
		return j, string(b), exit, err
	}
	j, log, exit, err := run(31, secretsScript, context.Background())
	if err != nil || exit != 0 {
		t.Fatalf("exit %d, %v\n%s", exit, err, log)
	}
	if err := r.Cleanup(context.Background(), testHandle(r, j, nil)); err != nil {
		t.Fatal(err)
	}
	checkSecretsJob(t, log)

	// A worker that stops mid-job leaves the job running; the clean-up
	// after it removes its container and its secrets volume.
	ctx, stop := context.WithCancelCause(context.Background())
	go func() { time.Sleep(3 * time.Second); stop(runner.ErrStopping) }()
	j2, _, _, err := run(32, "sleep 300", ctx)
	if !errors.Is(err, runner.ErrDetached) {
		t.Fatalf("Run after the worker's stop: %v", err)
	}
	vols, _ := svc.Podman(context.Background(), "volume", "ls", "-q")
	if !strings.Contains(vols, sourceVolume(r.cfg.Home, j2)[:len(volumeTag(r.cfg.Home))+3]) {
		t.Errorf("no secrets volume while the job runs: %q", vols)
	}
	if err := r.Cleanup(context.Background(), testHandle(r, j2, nil)); err != nil {
		t.Fatal(err)
	}
	if c := labelled(t, svc, j2); c != "" {
		t.Errorf("container left: %s", c)
	}
	if vols, _ := svc.Podman(context.Background(), "volume", "ls", "-q"); strings.Contains(vols, volumeTag(r.cfg.Home)) {
		t.Errorf("volume left: %q", vols)
	}
	for _, j := range []*queue.Job{j, j2} {
		if _, err := os.Stat(record(testHandle(r, j, nil), "secrets")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("job %d: secrets record left: %v", j.ID, err)
		}
	}
}

// A worker stops while its job is within a value's output: the value's
// start is held back, never in the log; the next worker adopts the job and
// its log goes on masked, exactly, with nothing lost or repeated.
func TestPodmanSecretsAdopted(t *testing.T) {
	r, svc := newTestPodman(t)
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	j := testJob(gitDir, rev, testenv.Busybox+` sh -c "printf \"a1 tok3n-\"; sleep 3; printf \"value-xyzzy\n\"; cat /run/secrets/token.v1; echo; echo a2; exit 5"`)
	j.ID = 33
	r.cfg.Active = func(repo string, id int64) bool { return repo == j.Repo && id == j.ID }
	log, err := os.OpenFile(filepath.Join(t.TempDir(), "log"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	secrets := []runner.Secret{{Name: "token.v1", Value: tokenValue}}
	h := testHandle(r, j, log)
	h.Secrets = secrets
	ctx, stop := context.WithCancelCause(context.Background())
	detached := make(chan error, 1)
	go func() { _, err := r.Run(ctx, h); detached <- err }()
	testenv.WaitUntil(t, "the job prints", time.Minute, func() bool {
		b, _ := os.ReadFile(log.Name())
		return string(b) == "a1 "
	})
	time.Sleep(300 * time.Millisecond) // the rest of the line is in the masker
	stop(runner.ErrStopping)
	if err := <-detached; !errors.Is(err, runner.ErrDetached) {
		t.Fatalf("Run after the worker's stop: %v", err)
	}
	r.release(j, false)
	if b, _ := os.ReadFile(log.Name()); string(b) != "a1 " {
		t.Fatalf("log at the stop: %q", b)
	}
	h = testHandle(r, j, log)
	h.Secrets = secrets
	exit, err := r.Adopt(context.Background(), h, notice)
	if b, _ := os.ReadFile(log.Name()); exit != 5 || err != nil || string(b) != "a1 \n"+notice+"***\n***\na2\n" {
		t.Errorf("adopted: exit %d, %v, log %q", exit, err, b)
	}
	if err := r.Cleanup(context.Background(), testHandle(r, j, nil)); err != nil {
		if err := r.Cleanup(context.Background(), testHandle(r, j, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if c := labelled(t, svc, j); c != "" {
		t.Errorf("container left: %s", c)
	}
	if left := leftSecrets(t); len(left) != 0 {
		t.Errorf("left on the tmpfs: %v", left)
	}
}

// jobq gc removes the secret directories of the data directory's jobs
// that no longer run (their records lost), and no other.
func TestSweepSecretDirs(t *testing.T) {
	home := t.TempDir()
	running := &queue.Job{Repo: "team/app", ID: 1}
	done := &queue.Job{Repo: "team/app", ID: 2}
	r := New(Config{Home: home, Service: Service{Getenv: func(string) string { return "" }},
		Active: func(repo string, id int64) bool { return repo == running.Repo && id == running.ID }})
	parent := secretDirs("/dev/shm")
	if err := privateDir(parent); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, name := range []string{sourceVolume(home, running), sourceVolume(home, done), sourceVolume(t.TempDir(), done), "other"} {
		d := filepath.Join(parent, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		writeSecret(filepath.Join(d, "s"), tokenValue)
		dirs = append(dirs, d)
		defer os.RemoveAll(d)
	}
	if err := r.Sweep(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for i, d := range dirs {
		_, err := os.Stat(d)
		if gone := errors.Is(err, os.ErrNotExist); gone != (i == 1) {
			t.Errorf("%s: gone %v", filepath.Base(d), gone)
		}
	}
}

// jobq-env runs what Podman would have: the image's ENTRYPOINT with the
// job's arguments, or with the image's CMD when the job gives none; and a
// value that no variable can hold fails the job with one line, before its
// command runs.
func TestPodmanSecretsEntrypoint(t *testing.T) {
	r, svc := newTestPodman(t)
	r.cfg.EnvHelper = testEnvHelper(t)
	ctx := context.Background()
	dir := t.TempDir()
	const img = "localhost/jobq-test-entrypoint:latest"
	cf := "FROM " + testenv.Busybox + "\nENTRYPOINT [\"/bin/sh\", \"-c\", \"echo \\\"entry $0 $* var=$TOKEN\\\"\"]\nCMD [\"from-cmd\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Containerfile"), []byte(cf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := svc.Podman(ctx, "build", "-q", "-t", img, dir); err != nil {
		t.Fatalf("build: %v %s", err, out)
	}
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	for i, tc := range []struct {
		command string
		secrets []runner.Secret
		exit    int
		log     string
	}{
		{img, nil, 0, "entry from-cmd  var=\n"},
		{img, []runner.Secret{{Name: "t", Var: "TOKEN", Value: tokenValue}}, 0, "entry from-cmd  var=***\n"},
		{img + " a1 a2", nil, 0, "entry a1 a2 var=\n"},
		{img + " a1 a2", []runner.Secret{{Name: "t", Var: "TOKEN", Value: tokenValue}}, 0, "entry a1 a2 var=***\n"},
		{img, []runner.Secret{{Name: "n", Var: "NUL", Value: nulValue}}, 125,
			"jobq: secret n holds a NUL byte, which no variable can: read it from /run/secrets/n instead of NUL\n"},
	} {
		j := testJob(gitDir, rev, tc.command)
		j.ID = int64(40 + i)
		logf, err := os.Create(filepath.Join(t.TempDir(), "log"))
		if err != nil {
			t.Fatal(err)
		}
		h := testHandle(r, j, logf)
		h.Secrets = tc.secrets
		exit, err := r.Run(ctx, h)
		r.Cleanup(ctx, testHandle(r, j, nil))
		b, _ := os.ReadFile(logf.Name())
		logf.Close()
		if err != nil || exit != tc.exit || string(b) != tc.log {
			t.Errorf("%q with %d secrets: exit %d, %v, log %q; want %d, %q", tc.command, len(tc.secrets), exit, err, b, tc.exit, tc.log)
		}
	}
}
