package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
	"github.com/jobq/jobq/runner"
)

// An exec job gets its secrets as files in JOBQ_SECRETS_DIR (0700, files
// 0400, in memory) and NAME:VAR also as VAR; every value it prints is
// masked in its log, also split across writes and at the very end without
// a newline; the directory is gone when the job has ended, and nothing of
// a value is on the supervisor's command line or in its environment.
func TestExecSecrets(t *testing.T) {
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	run := t.TempDir()
	key := "-----BEGIN KEY-----\nAAAAB3NzaC1yc2EAAAADAQAB\n-----END KEY-----\n"
	j := testJob(gitDir, rev, `d=$JOBQ_SECRETS_DIR
stat -c '%a %n' "$d" | sed "s|$d|DIR|"; stat -c '%a %n' "$d"/* | sed "s|$d|DIR|"
stat -f -c %T "$d"
echo "token=$API_TOKEN"
cat "$d/deploy_key"
printf 'split: '; printf 'tok-'; sleep 0.1; printf '1234567\n'
cat /proc/$PPID/cmdline >`+filepath.Join(run, "cmdline")+`
cat /proc/$PPID/environ >`+filepath.Join(run, "environ")+`
echo "$d" >`+filepath.Join(run, "dir")+`
printf 'end: '; cat "$d/api_token"`)
	j.Env = map[string]string{"API_TOKEN": "pass-env-value"} // the secret wins over JOBQ_PASS_ENV
	secrets := []runner.Secret{{Name: "api_token", Var: "API_TOKEN", Value: []byte("tok-1234567")}, {Name: "deploy_key", Value: []byte(key)}}
	f, _ := os.Create(filepath.Join(t.TempDir(), "log"))
	defer f.Close()
	exit, err := New(time.Second).Run(context.Background(), runner.Job{Job: j, Log: f, Dir: run, Secrets: secrets})
	log, _ := os.ReadFile(f.Name())
	want := "700 DIR\n400 DIR/api_token\n400 DIR/deploy_key\ntmpfs\ntoken=***\n***\nsplit: ***\nend: ***"
	if err != nil || exit != 0 || string(log) != want {
		t.Fatalf("exit %d, %v, log:\n%s\nwant:\n%s", exit, err, log, want)
	}
	for _, name := range []string{"cmdline", "environ"} {
		b, err := os.ReadFile(filepath.Join(run, name))
		if err != nil || len(b) == 0 || strings.Contains(string(b), "tok-1234567") || strings.Contains(string(b), "AAAAB3Nza") {
			t.Errorf("the supervisor's %s holds a value (or could not be read: %v):\n%q", name, err, b)
		}
	}
	dir, _ := os.ReadFile(filepath.Join(run, "dir"))
	if _, err := os.Stat(strings.TrimSpace(string(dir))); !os.IsNotExist(err) || len(dir) == 0 {
		t.Errorf("the secrets directory %q is left: %v", dir, err)
	}
	if err := New(time.Second).Cleanup(context.Background(), runner.Job{Job: j, Dir: run}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(run, "secrets")); !os.IsNotExist(err) {
		t.Errorf("the secrets record is left after Cleanup: %v", err)
	}
}

// A supervisor killed with its job (a crash of the host's processes)
// leaves the secrets directory: the clean-up of a later worker removes it.
func TestExecSecretsCleanupAfterKilledSupervisor(t *testing.T) {
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	run := t.TempDir()
	j := testJob(gitDir, rev, `echo "$JOBQ_SECRETS_DIR" >`+filepath.Join(run, "dir")+`; kill -KILL $PPID; sleep 5`)
	f, _ := os.Create(filepath.Join(t.TempDir(), "log"))
	defer f.Close()
	r := New(time.Second)
	r.Run(context.Background(), runner.Job{Job: j, Log: f, Dir: run, Secrets: []runner.Secret{{Name: "a", Value: []byte("value-1")}}})
	b, _ := os.ReadFile(filepath.Join(run, "dir"))
	dir := strings.TrimSpace(string(b))
	if _, err := os.Stat(dir); err != nil || dir == "" {
		t.Fatalf("the secrets directory %q: %v", dir, err)
	}
	if err := r.Cleanup(context.Background(), runner.Job{Job: j, Dir: run}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the secrets directory is left after Cleanup: %v", err)
	}
}

// A record that names anything but a secrets directory is not followed.
func TestRemoveSecretsTrustsOnlyItsOwnPaths(t *testing.T) {
	run := t.TempDir()
	victim := t.TempDir()
	os.WriteFile(filepath.Join(victim, "keep"), []byte("x"), 0o600)
	for _, p := range []string{victim, victim + "/../" + filepath.Base(victim), "relative/jobq-exec-secrets-x", "/"} {
		os.WriteFile(filepath.Join(run, "secrets"), []byte(p+"\n"), 0o600)
		removeSecrets(runner.Job{Dir: run})
		if _, err := os.Stat(filepath.Join(victim, "keep")); err != nil {
			t.Fatalf("record %q: %v", p, err)
		}
	}
}

