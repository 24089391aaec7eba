package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// Runner runs JOBQ_COMMAND with sh -c in the bare repository, under a
// supervisor (Supervise) that kills every process the job made when it
// ends.
type Runner struct {
	grace time.Duration
	// pidFile names where the running job's supervisor is recorded, so that
	// Cleanup can stop it after the worker died.
	pidFile func(j *queue.Job) string
}

// New returns the exec runner. pidFile gives a path private to the job
// (in its directory) where the runner records the job's supervisor.
//
// The supervisor is this program run again as "PROGRAM supervise ...": its
// main must hand those arguments to Supervise (jobq-worker's does, and so
// must the TestMain of a test that runs exec jobs).
func New(grace time.Duration, pidFile func(j *queue.Job) string) *Runner {
	return &Runner{grace: grace, pidFile: pidFile}
}

// supervisorSlack is how long after the grace period the worker waits for a
// supervisor that was told to stop before it kills the supervisor itself.
const supervisorSlack = 5 * time.Second

func (r *Runner) Run(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
	cmd := &exec.Cmd{
		// The running program itself, even if its file was replaced since.
		Path: "/proc/self/exe",
		Args: []string{os.Args[0], "supervise", "--grace=" + r.grace.String(), "--", "/bin/sh", "-c", j.Options.Command},
		Dir:  j.GitDir,
		Env:  append(append(runner.HostEnv(), runner.Env(j)...), "GIT_DIR="+j.GitDir),
		// The log file itself, not a pipe: the processes write straight
		// into it, in order, and a background process keeping it open
		// cannot hang Wait.
		Stdout: log, Stderr: log,
		// A session of its own: no terminal's or worker group's signals.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %q: %w", j.Options.Command, err)
	}
	pid := cmd.Process.Pid
	if st, err := readStat(pid); err == nil {
		pf := r.pidFile(j)
		os.WriteFile(pf, []byte(fmt.Sprintf("%d %d\n", pid, st.startTime)), 0o600)
		defer os.Remove(pf)
	}

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		// The supervisor stops the job: SIGTERM, SIGKILL after the grace.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(r.grace + supervisorSlack):
			cmd.Process.Kill() // stopped or stuck: the job's processes may stay
			err = <-done
		}
	}
	return exitCode(err)
}

func exitCode(err error) (int, error) {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	default:
		return 0, err
	}
}

// Cleanup stops the supervisor, and so every process, of a job whose worker
// died, and waits until it is gone.
func (r *Runner) Cleanup(ctx context.Context, j *queue.Job) error {
	pf := r.pidFile(j)
	b, err := os.ReadFile(pf)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var pid int
	var start uint64
	if _, err := fmt.Sscan(string(b), &pid, &start); err != nil || pid <= 1 {
		return fmt.Errorf("bad supervisor record in %s", filepath.Base(pf))
	}
	// The pid names the supervisor only while the process has the start
	// time recorded with it: pids are reused.
	alive := func() bool {
		st, err := readStat(pid)
		return err == nil && st.startTime == start && st.state != 'Z'
	}
	if alive() {
		syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(r.grace + supervisorSlack)
		for alive() && ctx.Err() == nil {
			if time.Now().After(deadline) {
				syscall.Kill(pid, syscall.SIGKILL)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if ctx.Err() != nil && alive() {
			return fmt.Errorf("stop the supervisor (pid %d): %w", pid, ctx.Err())
		}
	}
	if err := os.Remove(pf); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
