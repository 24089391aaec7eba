package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jobq/jobq/queue"
)

// execRunner runs JOBQ_COMMAND with sh -c in the bare repository, in a
// process group of its own, so that a timeout stops every process it made.
type execRunner struct {
	grace time.Duration
	// pgidFile names where the running job's process group is kept, so that
	// Cleanup can stop it after the worker died.
	pgidFile func(j *queue.Job) string
}

// NewExec returns the exec runner. pgidFile gives a path private to the job
// (in its directory) where the runner records the job's process group.
func NewExec(grace time.Duration, pgidFile func(j *queue.Job) string) Runner {
	return &execRunner{grace: grace, pgidFile: pgidFile}
}

func (r *execRunner) Run(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
	cmd := exec.Command("/bin/sh", "-c", j.Options.Command)
	cmd.Dir = j.GitDir
	cmd.Env = append(append(HostEnv(), Env(j)...), "GIT_DIR="+j.GitDir)
	// The log file itself, not a pipe: the processes write straight into it,
	// in order, and a background process keeping it open cannot hang Wait.
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %q: %w", j.Options.Command, err)
	}
	pgid := cmd.Process.Pid
	pf := r.pgidFile(j)
	os.WriteFile(pf, []byte(strconv.Itoa(pgid)), 0o600)
	defer os.Remove(pf)

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(r.grace):
			syscall.Kill(-pgid, syscall.SIGKILL)
			err = <-done
		}
	}
	// Whatever the command left running in its group goes with it.
	syscall.Kill(-pgid, syscall.SIGKILL)
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

// Cleanup kills the process group a dead worker's job left.
func (r *execRunner) Cleanup(_ context.Context, j *queue.Job) error {
	pf := r.pgidFile(j)
	b, err := os.ReadFile(pf)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pgid <= 1 {
		return fmt.Errorf("bad process group in %s", filepath.Base(pf))
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", pgid, err)
	}
	return os.Remove(pf)
}
