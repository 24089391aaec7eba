package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

func init() { confParts = append(confParts, secretsConf) }

// secretsConf: alice may push anything to sec-deploy; carol dev, refs
// named to look like master (master-x, devx/refs/heads/master) and tags
// (the tag master); the deploy key is granted to master only. git itself
// refuses refs/heads/master/../x, and master/x beside master. sec-pass
// passes a gitolite option's value to its job (JOBQ_PASS_ENV), which
// readers must not see.
const secretsConf = `
repo sec-deploy
    RW+                                  = alice
    RW  dev master- refs/tags/           = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/secret-job"
    option ENV.JOBQ_SECRETS = "sec_deploy_key:DEPLOY_KEY@refs/heads/master"

repo sec-pass
    RW+ = alice
    R   = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps passed"
    option ENV.JOBQ_PASS_ENV = "GL_OPTION_PASS_TOKEN"
    option ENV.PASS_TOKEN = "pass-env-value-91c2"
`

// secretJob is sec-deploy's job: it waits while the gate file exists,
// then prints its secret (to be masked), a digest of it (to tell which
// value it got), and deploys it: a copy a file away, outside jobq.
const secretJob = `#!/bin/sh
while [ -e "$(dirname "$0")/sec-gate" ]; do sleep 0.1; done
echo "ref $GIT_REF"
echo "var: ${DEPLOY_KEY:-none}"
if [ -n "$JOBQ_SECRETS_DIR" ]; then
    echo "file: $(cat "$JOBQ_SECRETS_DIR/sec_deploy_key")"
    echo "digest: $(sha256sum <"$JOBQ_SECRETS_DIR/sec_deploy_key" | cut -c1-16)"
    printf 'last: %s' "$DEPLOY_KEY"
else
    echo "no secrets"
fi
`

func installSecretJob(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(env.Bin, "secret-job"), []byte(secretJob), 0o755); err != nil {
		t.Fatal(err)
	}
}

// setSecret stores value as name's through "jobq secret set", as the
// hosting account, the value on stdin (from a file of the test's: never
// on a command line).
func setSecret(t *testing.T, name, value string) {
	t.Helper()
	// Where the hosting account may read it.
	tmp, err := os.CreateTemp(env.Bin, "value-")
	if err != nil {
		t.Fatal(err)
	}
	f := tmp.Name()
	defer os.Remove(f)
	tmp.WriteString(value)
	tmp.Chmod(0o644)
	tmp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := env.AsUser(ctx, nil, "sh", "-c", `exec "$0" secret set "$1" <"$2"`, filepath.Join(env.Bin, "jobq"), name, f)
	if err != nil || !strings.Contains(out, "secret "+name+" set") {
		t.Fatalf("jobq secret set %s: %v %s", name, err, out)
	}
}

func digest(v string) string {
	s := sha256.Sum256([]byte(v))
	return hex.EncodeToString(s[:])[:16]
}

