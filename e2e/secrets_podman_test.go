package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

func init() { confParts = append(confParts, podSecretsConf) }

// Container jobs given secrets: master of secpod gets a key (file and
// variable) and a token (file only); secpod-spy has none, and attacks.
const podSecretsConf = `
repo secpod secpod-kill secpod-spy
    RW+ = alice bob
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"

repo secpod secpod-kill
    option ENV.JOBQ_SECRETS = "pod_key:POD_KEY@refs/heads/master pod_token@refs/heads/master"

repo secdeploy
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"
    option ENV.JOBQ_NETWORK = "host"
    option ENV.JOBQ_SECRETS = "deploy_key:DEPLOY_KEY@refs/heads/master"
`

// podSecretJob prints what a job sees of its secrets (the values, which
// the log masks), then waits for the test to release it: the file release
// in its checkout.
const podSecretJob = `echo "uid $(id -u)"
ls -ln /run/secrets | grep -v total | while read m n u g rest; do echo "file $m $u ${rest##* }"; done
echo "token: $(cat /run/secrets/pod_token)"
echo "key line 2: $(printf %s "$POD_KEY" | head -2 | tail -1)"
env | grep -q "^POD_TOKEN=" && echo "token as a variable"
i=0; while [ ! -e release ] && [ $i -lt 900 ]; do sleep 0.2; i=$((i+1)); done
printf "last: %s" "$(cat /run/secrets/pod_token)"
`

// podSpyJob looks for another job's secrets: its /run/secrets, its
// processes' environments, any file of that name.
const podSpyJob = `echo "spy uid $(id -u)"
ls -la /run/secrets 2>&1
cat /run/secrets/pod_token 2>&1
for p in /proc/[0-9]*; do tr "\0" "\n" < $p/environ 2>/dev/null | grep POD_; done
find / -xdev -name "pod_*" 2>/dev/null
cat /proc/*/root/run/secrets/* 2>&1 | head -3
echo spy-done
`

