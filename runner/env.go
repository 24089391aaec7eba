package runner

import (
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/jobq/jobq/queue"
)

// DefaultGrace is how long a job has between SIGTERM and SIGKILL.
const DefaultGrace = 5 * time.Second

// DefaultMinFree is the free space the data directory's filesystem, and a
// checkout's, keep (JOBQ_MIN_FREE of the worker): below it no job starts,
// and a checkout stops.
const DefaultMinFree = 1 << 30

// Env is the environment of a job (the README's "Jobs" section): the job's own variables and
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

// WriteNotice appends notice (a line, the worker's word that it took a
// running job over) to log on a line of its own, recorded as jobq's
// (queue.WriteOwn). It returns the bytes it wrote.
func WriteNotice(log *os.File, notice string) int {
	n, _ := queue.WriteOwn(log, notice)
	return n
}
