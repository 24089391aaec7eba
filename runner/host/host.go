package host

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

	"github.com/jobq/jobq/internal/atomicfile"
	"github.com/jobq/jobq/runner"
)

// The contract of package runner.
var _ runner.Runner = (*Runner)(nil)

// Runner runs JOBQ_COMMAND with sh -c in the bare repository, under a
// supervisor (Supervise), detached from the worker: the job outlives a
// worker that dies or stops, and a later worker adopts it.
type Runner struct {
	grace time.Duration
}

// New returns the exec runner. It records each job's supervisor in the
// job's run directory (runner.Job.Dir; see the package doc).
//
// The supervisor is this program run again as "PROGRAM supervise ...": its
// main must hand those arguments to Supervise (jobq-worker's does, and so
// must the TestMain of a test that runs exec jobs).
func New(grace time.Duration) *Runner {
	return &Runner{grace: grace}
}

// supervisorSlack is how long after the grace period the worker waits for a
// supervisor that was told to stop before it kills the supervisor itself.
const supervisorSlack = 5 * time.Second

// pidFile is the job's supervisor record: "PID START" (its pid and start
// time), locked (flock) by the supervisor as long as it lives.
func pidFile(j runner.Job) string { return filepath.Join(j.Dir, "supervisor") }

// exitFile is where the supervisor of the job recorded in pf writes the
// job's exit status.
func exitFile(pf string) string { return filepath.Join(filepath.Dir(pf), "exit") }

func (r *Runner) Run(ctx context.Context, j runner.Job) (int, error) {
	pf, log := pidFile(j), j.Log
	atomicfile.Remove(exitFile(pf)) // a previous run's, in tests
	// The record is locked before the supervisor starts, through the open
	// file it inherits: whoever finds it unlocked knows the supervisor is
	// gone.
	record, err := os.OpenFile(pf, os.O_RDWR|os.O_CREATE|os.O_TRUNC|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("supervisor record: %w", err)
	}
	defer record.Close()
	if err := syscall.Flock(int(record.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return 0, fmt.Errorf("supervisor record: %w", err)
	}
	// The exit file is named through an open directory, not its path: a
	// command line is anyone's on the host to read, jobs' too, and the
	// path names the repository.
	runDir, err := os.Open(filepath.Dir(pf))
	if err != nil {
		return 0, fmt.Errorf("supervisor record: %w", err)
	}
	defer runDir.Close()
	args := []string{os.Args[0], "supervise", "--grace=" + r.grace.String(), "--record-fd=3", "--dir-fd=4", "--exit=/proc/self/fd/4/exit"}
	env := append(append(hostEnv(), runner.Env(j.Job)...), "GIT_DIR="+j.GitDir)
	if len(j.Secrets) > 0 {
		dir, err := writeSecrets(j)
		if err != nil {
			return 0, err
		}
		args = append(args, secretArgs(dir, j.Secrets)...)
		env = append(env, "JOBQ_SECRETS_DIR="+dir)
	}
	extra := []*os.File{record, runDir}
	// Values withheld from the job reach the supervisor through a pipe,
	// read before the job starts: never in JOBQ_SECRETS_DIR, which is the
	// job's to read, nor on a command line.
	var maskOut *os.File
	if len(j.Mask) > 0 {
		in, out, err := os.Pipe()
		if err != nil {
			return 0, fmt.Errorf("values to mask: %w", err)
		}
		defer in.Close()
		defer func() {
			if maskOut != nil {
				maskOut.Close()
			}
		}()
		extra, maskOut = append(extra, in), out
		args = append(args, "--mask-fd=5")
	}
	cmd := &exec.Cmd{
		// The running program itself, even if its file was replaced since.
		Path: "/proc/self/exe",
		Args: append(args, "--", "/bin/sh", "-c", j.Options.Command),
		Dir:  j.GitDir,
		Env:  env,
		// The log file itself, not a pipe: the processes write straight
		// into it, in order, and go on writing when the worker is gone.
		Stdout: log, Stderr: log,
		ExtraFiles: extra,
		// A session of its own: no terminal's or worker group's signals.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %q: %w", j.Options.Command, err)
	}
	if maskOut != nil {
		extra[len(extra)-1].Close() // the supervisor's: its end alone keeps the writer from blocking
		// A value is at most secret.MaxLen: more than a pipe holds, so
		// written while the supervisor reads.
		go func(out *os.File) {
			writeMask(out, j.Mask)
			out.Close()
		}(maskOut)
		maskOut = nil
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-ctx.Done():
		if errors.Is(context.Cause(ctx), runner.ErrStopping) {
			return 0, runner.ErrDetached // the supervisor runs on; the next worker adopts it
		}
		// The supervisor stops the job: SIGTERM, SIGKILL after the grace.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case werr = <-done:
		case <-time.After(r.grace + supervisorSlack):
			cmd.Process.Kill() // stopped or stuck: the job's processes may stay
			werr = <-done
		}
	}
	return exitCode(werr)
}

