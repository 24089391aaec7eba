// Package e2e tests jobq end to end: a real gitolite behind a real sshd on
// 127.0.0.1, pushes with git over ssh, the ssh commands, real workers.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

// env is shared by the package's tests, which run one after another.
var env *testenv.Env

// confParts are the gitolite configuration of the package's tests, in
// pieces: this file's, and one per test file that needs repositories of
// its own (added in that file's init). %[1]s in each is env.Bin.
var confParts = []string{conf}

// conf is the gitolite configuration most tests share.
const conf = `
repo demo
    RW+ = alice
    R   = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/run-deployment"
    option ENV.JOBQ_REF_FILTER = "refs/heads/master refs/tags/*"

repo private
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "echo private-output"

repo shared-a shared-b
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "yes"
    option ENV.JOBQ_QUEUE = "shared"
    option ENV.JOBQ_COMMAND = "sleep 1"

repo syncrepo
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_COMMAND = "%[1]s/steps sync-output sleep:1 sync-done"

repo syncdrop
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_COMMAND = "%[1]s/steps begin sleep:3 end"

repo slow
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_TIMEOUT = "2s"
    option ENV.JOBQ_COMMAND = "%[1]s/stubborn 300"

repo longrun
    RW+ = alice
    R   = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps started sleep:300"

repo pod podsync podkill
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"
    option ENV.JOBQ_PASS_ENV = "HOME"

repo pod podkill
    option ENV.JOBQ_ASYNC = "1"

repo podfull
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"
    option ENV.JOBQ_ASYNC = "1"

repo execfull
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/fill-inodes"

repo conc-a conc-b conc-c conc-d diskfull manyrefs acl
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps hello"

repo conc-a conc-b conc-c conc-d
    option ENV.JOBQ_QUEUE = "conc"

repo acl
    R = carol

repo manyrefs
    option ENV.JOBQ_KEEP = "1000"

repo envcheck
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_COMMAND = "%[1]s/steps env"
    option ENV.JOBQ_PASS_ENV = "SSH_CLIENT"

repo envpod
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest env"
    option ENV.JOBQ_PASS_ENV = "SSH_CLIENT"

repo badopt
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_COMMAND = "echo never"
    option ENV.JOBQ_TIMEOUT = "abc"
`

// runDeployment is the run-deployment script of the GWS jobq article,
// unchanged.
const runDeployment = `#!/usr/bin/bash

set -o errexit
set -o nounset
set -o pipefail

tmpd=$(mktemp -d)

# trap will automatically remove temporary directory as soon as this script
# exits. Note the interesting "quoting hack".
trap "rm -rf '${tmpd}'" EXIT

# Log commands which Bash runs: this will make our life easier when
# debugging failed jobs
set -x

git --work-tree="${tmpd}" --git-dir="${GIT_DIR}" checkout --force "${GIT_REV_NEW}"
cd "${tmpd}"

if [[ -e Makefile.ci ]]; then
    make --file=Makefile.ci deploy
fi
`

// stubborn ignores SIGTERM, in a child too, so that only SIGKILL to the
// process group stops it.
const stubborn = `#!/bin/sh
trap '' TERM
sh -c "trap '' TERM; sleep $1" &
sleep "$1"
`

// steps prints its arguments one by one; "sleep:N" sleeps N seconds, and
// "env" prints the job's environment.
const steps = `#!/bin/sh
for a; do
    case "$a" in
    sleep:*) sleep "${a#sleep:}" ;;
    env) env | sort ;;
    *) echo "$a" ;;
    esac
done
`

func TestMain(m *testing.M) {
	if miss := testenv.Missing(); len(miss) > 0 {
		os.Exit(testenv.NotRun(m, "e2e", "missing "+strings.Join(miss, ", ")))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	var err error
	env, err = testenv.Start(ctx, testenv.Options{Users: []string{"alice", "bob", "carol"}, Podman: true})
	if err == nil {
		err = setup(ctx)
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		if env != nil {
			env.Close()
		}
		os.Exit(1)
	}
	code := m.Run()
	env.Close()
	os.Exit(code)
}

func setup(ctx context.Context) error {
	for name, body := range map[string]string{"run-deployment": runDeployment, "stubborn": stubborn, "steps": steps} {
		if err := os.WriteFile(filepath.Join(env.Bin, name), []byte(body), 0o755); err != nil {
			return err
		}
	}
	var all strings.Builder
	for _, c := range confParts {
		all.WriteString(strings.ReplaceAll(c, "%[1]s", env.Bin) + "\n")
	}
	return env.Configure(ctx, all.String())
}

// push commits files to a fresh clone of repo and pushes refspec as alice;
// it returns the push's result and the new commit.
func push(t *testing.T, repo string, files map[string]string, refspecs ...string) (testenv.Result, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if r := env.Git(ctx, "alice", dir, "clone", "-q", env.URL(repo), "w"); r.Code != 0 {
		t.Fatalf("clone %s: %s", repo, r)
	}
	w := filepath.Join(dir, "w")
	if len(files) == 0 {
		files = map[string]string{"README": time.Now().String()}
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(w, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", "change"}} {
		if r := env.Git(ctx, "alice", w, args...); r.Code != 0 {
			t.Fatalf("git %v: %s", args, r)
		}
	}
	rev := strings.TrimSpace(env.Git(ctx, "alice", w, "rev-parse", "HEAD").Stdout)
	if len(refspecs) == 0 {
		refspecs = []string{"HEAD:refs/heads/master"}
	}
	r := env.Git(ctx, "alice", w, append([]string{"push", "origin"}, refspecs...)...)
	if r.Code != 0 {
		t.Fatalf("push %s: %s", repo, r)
	}
	return r, rev
}

// follow runs "ssh jobq REPO ID" as user, which returns when the job ends.
func follow(t *testing.T, user, repo string, id int) testenv.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return env.SSH(ctx, user, "jobq", repo, fmt.Sprint(id))
}

func ssh(user string, args ...string) testenv.Result {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return env.SSH(ctx, user, args...)
}

// userProcesses lists the hosting account's processes whose command line
// contains s.
func userProcesses(s string) string {
	out, _ := exec.Command("pgrep", "-a", "-u", env.User, "-f", s).Output()
	return strings.TrimSpace(string(out))
}
