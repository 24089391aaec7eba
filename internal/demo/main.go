// Command demo sets up jobq end to end on this machine and runs its main
// job: a gitolite account "git" with jobq installed, an sshd on
// 127.0.0.1:2222, rootless Podman; a push of a repository whose job runs
// in a container; the job's log, followed live over ssh; the web view,
// served on 127.0.0.1, whose address it prints last. Run it as root
// through scripts/demo, which installs the packages first.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

const conf = `repo demo
    RW+ = alice
    R   = gitweb
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"
    option ENV.JOBQ_TIMEOUT = "5m"
`

const ci = `echo "building $GL_REPO at $GIT_REF ($(echo $GIT_REV_NEW | cut -c1-8)) in $(pwd)"
for step in fetch compile test package deploy; do
    echo "$step..."
    sleep 1
done
echo "files in /source: $(ls | tr '\n' ' ')"
`

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := "/var/lib/jobq-demo"
	say("setting up gitolite (account git), jobq, sshd on 127.0.0.1:2222 and rootless Podman in %s", dir)
	// A demo run before left its sshd on port 2222 and its web view.
	for _, f := range []string{filepath.Join(dir, "sshd", "sshd.pid"), filepath.Join(dir, "jobq-web.pid")} {
		if pid, err := os.ReadFile(f); err == nil {
			exec.Command("kill", strings.TrimSpace(string(pid))).Run()
			time.Sleep(200 * time.Millisecond)
		}
	}
	os.RemoveAll(dir)
	env, err := testenv.Start(ctx, testenv.Options{User: "git", Dir: dir, Port: 2222, Users: []string{"alice"}, Podman: true})
	if err != nil {
		return err
	}
	if err := env.Configure(ctx, conf); err != nil {
		return err
	}
	fmt.Print(conf)

	say("alice pushes a repository with ci.sh to ssh://git@127.0.0.1:2222/demo")
	work := filepath.Join(dir, "alice-demo")
	if r := env.Git(ctx, "alice", dir, "clone", "-q", env.URL("demo"), work); r.Code != 0 {
		return fmt.Errorf("clone: %s", r)
	}
	if err := os.WriteFile(filepath.Join(work, "ci.sh"), []byte(ci), 0o644); err != nil {
		return err
	}
	for _, args := range [][]string{{"add", "ci.sh"}, {"commit", "-q", "-m", "add ci.sh"}} {
		if r := env.Git(ctx, "alice", work, args...); r.Code != 0 {
			return fmt.Errorf("git %v: %s", args, r)
		}
	}
	r := env.Git(ctx, "alice", work, "push", "origin", "HEAD:refs/heads/master")
	fmt.Print(r.Stderr)
	if r.Code != 0 {
		return fmt.Errorf("push failed")
	}

	sshArgs := strings.Fields(env.SSHCommand("alice"))
	sshLine := strings.Join(sshArgs, " ") + " git@127.0.0.1"
	say("ssh git@127.0.0.1 jobq demo 0   (follows the job's log live until it ends)")
	cmd := exec.CommandContext(ctx, sshArgs[0], append(sshArgs[1:], "git@127.0.0.1", "jobq", "demo", "0")...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	jobErr := cmd.Run()

	say("ssh git@127.0.0.1 jobq demo")
	cmd = exec.CommandContext(ctx, sshArgs[0], append(sshArgs[1:], "git@127.0.0.1", "jobq", "demo")...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Run()

	sshPrefix := "ssh -p 2222 " + env.User + "@127.0.0.1"
	say("the web view, on loopback: jobq web --listen %s (anonymous visitors see what R = gitweb allows)", webAddr)
	url, err := startWeb(env, dir, sshPrefix)
	if err != nil {
		return err
	}

	say("it keeps running; try it yourself:")
	fmt.Printf("  %s jobq demo\n", sshLine)
	fmt.Printf("  cd %s && echo change >> ci.sh && git commit -qam change && GIT_SSH_COMMAND='%s' git push\n", work, env.SSHCommand("alice"))
	fmt.Printf("  stop it: pkill -u git; kill $(cat %s/sshd/sshd.pid)\n", dir)
	fmt.Printf("  the web view: %s (the job: %sdemo/0)\n", url, url)
	if jobErr != nil {
		return fmt.Errorf("the demo job did not succeed: %v", jobErr)
	}
	return nil
}

// webAddr is where the demo serves the web view: loopback only.
const webAddr = "127.0.0.1:8080"

// startWeb starts "jobq web" as the hosting account, detached (it keeps
// running, as sshd does), and returns its URL once it answers.
func startWeb(env *testenv.Env, dir, sshPrefix string) (string, error) {
	out, err := os.OpenFile(filepath.Join(dir, "jobq-web.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", err
	}
	defer out.Close()
	cmd := exec.Command(filepath.Join(env.Bin, "jobq"), "web", "--listen", webAddr, "--ssh", sshPrefix)
	cmd.Env = []string{"HOME=" + env.Home, "USER=" + env.User, "PATH=/usr/local/bin:/usr/bin:/bin"}
	cmd.Dir = env.Home
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: uint32(env.UID), Gid: uint32(env.GID)}}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start the web view: %w", err)
	}
	os.WriteFile(filepath.Join(dir, "jobq-web.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	go cmd.Wait() // its exit is noticed below, as no answer
	url := "http://" + webAddr + "/"
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return url, nil
		}
	}
	return "", fmt.Errorf("the web view does not answer on %s; %s says why", webAddr, filepath.Join(dir, "jobq-web.log"))
}