// A master job gets the deploy key (file and variable), its log shows
// *** where it printed it; the value rotated while a job waits is the
// one that job gets; jobs of dev and of refs named like master get
// nothing, and their logs say which name was withheld and why. No value
// is in the data directory but the store, in --json, on a command line,
// or in jobq secret ls.
func TestSecretsReachOnlyTheirRefs(t *testing.T) {
	const repo = "sec-deploy"
	const oldValue, newValue = "sekrit-OLD-7f3a9c21", "sekrit-NEW-0b4e2d55"
	installSecretJob(t)
	gate := filepath.Join(env.Bin, "sec-gate")
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(gate)
	setSecret(t, "sec_deploy_key", oldValue)

	pushRefAs(t, "alice", repo, "refs/heads/master") // job 0: waits at the gate
	testenv.WaitUntil(t, repo+" job 0 runs", time.Minute, func() bool { return listJSON(t, "alice", repo)[0].State == "running" })
	pushRefAs(t, "alice", repo, "refs/heads/master") // job 1: queued behind it
	// While job 0 runs with the old value: on no command line.
	if ps, _ := exec.Command("ps", "-eo", "args").Output(); bytes.Contains(ps, []byte("sekrit-")) {
		t.Errorf("a command line holds the value:\n%s", ps)
	}
	setSecret(t, "sec_deploy_key", newValue) // rotated while job 1 waits
	for _, ref := range []string{"refs/heads/dev", "refs/heads/master-x", "refs/heads/devx/refs/heads/master", "refs/tags/master"} {
		pushRefAs(t, "carol", repo, ref) // jobs 2 to 5
	}
	os.Remove(gate)
	waitFinal(t, repo, 6)

	for id, wantDigest := range map[int]string{0: digest(oldValue), 1: digest(newValue)} {
		r := follow(t, "alice", repo, id)
		for _, want := range []string{"jobq: secrets given: sec_deploy_key (also $DEPLOY_KEY)\n", "\nvar: ***\n", "\nfile: ***\n",
			"\ndigest: " + wantDigest + "\n", "\nlast: ***"} {
			if r.Code != 0 || !strings.Contains(r.Stdout, want) {
				t.Errorf("master job %d lacks %q: %s", id, want, r)
			}
		}
	}
	for id, ref := range map[int]string{2: "refs/heads/dev", 3: "refs/heads/master-x", 4: "refs/heads/devx/refs/heads/master", 5: "refs/tags/master"} {
		r := follow(t, "carol", repo, id)
		want := "jobq: secret sec_deploy_key withheld: JOBQ_SECRETS grants it to refs/heads/master only, not to this job's ref " + ref + "\n"
		if r.Code != 0 || !strings.Contains(r.Stdout, want) || !strings.Contains(r.Stdout, "\nvar: none\nno secrets\n") {
			t.Errorf("job %d of %s: %s\nwant %q", id, ref, r, want)
		}
	}
	// carol may not retry a master job: she cannot write master.
	if r := ssh("carol", "jobq", "retry", repo, "0"); r.Code != 1 ||
		r.Stderr != "jobq: carol may not retry sec-deploy job 0: that needs write access (W) on refs/heads/master\n" {
		t.Errorf("carol's retry of a master job: %s", r)
	}

	var shown strings.Builder
	for _, args := range [][]string{{"ls", repo, "--json"}, {repo, "0", "--raw"}, {repo, "1", "--raw"}, {repo, "--json"}} {
		r := ssh("alice", append([]string{"jobq"}, args...)...)
		shown.WriteString(r.Stdout + r.Stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ls, err := env.AsUser(ctx, nil, filepath.Join(env.Bin, "jobq"), "secret", "ls")
	if err != nil || !strings.Contains(ls, "sec_deploy_key") || !strings.Contains(ls, "sec-deploy@refs/heads/master") {
		t.Errorf("jobq secret ls: %v\n%s", err, ls)
	}
	lsJSON, _ := env.AsUser(ctx, nil, filepath.Join(env.Bin, "jobq"), "secret", "ls", "--json")
	shown.WriteString(ls + lsJSON)
	if strings.Contains(shown.String(), "sekrit-") {
		t.Errorf("a value is shown:\n%s", shown.String())
	}
	// The data directory holds the values in the store alone; and no
	// job's secrets directory is left.
	filepath.WalkDir(env.DataDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && path == filepath.Join(env.DataDir(), "secrets") {
			return filepath.SkipDir
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte("sekrit-")) {
			t.Errorf("%s holds a value", path)
		}
		return nil
	})
	if left := secretsDirs(t); len(left) > 0 {
		t.Errorf("secrets directories left: %v", left)
	}
}

// secretsDirs lists the hosting account's job secrets directories (other
// accounts' are other tests').
func secretsDirs(t *testing.T) []string {
	u, err := user.Lookup(env.User)
	if err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, pattern := range []string{"/run/user/" + u.Uid + "/jobq-exec-secrets-*", "/dev/shm/jobq-exec-secrets-*"} {
		all, _ := filepath.Glob(pattern)
		for _, d := range all {
			if fi, err := os.Stat(d); err == nil && fmt.Sprint(fi.Sys().(*syscall.Stat_t).Uid) == u.Uid {
				mine = append(mine, d)
			}
		}
	}
	return mine
}

// A granted name the store lacks: the job fails before it starts, with
// one line that says so; the push itself succeeds.
func TestSecretMissingFailsTheJob(t *testing.T) {
	const repo = "sec-deploy"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env.AsUser(ctx, nil, filepath.Join(env.Bin, "jobq"), "secret", "rm", "sec_deploy_key")
	n := 0
	if r := ssh("alice", "jobq", "ls", "-n", "0", repo, "--json"); r.Code == 0 {
		n = len(listJSON(t, "alice", repo))
	}
	pushRefAs(t, "alice", repo, "refs/heads/master")
	jobs := waitFinal(t, repo, n+1)
	r := follow(t, "alice", repo, jobs[0].ID)
	want := "jobq: failed: secret sec_deploy_key is granted to this ref (JOBQ_SECRETS) but not in the store (jobq secret set sec_deploy_key); the job did not start"
	if jobs[0].State != "failed" || !strings.Contains(r.Stdout, want) || strings.Contains(r.Stdout, "ref refs/heads/master\n") {
		t.Errorf("job %d: %+v\n%s", jobs[0].ID, jobs[0], r)
	}
}

// JOBQ_PASS_ENV's values reach the job, never a reader's --json.
func TestPassEnvValuesNotInJSON(t *testing.T) {
	push(t, "sec-pass", nil)
	waitFinal(t, "sec-pass", 1)
	for _, args := range [][]string{{"ls", "sec-pass", "--json"}, {"sec-pass", "--json"}, {"--json"}} {
		if r := ssh("carol", append([]string{"jobq"}, args...)...); r.Code != 0 || strings.Contains(r.Stdout, "pass-env-value") {
			t.Errorf("jobq %s: %s", strings.Join(args, " "), r)
		}
	}
}

// A grant the administrator removes while a job waits applies to that
// job: it runs without the secret.
func TestSecretGrantRemovedWhileWaiting(t *testing.T) {
	const repo = "sec-deploy"
	installSecretJob(t)
	setSecret(t, "sec_deploy_key", "sekrit-GRANT-3e9d")
	gate := filepath.Join(env.Bin, "sec-gate")
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(gate)
	n := 0
	if r := ssh("alice", "jobq", "ls", "-n", "0", repo, "--json"); r.Code == 0 {
		n = len(listJSON(t, "alice", repo))
	}
	pushRefAs(t, "alice", repo, "refs/heads/master") // waits at the gate
	// Its secrets read: the change below is after its start.
	testenv.WaitUntil(t, "the first job has its secrets", time.Minute, func() bool {
		b, _ := os.ReadFile(filepath.Join(env.DataDir(), "repos", repo, fmt.Sprint(n), "log"))
		return bytes.Contains(b, []byte("jobq: secrets given: sec_deploy_key"))
	})
	pushRefAs(t, "alice", repo, "refs/heads/master") // queued behind it
	reconfigure(t, secretsConf, strings.Replace(secretsConf, `    option ENV.JOBQ_SECRETS = "sec_deploy_key:DEPLOY_KEY@refs/heads/master"`+"\n", "", 1))
	defer restoreConf(t)
	os.Remove(gate)
	jobs := waitFinal(t, repo, n+2)
	first, second := follow(t, "alice", repo, jobs[1].ID), follow(t, "alice", repo, jobs[0].ID)
	if !strings.Contains(first.Stdout, "\nvar: ***\n") {
		t.Errorf("the job that started before the change: %s", first)
	}
	if !strings.Contains(second.Stdout, "\nvar: none\nno secrets\n") || strings.Contains(second.Stdout, "secrets given") {
		t.Errorf("the job that waited: %s", second)
	}
}
