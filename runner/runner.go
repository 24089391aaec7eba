// Package runner runs one job: the exec runner runs a host command in the
// bare repository; the podman runner checks the revision out and runs the
// command in a rootless container. The queue package decides when a job
// runs; a runner only runs it.
package runner

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jobq/jobq/queue"
)

// Runner runs jobs of one kind.
//
// Lifecycle, per job: Run is called once, by one goroutine, and returns when
// the job has exited, with its exit status. When ctx ends (timeout,
// cancellation, the worker stopping), Run stops the job: SIGTERM, then
// SIGKILL after the grace period. Cleanup is then called once the result
// is recorded, and removes what the job used (its container, checkout,
// processes); it is also called by a later worker for a job whose worker
// died mid-run. Cleanup is safe for a job that left nothing, and safe to
// call twice. A Runner is safe for concurrent use by jobs of different
// queues.
type Runner interface {
	Run(ctx context.Context, j *queue.Job, log *os.File) (exit int, err error)
	Cleanup(ctx context.Context, j *queue.Job) error
}

// DefaultGrace is how long a job has between SIGTERM and SIGKILL.
const DefaultGrace = 5 * time.Second

// Env is the environment of a job (DESIGN.md): the job's own variables and
// the JOBQ_PASS_ENV values recorded at push time, sorted.
func Env(j *queue.Job) []string {
	m := map[string]string{}
	for k, v := range j.Env {
		m[k] = v
	}
	for k, v := range map[string]string{
		"GIT_REF":     j.Ref,
		"GIT_REV_OLD": j.OldRev,
		"GIT_REV_NEW": j.NewRev,
		"GL_REPO":     j.Repo,
		"GL_USER":     j.User,
		"JOBQ_JOB_ID": strconv.FormatInt(j.ID, 10),
		"JOBQ_QUEUE":  j.Queue,
		"CI":          "true",
	} {
		m[k] = v
	}
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// hostVars are the worker's variables an exec job gets besides its own:
// what a host command needs to run, nothing of the push or the pusher's
// session (SSH_CONNECTION and the like stay out).
var hostVars = map[string]bool{"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true,
	"LANG": true, "LANGUAGE": true, "TZ": true, "TMPDIR": true, "XDG_RUNTIME_DIR": true}

// HostEnv is the base of an exec job's environment: hostVars and LC_*
// from the worker's environment.
func HostEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if hostVars[k] || strings.HasPrefix(k, "LC_") {
			env = append(env, kv)
		}
	}
	return env
}

// ByKind dispatches each job to the runner its JOBQ_RUNNER names.
type ByKind map[string]Runner

// Run runs j with its runner.
func (b ByKind) Run(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
	r, ok := b[j.Options.Runner]
	if !ok {
		return 0, fmt.Errorf("runner %q is not available in this worker", j.Options.Runner)
	}
	return r.Run(ctx, j, log)
}

// Cleanup cleans up after j with its runner.
func (b ByKind) Cleanup(ctx context.Context, j *queue.Job) error {
	if r, ok := b[j.Options.Runner]; ok {
		return r.Cleanup(ctx, j)
	}
	return nil
}