// storePodSecret stores value as name's with jobq secret set, as the
// hosting account, the value on stdin from a file of the test's.
func storePodSecret(t *testing.T, name, value string) {
	t.Helper()
	f := filepath.Join(env.Bin, "value-"+name)
	if err := os.WriteFile(f, []byte(value), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := env.AsUser(ctx, nil, "sh", "-c", `exec "$0" secret set "$1" <"$2"`, filepath.Join(env.Bin, "jobq"), name, f); err != nil {
		t.Fatalf("jobq secret set %s: %v %s", name, err, out)
	}
}

// podSecretValues stores a fresh key and token, and returns them.
func podSecretValues(t *testing.T) (key, token string) {
	t.Helper()
	random := func() string {
		var b [12]byte
		rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}
	key = "-----BEGIN TEST KEY-----\nkeyline1-" + random() + "\nkeyline2-" + random() + "\n-----END TEST KEY-----\n"
	token = "token-" + random()
	storePodSecret(t, "pod_key", key)
	storePodSecret(t, "pod_token", token)
	return key, token
}

// releasePodJob lets a podSecretJob of repo end.
func releasePodJob(t *testing.T, repo string, id int) {
	t.Helper()
	co, err := os.ReadFile(filepath.Join(env.DataDir(), "repos", repo, strconv.Itoa(id), "run", "checkout"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(string(co), "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// filesHolding lists the files under dir that hold any of values, the
// secret store aside.
func filesHolding(t *testing.T, dir string, values ...string) []string {
	t.Helper()
	store := filepath.Join(env.DataDir(), "secrets")
	var found []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && p == store {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				found = append(found, p)
				break
			}
		}
		return nil
	})
	return found
}

// secretsLeft lists what is left of the account's jobs' secrets: files on
// this host's tmpfs, Podman secrets, volumes of jobs.
func secretsLeft(t *testing.T) []string {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join("/dev/shm", "jobq-secrets-"+strconv.Itoa(env.UID), "*"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{{"secret", "ls", "-q"}, {"volume", "ls", "-q"}} {
		out, err := env.AsUser(ctx, nil, "podman", args...)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Fields(out) {
			// A cache's volumes are kept between jobs by design (the
			// cache tests of this run leave theirs): not a secret's.
			cache := strings.HasPrefix(l, "jobq-") && strings.Contains(l, "-cache-")
			if strings.HasPrefix(l, "jobq-") && !cache || args[0] == "secret" {
				left = append(left, args[0]+" "+l)
			}
		}
	}
	return left
}

// waitSecretsGone waits for the clean-up of the jobs that ended to remove
// their secrets.
func waitSecretsGone(t *testing.T) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if left = secretsLeft(t); len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	wl, _ := os.ReadFile(filepath.Join(env.DataDir(), "worker.log"))
	t.Errorf("secrets left after the jobs: %v\nworker.log:\n%s", left, wl)
}

// checkPodSecretLog checks a podSecretJob's log: the secrets as files of
// the container's root only, the key as a variable, every value masked.
func checkPodSecretLog(t *testing.T, log, key, token string) {
	t.Helper()
	for _, want := range []string{"uid 0\n", "file -r-------- 0 pod_key\n", "file -r-------- 0 pod_token\n",
		"token: ***\n", "key line 2: ***\n", "last: ***\njobq: succeeded"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "token as a variable") {
		t.Errorf("pod_token, granted without a variable, is one:\n%s", log)
	}
	for _, v := range append(strings.Split(strings.TrimSpace(key), "\n")[1:3], token) {
		if strings.Contains(log, v) {
			t.Errorf("log shows %q:\n%s", v, log)
		}
	}
}

// A master job reads its secrets from /run/secrets and $POD_KEY; its log
// shows *** for each value. While it runs, podman inspect of its container
// shows no value, and a job of another repository, running at the same
// time, finds none; afterwards nothing of the secrets is left anywhere.
func TestPodmanSecretsGiven(t *testing.T) {
	key, token := podSecretValues(t)
	values := append(strings.Split(strings.TrimSpace(key), "\n")[1:3], token)
	push(t, "secpod", map[string]string{"ci.sh": podSecretJob})
	testenv.WaitUntil(t, "the job prints its secrets", 2*time.Minute, func() bool { return strings.Contains(readLog("secpod", 0), "key line 2") })

	// podman inspect of the running job: the whole JSON.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := containers(t, "secpod")
	inspected, err := env.AsUser(ctx, nil, "podman", "inspect", id)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if strings.Contains(inspected, v) {
			t.Errorf("podman inspect shows %q", v)
		}
	}
	if !strings.Contains(inspected, "/run/secrets/pod_key") || strings.Contains(inspected, `"POD_KEY=`) {
		t.Errorf("podman inspect: no /run/secrets/pod_key mount, or POD_KEY in the environment")
	}
	// The data directory, the account's home (Podman's storage and the
	// container's own log aside: the job printed the values there), the
	// temporary directory: no file holds a value, the store aside.
	if found := filesHolding(t, env.DataDir(), values...); len(found) != 0 {
		t.Errorf("files in the data directory hold a value while the job runs: %v", found)
	}

	// Another user's job, of a repository given nothing, at the same time.
	pushScript(t, "bob", "secpod-spy", podSpyJob)
	spy := follow(t, "bob", "secpod-spy", 0)
	if !strings.Contains(spy.Stdout, "spy-done") || containers(t, "secpod") == "" {
		t.Fatalf("the spy did not run while the job did: %s", spy)
	}
	for _, v := range append(values, "POD_KEY=") {
		if strings.Contains(spy.Stdout, v) {
			t.Errorf("the spy found %q:\n%s", v, spy.Stdout)
		}
	}

	releasePodJob(t, "secpod", 0)
	r := follow(t, "alice", "secpod", 0)
	checkPodSecretLog(t, r.Stdout, key, token)
	checkNothingLeft(t, "secpod")
	waitSecretsGone(t)
	for _, dir := range []string{env.Dir, filepath.Join(os.TempDir(), "podman-run-"+strconv.Itoa(env.UID))} {
		if found := filesHolding(t, dir, values...); len(found) != 0 {
			t.Errorf("files hold a value after the job: %v", found)
		}
	}
}

// A worker killed mid-job leaves the job's secrets for the next worker,
// which adopts the job: its log goes on masked, and once it ends nothing
// of the secrets is left.
func TestPodmanSecretsWorkerKilled(t *testing.T) {
	key, token := podSecretValues(t)
	push(t, "secpod-kill", map[string]string{"ci.sh": podSecretJob})
	pid := env.JobWorker(t, "secpod-kill", "key line 2")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	processGone(t, pid)
	if left := secretsLeft(t); len(left) != 1 {
		t.Errorf("while the job runs, its secrets: %v", left)
	}
	releasePodJob(t, "secpod-kill", 0)
	r := follow(t, "alice", "secpod-kill", 0) // starts the next worker
	if !strings.Contains(r.Stdout, notice) {
		t.Errorf("not adopted: %s", r.Stdout)
	}
	checkPodSecretLog(t, r.Stdout, key, token)
	checkNothingLeft(t, "secpod-kill")
	waitSecretsGone(t)
}

// deployTarget is another account of this machine behind an sshd of the
// test's own that lets in only the public key of keyFile: where the demo
// job deploys. It returns the account's home, the sshd's port and its
// known_hosts line.
func deployTarget(t *testing.T, keyFile string) (home string, port int, knownHosts string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := env.User + "-dst"
	home = filepath.Join(env.Dir, "dst-home")
	if _, err := user.Lookup(name); err != nil {
		if out, err := exec.CommandContext(ctx, "useradd", "--home-dir", home, "--shell", "/bin/sh", name).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v %s", err, out)
		}
	}
	for _, args := range [][]string{{"usermod", "--home", home, "-p", "*", name}, {"mkdir", "-p", home}, {"chown", name + ":", home}, {"chmod", "0700", home}} {
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	dir := t.TempDir()
	pub, err := os.ReadFile(keyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	// sshd reads it as the account: in its home, its own.
	authorized := filepath.Join(home, ".ssh", "authorized_keys")
	os.MkdirAll(filepath.Dir(authorized), 0o700)
	if err := os.WriteFile(authorized, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "chown", "-R", name+":", filepath.Dir(authorized)).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	hostKey := filepath.Join(dir, "host_ed25519")
	if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := fmt.Sprintf("ListenAddress 127.0.0.1\nPort %d\nHostKey %s\nPidFile %s\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n"+
		"KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nAuthorizedKeysFile %s\nAllowUsers %s\nLogLevel ERROR\n",
		port, hostKey, filepath.Join(dir, "sshd.pid"), authorized, name)
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	sshd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", cfg)
	if err := sshd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sshd.Process.Kill(); sshd.Wait() })
	testenv.WaitUntil(t, "the deploy target's sshd listens", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	hk, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(hk))
	return home, port, fmt.Sprintf("[127.0.0.1]:%d %s %s", port, f[0], f[1])
}

