package remote

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

// Jobs on build host b0 given secrets.
const secretsConf = `
repo rsec rsec-kill
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"
    option ENV.JOBQ_CONNECTION = "b0"
    option ENV.JOBQ_SECRETS = "rsec_key:RSEC_KEY@refs/heads/master rsec_token@refs/heads/master"
`

// remoteSecretJob shows its secrets' files and that the variable is set,
// holds a while (the test looks at the build host meanwhile: no value has
// been printed yet, so none is in the container's own log), then prints
// the values, which the log masks.
const remoteSecretJob = `echo "uid $(id -u)"
ls -ln /run/secrets | grep -v total | while read m n u g rest; do echo "file $m $u ${rest##* }"; done
test -n "$RSEC_KEY" && echo "variable set"
echo x > /run/secrets/new 2>/dev/null || echo read-only
sleep ${HOLD:-10}
echo "token: $(cat /run/secrets/rsec_token)"
echo "key line 2: $(printf %s "$RSEC_KEY" | head -2 | tail -1)"
`

// setSecretValues stores a fresh key and token with jobq secret set, as the
// hosting account, the values on stdin; it returns them.
func setSecretValues(t *testing.T) (key, token string) {
	t.Helper()
	random := func() string {
		var b [12]byte
		rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}
	key = "-----BEGIN TEST KEY-----\nkeyline1-" + random() + "\nkeyline2-" + random() + "\n-----END TEST KEY-----\n"
	token = "token-" + random()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, value := range map[string]string{"rsec_key": key, "rsec_token": token} {
		f := filepath.Join(env.Bin, "value-"+name)
		if err := os.WriteFile(f, []byte(value), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := env.AsUser(ctx, nil, "sh", "-c", `exec "$0" secret set "$1" <"$2"`, filepath.Join(env.Bin, "jobq"), name, f)
		os.Remove(f)
		if err != nil {
			t.Fatalf("jobq secret set %s: %v %s", name, err, out)
		}
	}
	return key, token
}

// onHostDisk lists the files of build host h, as its disk holds them (its
// container's own mount namespace, not its rootless Podman's, where the
// tmpfs volumes are mounted), that hold any of values.
func onHostDisk(t *testing.T, h *testenv.BuildHost, values ...string) string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "containers.conf")
	if err := os.WriteFile(conf, []byte(testenv.ContainersConf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"exec", h.Name, "grep", "-rlsF"}
	for _, v := range values {
		args = append(args, "-e", v)
	}
	args = append(args, "/home", "/tmp", "/var", "/run", "/etc")
	cmd := exec.Command("podman", args...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+conf)
	out, _ := cmd.Output() // grep: 1 when nothing matches
	return strings.TrimSpace(string(out))
}

// secretsOnHost lists a host's Podman secrets and jobq's volumes.
func secretsOnHost(t *testing.T, h *testenv.BuildHost) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := h.Podman(ctx, "secret", "ls", "-q")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(s + leftovers(t, h))
}

