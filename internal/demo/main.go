// Command demo sets up jobq end to end on this machine and runs its main
// job: a gitolite account "git" with jobq installed, an sshd on
// 127.0.0.1:2222, rootless Podman; a push of a repository whose job runs
// in a container; the job's log, followed live over ssh. Run it as root
// through scripts/demo, which installs the packages first.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

const conf = `repo demo
    RW+ = alice
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
	// A demo run before left its sshd on port 2222.
	if pid, err := os.ReadFile(filepath.Join(dir, "sshd", "sshd.pid")); err == nil {
		exec.Command("kill", strings.TrimSpace(string(pid))).Run()
		time.Sleep(200 * time.Millisecond)
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

	say("it keeps running; try it yourself:")
	fmt.Printf("  %s jobq demo\n", sshLine)
	fmt.Printf("  cd %s && echo change >> ci.sh && git commit -qam change && GIT_SSH_COMMAND='%s' git push\n", work, env.SSHCommand("alice"))
	fmt.Printf("  stop it: pkill -u git; kill $(cat %s/sshd/sshd.pid)\n", dir)
	if jobErr != nil {
		return fmt.Errorf("the demo job did not succeed: %v", jobErr)
	}
	return nil
}
