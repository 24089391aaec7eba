package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// startDetached starts a worker in a session of its own, with no tie to the
// push: its output goes to worker.log in the data directory, so that git and
// sshd do not wait for it, and a pusher's hang-up does not reach it. input
// is its standard input: a pipe, written and closed before it starts (a
// name fits a pipe's buffer many times), so nothing waits on the worker.
func startDetached(bin string, args []string, input, dataDir string) error {
	logf, err := os.OpenFile(filepath.Join(dataDir, "worker.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer r.Close()
	_, err = w.WriteString(input + "\n")
	w.Close()
	if err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = "/"
	cmd.Stdin = r
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = workerEnv(os.Environ(), dataDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	return cmd.Process.Release()
}

// workerEnv is the hook's environment without what belongs to one push
// (GIT_DIR is relative, GL_* describe one push) or to the pusher's ssh
// session (SSH_*, and what sshd's AcceptEnv lets a client set: LANG, LC_*,
// TERM): a worker outlives the push that started it and runs other users'
// jobs. The data directory is made explicit.
func workerEnv(environ []string, dataDir string) []string {
	env := []string{"JOBQ_HOME=" + dataDir}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "GIT_"), strings.HasPrefix(name, "GL_"), strings.HasPrefix(name, "SSH_"),
			strings.HasPrefix(name, "LC_"), name == "LANG", name == "LANGUAGE", name == "TERM", name == "JOBQ_HOME":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// execProgram replaces the current process.
func execProgram(bin string, args []string) error {
	err := syscall.Exec(bin, append([]string{bin}, args...), os.Environ())
	return fmt.Errorf("exec %s: %w", bin, err)
}
