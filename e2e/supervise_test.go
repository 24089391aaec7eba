package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

func init() { confParts = append(confParts, leaverConf) }

// The repositories whose exec jobs leave processes behind (leaver).
const leaverConf = `
repo leaver
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/leaver"

repo leaver-timeout
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_TIMEOUT = "4s"
    option ENV.JOBQ_COMMAND = "%[1]s/leaver wait"

repo leaver-cancel
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/leaver wait"
`

// leaver starts three processes meant to outlive the job: one in a session
// of its own (setsid -f), one through a double fork with nohup, and one
// that also ignores SIGTERM. Each runs MARKER, a sleep found by its path.
// With "wait", the job then runs until it is stopped.
const leaver = `#!/bin/sh
setsid -f MARKER 77
( nohup setsid MARKER 78 >/dev/null 2>&1 & )
setsid -f sh -c "trap '' TERM; exec MARKER 79"
echo started
if [ "$1" = wait ]; then exec sleep 300; fi
`

// newLeaver installs leaver with a marker of its own and returns the
// marker: the path of a sleep that only this test's jobs run.
func newLeaver(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(env.Dir, "leaver-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	marker := filepath.Join(dir, "sleep")
	if err := os.Symlink("/bin/sleep", marker); err != nil {
		t.Fatal(err)
	}
	script := strings.ReplaceAll(leaver, "MARKER", marker)
	if err := os.WriteFile(filepath.Join(env.Bin, "leaver"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return marker
}

// An exec job's processes all end with it, however it ends: none of the
// hosting account's processes runs the job's marker afterwards.
func TestExecJobLeavesNoProcess(t *testing.T) {
	tests := []struct {
		repo, result string
		cancel       bool
	}{
		{"leaver", "jobq: succeeded, exit code 0", false},
		{"leaver-timeout", "jobq: timed-out, exit code 143: exceeded JOBQ_TIMEOUT=4s", false},
		{"leaver-cancel", "jobq: cancelled, exit code 143: cancelled by request", true},
	}
	for _, tt := range tests {
		t.Run(tt.repo, func(t *testing.T) {
			marker := newLeaver(t)
			running := func() string { return userProcesses("^" + marker) }
			t.Cleanup(func() { exec.Command("pkill", "-KILL", "-u", env.User, "-f", "^"+marker).Run() })
			push(t, tt.repo, nil)
			if tt.cancel {
				testenv.WaitUntil(t, "the job runs its three processes", time.Minute, func() bool {
					return strings.Count(running(), "\n") == 2
				})
				if r := ssh("alice", "jobq", "cancel", tt.repo, "0"); r.Code != 0 {
					t.Fatalf("jobq cancel: %s", r)
				}
			}
			r := follow(t, "alice", tt.repo, 0)
			if !strings.Contains(r.Stdout, "started") || !strings.Contains(r.Stdout, tt.result) {
				t.Fatalf("jobq %s 0: %s", tt.repo, r)
			}
			if left := running(); left != "" {
				t.Errorf("the job's processes outlived it:\n%s", left)
			}
		})
	}
}