// BenchmarkExecRunSecrets is BenchmarkExecRun with 3 secrets: their files
// written and removed, the variables set, the output masked through the
// supervisor's pipe.
func BenchmarkExecRunSecrets(b *testing.B) {
	dir := b.TempDir()
	r := New(time.Second)
	j := testJob(dir, "rev", "true")
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	secrets := []runner.Secret{{Name: "a", Var: "A", Value: []byte("value-aaaaaaaa")}, {Name: "b", Value: []byte("value-bbbbbbbbbbbb")},
		{Name: "c", Var: "C", Value: []byte("-----BEGIN KEY-----\nvalue-cccccccc\n-----END KEY-----\n")}}
	for b.Loop() {
		if exit, err := r.Run(context.Background(), runner.Job{Job: j, Log: log, Dir: dir, Secrets: secrets}); exit != 0 || err != nil {
			b.Fatal(exit, err)
		}
		if err := r.Cleanup(context.Background(), runner.Job{Job: j, Dir: dir}); err != nil {
			b.Fatal(err)
		}
	}
}

// A job that outlives its worker goes on being masked: the supervisor
// masks, whoever watches, and the adopting worker hands it nothing.
func TestExecSecretsMaskedAfterAdoption(t *testing.T) {
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	j := testJob(gitDir, rev, `echo "before $TOKEN"; while [ ! -e `+gate+` ]; do sleep 0.05; done; echo "after $TOKEN"`)
	log, _ := os.OpenFile(filepath.Join(dir, "log"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	defer log.Close()
	ctx, stop := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	secrets := []runner.Secret{{Name: "token", Var: "TOKEN", Value: []byte("tok-secret-42")}}
	go func() {
		_, err := New(time.Second).Run(ctx, runner.Job{Job: j, Log: log, Dir: dir, Secrets: secrets})
		done <- err
	}()
	testenv.WaitUntil(t, "the job starts", time.Minute, func() bool {
		b, _ := os.ReadFile(log.Name())
		return string(b) == "before ***\n"
	})
	stop(runner.ErrStopping)
	if err := <-done; !errors.Is(err, runner.ErrDetached) {
		t.Fatalf("Run after the worker's stop: %v, want ErrDetached", err)
	}
	os.WriteFile(gate, nil, 0o600)
	r := New(time.Second)
	if exit, err := r.Adopt(context.Background(), runner.Job{Job: j, Log: log, Dir: dir}, notice); err != nil || exit != 0 {
		t.Fatalf("Adopt: exit %d, %v", exit, err)
	}
	if b, _ := os.ReadFile(log.Name()); !strings.HasSuffix(string(b), "after ***\n") || strings.Contains(string(b), "tok-secret") {
		t.Errorf("log %q", b)
	}
	if err := r.Cleanup(context.Background(), runner.Job{Job: j, Dir: dir}); err != nil {
		t.Fatal(err)
	}
}

// Values withheld from an exec job (runner.Job.Mask) are masked in its
// output as those given are, also in a job given none; they reach the
// supervisor through a pipe it has read and closed before the job starts:
// not in a file, a command line, an environment or a descriptor of the
// job's.
func TestExecWithheldMasked(t *testing.T) {
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	run := t.TempDir()
	// The command names the value in two pieces: it is on a command line.
	j := testJob(gitDir, rev, `a=withheld- b=7c1d2e
echo "cache holds: $a$b"
printf 'split: '; printf "$a"; sleep 0.1; printf "$b\n"
echo "secrets dir: ${JOBQ_SECRETS_DIR:-none}"
[ -e /proc/$$/fd/5 ] && echo "fd 5 open"
cat /proc/$PPID/cmdline >`+filepath.Join(run, "cmdline")+`
cat /proc/$PPID/environ >`+filepath.Join(run, "environ")+`
printf "end: $a$b"`)
	f, _ := os.Create(filepath.Join(t.TempDir(), "log"))
	defer f.Close()
	mask := [][]byte{[]byte("withheld-7c1d2e"), []byte("other-value")}
	exit, err := New(time.Second).Run(context.Background(), runner.Job{Job: j, Log: f, Dir: run, Mask: mask})
	log, _ := os.ReadFile(f.Name())
	want := "cache holds: ***\nsplit: ***\nsecrets dir: none\nend: ***"
	if err != nil || exit != 0 || string(log) != want {
		t.Fatalf("exit %d, %v, log:\n%s\nwant:\n%s", exit, err, log, want)
	}
	for _, name := range []string{"cmdline", "environ"} {
		b, err := os.ReadFile(filepath.Join(run, name))
		if err != nil || len(b) == 0 || strings.Contains(string(b), "withheld-7c1d2e") {
			t.Errorf("the supervisor's %s holds a value (or could not be read: %v):\n%q", name, err, b)
		}
	}
}

// readMask reads what writeMask wrote, and refuses what is cut short.
func TestReadMask(t *testing.T) {
	values := [][]byte{[]byte("a"), {}, []byte("line\nwith\x00bytes")}
	var b strings.Builder
	if err := writeMask(&b, values); err != nil {
		t.Fatal(err)
	}
	got, err := readMask(strings.NewReader(b.String()))
	if err != nil || len(got) != 3 || string(got[0]) != "a" || len(got[1]) != 0 || string(got[2]) != "line\nwith\x00bytes" {
		t.Fatalf("%q, %v", got, err)
	}
	for _, cut := range []int{1, 3, 6, len(b.String()) - 1} {
		if got, err := readMask(strings.NewReader(b.String()[:cut])); err == nil {
			t.Errorf("cut at %d: %q, want an error", cut, got)
		}
	}
	if got, err := readMask(strings.NewReader("")); err != nil || len(got) != 0 {
		t.Errorf("nothing: %q, %v", got, err)
	}
}
