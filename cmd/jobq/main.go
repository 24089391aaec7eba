// Command jobq is the program gitolite and users call: the post-receive hook
// (installed as post-receive*), the ssh commands (installed as a gitolite
// command), and the front of the worker. It links no Podman code, so that
// every push and every ssh call starts fast; workers run jobq-worker.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/jobq/jobq/internal/cli"
)

// env is what a command may read of its process: its arguments, streams and
// environment, passed in so that tests run commands in-process.
type env struct {
	args   []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	lookup func(string) (string, bool)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := env{args: os.Args, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, lookup: os.LookupEnv}
	os.Exit(run(ctx, e))
}

// run executes one invocation and returns its exit status.
func run(ctx context.Context, e env) int {
	if strings.HasPrefix(filepath.Base(e.args[0]), "post-receive") {
		return runHook(ctx, e)
	}
	cmd := newRoot(ctx, e)
	cmd.SetArgs(e.args[1:])
	return cli.Exit(e.stderr, "jobq", cmd.ExecuteContext(ctx))
}