// Adopt takes over a job whose worker died or stopped: it waits for its
// supervisor, stopping it if ctx ends (not for runner.ErrStopping), and
// returns the exit status the supervisor wrote. The job's output goes on
// into log through the supervisor; the notice goes in first.
func (r *Runner) Adopt(ctx context.Context, j runner.Job, notice string) (int, error) {
	pf, log := pidFile(j), j.Log
	record, err := os.OpenFile(pf, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, runner.ErrGone // never started
	}
	if err != nil {
		return 0, fmt.Errorf("supervisor record: %w", err)
	}
	defer record.Close()
	if !locked(record) {
		// It ended while no worker watched: its output is all in the log.
		code, err := r.result(pf, false)
		if err == nil {
			runner.WriteNotice(log, notice)
		}
		return code, err
	}
	runner.WriteNotice(log, notice)
	var stopped bool
	var kill <-chan time.Time
	stopping := ctx.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for locked(record) {
		select {
		case <-tick.C:
		case <-stopping:
			stopping = nil
			if errors.Is(context.Cause(ctx), runner.ErrStopping) {
				return 0, runner.ErrDetached
			}
			signalSupervisor(record, syscall.SIGTERM)
			kill = time.After(r.grace + supervisorSlack)
		case <-kill:
			signalSupervisor(record, syscall.SIGKILL)
			stopped = true
		}
	}
	return r.result(pf, stopped)
}

// result reads the exit status the supervisor of record pf wrote; without
// one the supervisor was killed: by us (stopped), or by someone else, and
// the job's status is lost with it.
func (r *Runner) result(pf string, stopped bool) (int, error) {
	b, err := os.ReadFile(exitFile(pf))
	if err == nil {
		if code, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return code, nil
		}
	}
	if stopped {
		return 128 + int(syscall.SIGKILL), nil
	}
	return 0, fmt.Errorf("the supervisor died without an exit status: %w", runner.ErrGone)
}

// locked reports whether the supervisor holding the record lives.
func locked(record *os.File) bool {
	// A shared lock, let go at once: whether the supervisor holds it now.
	err := syscall.Flock(int(record.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if err == nil {
		syscall.Flock(int(record.Fd()), syscall.LOCK_UN)
	}
	return errors.Is(err, syscall.EWOULDBLOCK)
}

// signalSupervisor signals the supervisor the record names, if it still
// runs: the pid with its start time, since pids are reused.
func signalSupervisor(record *os.File, sig syscall.Signal) {
	b := make([]byte, 64)
	n, _ := record.ReadAt(b, 0)
	var pid int
	var start uint64
	if _, err := fmt.Sscan(string(b[:n]), &pid, &start); err != nil || pid <= 1 {
		return
	}
	if st, err := readStat(pid); err == nil && st.startTime == start && st.state != 'Z' {
		syscall.Kill(pid, sig)
	}
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
// died, waits until it is gone, and removes its records.
func (r *Runner) Cleanup(ctx context.Context, j runner.Job) error {
	pf := pidFile(j)
	record, err := os.OpenFile(pf, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return errors.Join(removeSecrets(j), atomicfile.Remove(exitFile(pf)))
	}
	if err != nil {
		return err
	}
	defer record.Close()
	if locked(record) {
		signalSupervisor(record, syscall.SIGTERM)
		deadline := time.Now().Add(r.grace + supervisorSlack)
		for locked(record) && ctx.Err() == nil {
			if time.Now().After(deadline) {
				signalSupervisor(record, syscall.SIGKILL)
				deadline = time.Now().Add(time.Minute)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if ctx.Err() != nil && locked(record) {
			return fmt.Errorf("stop the supervisor: %w", ctx.Err())
		}
	}
	return errors.Join(removeSecrets(j), atomicfile.Remove(exitFile(pf)), removeFile(pf))
}

// removeFile removes path; gone already counts as done.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// hostVars are the worker's variables an exec job gets besides its own:
// what a host command needs to run, nothing of the push or the pusher's
// session (SSH_CONNECTION and the like stay out).
var hostVars = map[string]bool{"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true,
	"LANG": true, "LANGUAGE": true, "TZ": true, "TMPDIR": true, "XDG_RUNTIME_DIR": true}

// hostEnv is the base of an exec job's environment: hostVars and LC_*
// from the worker's environment.
func hostEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if hostVars[k] || strings.HasPrefix(k, "LC_") {
			env = append(env, kv)
		}
	}
	return env
}