func checkRemoteSecretLog(t *testing.T, log, key, token string) {
	t.Helper()
	for _, want := range []string{"jobq: build host b0\n", "uid 0\n", "file -r-------- 0 rsec_key\n", "file -r-------- 0 rsec_token\n",
		"variable set\n", "read-only\n", "token: ***\n", "key line 2: ***\n", "jobq: succeeded"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	for _, v := range append(strings.Split(key, "\n")[1:3], token) {
		if strings.Contains(log, v) {
			t.Errorf("log shows %q:\n%s", v, log)
		}
	}
}

// A job on a build host gets its secrets as files in memory, read-only,
// of the container's user, and its variable; podman inspect there shows
// no value, no file of the host's disk holds one, and once the job is
// done nothing of them is left there; also after its worker was killed
// mid-job.
func TestRemoteSecrets(t *testing.T) {
	hosts := testenv.StartBuildHosts(t, 2, env.User)
	setupAccount(t, hosts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := env.Configure(ctx, remoteConf+secretsConf); err != nil {
		t.Fatal(err)
	}
	key, token := setSecretValues(t)
	values := append(strings.Split(key, "\n")[1:3], token)
	h := hosts[0]

	pushScript(t, "rsec", remoteSecretJob)
	testenv.WaitUntil(t, "the job runs", 2*time.Minute, func() bool { return strings.Contains(readLog("rsec", 0), "variable set\n") })
	names, err := h.Podman(ctx, "ps", "-q", "--filter", "label=jobq.repo=rsec")
	if err != nil || strings.TrimSpace(names) == "" {
		t.Fatalf("no container on b0: %v %q", err, names)
	}
	inspected, err := h.Podman(ctx, "inspect", strings.TrimSpace(names))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if strings.Contains(inspected, v) {
			t.Errorf("podman inspect on the build host shows %q", v)
		}
	}
	if !strings.Contains(inspected, `"Destination": "/run/secrets"`) || strings.Contains(inspected, `"RSEC_KEY=`) {
		t.Errorf("podman inspect: no /run/secrets volume, or RSEC_KEY in the environment:\n%s", inspected)
	}
	if found := onHostDisk(t, h, values...); found != "" {
		t.Errorf("the build host's disk holds a value while the job runs:\n%s", found)
	}
	r := follow(t, "rsec", 0)
	checkRemoteSecretLog(t, r.Stdout, key, token)
	testenv.WaitUntil(t, "the job's secrets are gone from b0", time.Minute, func() bool { return secretsOnHost(t, h) == "" })

	// Killed mid-job: the next worker adopts the job, and its clean-up
	// leaves nothing on the host.
	pushScript(t, "rsec-kill", remoteSecretJob)
	pid := env.JobWorker(t, "rsec-kill", "variable set\n")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r = follow(t, "rsec-kill", 0)
	if !strings.Contains(r.Stdout, "jobq: worker restarted") {
		t.Errorf("not adopted:\n%s", r.Stdout)
	}
	checkRemoteSecretLog(t, r.Stdout, key, token)
	testenv.WaitUntil(t, "the job's secrets are gone from b0", time.Minute, func() bool { return secretsOnHost(t, h) == "" })
	if found := onHostDisk(t, h, values...); found != "" {
		t.Errorf("the build host's disk holds a value after the jobs:\n%s", found)
	}
}

// A trivial job on a build host given 3 secrets, push to result (the
// hook, synchronous): as files, and as variables too, against the same
// job given none. Grants are gitolite's options, as in use.
func BenchmarkRemoteSecrets(b *testing.B) {
	hosts := testenv.StartBuildHosts(b, 2, env.User)
	setupAccountB(b, hosts)
	ctx := context.Background()
	conf := `
repo bsec-none bsec-files bsec-vars
    RW+ = alice
repo bsec-files
    option ENV.JOBQ_SECRETS = "bench_s1 bench_s2 bench_s3"
repo bsec-vars
    option ENV.JOBQ_SECRETS = "bench_s1:BENCH_S1 bench_s2:BENCH_S2 bench_s3:BENCH_S3"
`
	if err := env.Configure(ctx, conf); err != nil {
		b.Fatal(err)
	}
	gitDir, rev := testenv.MakeRepo(b, map[string]string{"README": "trivial\n"})
	repo := accountRepo(b, gitDir, "secrets")
	home := filepath.Join(env.Home, "bench-secrets-home")
	os.RemoveAll(home)
	for i := 1; i <= 3; i++ {
		script := fmt.Sprintf("printf 'bench-secret-%d-%d' | JOBQ_HOME=%s %s/jobq secret set bench_s%d", i, time.Now().UnixNano(), home, env.Bin, i)
		if out, err := asAccount(ctx, nil, script); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
	line := fmt.Sprintf("%s %s refs/heads/master", strings.Repeat("0", 40), rev)
	// The hook runs here without gitolite in front of it: it gets the
	// repository's grants as gitolite would give a push them (the worker
	// asks gitolite again only for a job whose push saw grants).
	grants := map[string]string{
		"bsec-files": "bench_s1 bench_s2 bench_s3",
		"bsec-vars":  "bench_s1:BENCH_S1 bench_s2:BENCH_S2 bench_s3:BENCH_S3",
	}
	hook := func(name string) string {
		var grant string
		if g, ok := grants[name]; ok {
			grant = "GL_OPTION_JOBQ_SECRETS='" + g + "' "
		}
		return fmt.Sprintf("cd %s && echo '%s' | JOBQ_HOME=%s GL_REPO=%s %sJOBQ_CONNECTION=b0 JOBQ_NETWORK=none JOBQ_COMMAND='%s true' %s/jobq hook 2>&1",
			repo, line, home, name, grant, testenv.Busybox, env.Bin)
	}
	kinds := []string{"bsec-none", "bsec-files", "bsec-vars"}
	times := make([][]time.Duration, len(kinds))
	for i := range benchRuns() + 1 {
		for k := range kinds {
			k = (k + i) % len(kinds)
			start := time.Now()
			out, err := asAccount(ctx, nil, hook(kinds[k]))
			d := time.Since(start)
			if err != nil || !strings.Contains(out, "jobq: succeeded") || k > 0 && !strings.Contains(out, "jobq: secrets given: bench_s1") {
				b.Fatalf("%s: %v:\n%s", kinds[k], err, out)
			}
			if i > 0 {
				times[k] = append(times[k], d)
			}
		}
	}
	none := median(times[0])
	report(b, "remote job given 3 secrets (push to result, `true`, over ssh; a tmpfs volume filled through the archive endpoint)", median(times[1]), none, "no secrets", "reported")
	report(b, "the same, the 3 also variables (jobq-env shipped into a volume of its own)", median(times[2]), none, "no secrets", "reported")
}