// The demo: a push to master deploys with the ssh key it is given
// as a secret (the variable DEPLOY_KEY) to another account of this
// machine; a push to dev of the same repository is not given the key, its
// log says so, and its deployment fails.
func TestPodmanSecretsDeploy(t *testing.T) {
	keys := t.TempDir()
	key := filepath.Join(keys, "deploy")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	private, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	storePodSecret(t, "deploy_key", string(private))
	home, port, knownHosts := deployTarget(t, key)
	// The deployment tool, built for the job, goes in the repository.
	tool := filepath.Join(t.TempDir(), "sshdeploy")
	// With the toolchain make build uses: go on PATH.
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", tool, "./internal/testenv/sshdeploy")
	build.Dir = testenv.SourceDir()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build sshdeploy: %v %s", err, out)
	}
	bin, err := os.ReadFile(tool)
	if err != nil {
		t.Fatal(err)
	}
	ci := fmt.Sprintf(`cp sshdeploy /tmp/sshdeploy && chmod +x /tmp/sshdeploy
echo "site at $GIT_REV_NEW" | /tmp/sshdeploy DEPLOY_KEY %s-dst@127.0.0.1:%d '%s' deployed.txt && echo deployed
`, env.User, port, knownHosts)
	files := map[string]string{"ci.sh": ci, "sshdeploy": string(bin)}

	r, rev := push(t, "secdeploy", files)
	if !strings.Contains(r.Stderr, "remote: deployed") || !strings.Contains(r.Stderr, "jobq: secrets given: deploy_key (also $DEPLOY_KEY)") ||
		!strings.Contains(r.Stderr, "jobq: succeeded") {
		t.Fatalf("master's push:\n%s", r.Stderr)
	}
	site, err := os.ReadFile(filepath.Join(home, "deployed.txt"))
	if err != nil || string(site) != "site at "+rev+"\n" {
		t.Fatalf("deployed.txt: %q %v", site, err)
	}
	os.Remove(filepath.Join(home, "deployed.txt"))

	files["README"] = "dev"
	r, _ = push(t, "secdeploy", files, "HEAD:refs/heads/dev")
	if strings.Contains(r.Stderr, "remote: deployed") || !strings.Contains(r.Stderr, "secret deploy_key withheld") ||
		!strings.Contains(r.Stderr, "sshdeploy: no key: $DEPLOY_KEY is not set") || !strings.Contains(r.Stderr, "jobq: failed") {
		t.Errorf("dev's push:\n%s", r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(home, "deployed.txt")); err == nil {
		t.Error("dev's job deployed")
	}
	for _, line := range strings.Split(strings.TrimSpace(string(private)), "\n")[1:3] {
		if strings.Contains(readLog("secdeploy", 0)+readLog("secdeploy", 1), line) {
			t.Errorf("a log shows the key's line %q", line)
		}
	}
	checkNothingLeft(t, "secdeploy")
	waitSecretsGone(t)
}
