package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

func init() { confParts = append(confParts, hardeningConf) }

// hardeningConf: carol may push dev (and every ref that begins so, as
// gitolite's refexes match prefixes); bob may create repositories under
// hzwild/, one of which is named like the queue hz-deploy is given.
const hardeningConf = `
repo hz-keep
    RW+     = alice
    RW  dev = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps hello"
    option ENV.JOBQ_KEEP = "4"

repo hz-tag
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"

repo hz-passenv
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps env"
    option ENV.JOBQ_PASS_ENV = "GL_OPTION_DEPLOY_HOST"
    option ENV.DEPLOY_HOST = "prod.example"

repo hz-deploy
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_QUEUE = "hzwild/prod"
    option ENV.JOBQ_COMMAND = "%[1]s/steps deploying sleep:300"

repo hzwild/..*
    C   = bob
    RW+ = CREATOR
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps bob-ran"

repo hz-cli
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps hello"
`

// pushRefsAs pushes a new commit on branch base (the default one if "")
// to each of refs of repo as user, in one push.
func pushRefsAs(t *testing.T, user, repo, base string, refs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	push := []string{"-C", "w", "push", "-q", "origin"}
	for _, ref := range refs {
		push = append(push, "HEAD:"+ref)
	}
	clone := []string{"clone", "-q", env.URL(repo), "w"}
	if base != "" {
		clone = append(clone, "-b", base)
	}
	for _, args := range [][]string{
		clone,
		{"-C", "w", "commit", "-q", "--allow-empty", "-m", "by " + user},
		push,
	} {
		if r := env.Git(ctx, user, dir, args...); r.Code != 0 {
			t.Fatalf("%s: git %v: %s", user, args, r)
		}
	}
}

// With "RW dev = carol" only, carol's pushes to dev, and then one push of
// twenty refs dev0…dev19, removed the records and logs of alice's master
// (deploy) jobs: JOBQ_KEEP counted per repository. Each ref now keeps its
// newest jobs beyond JOBQ_KEEP, shared out among their pushers, and the
// flood keeps at most 2 × JOBQ_KEEP.
func TestWriterOfOneRefKeepsOthersHistory(t *testing.T) {
	const repo, keep = "hz-keep", 4
	pushAs(t, "alice", repo)
	pushAs(t, "alice", repo)
	waitFinal(t, repo, 2)
	pushRefsAs(t, "carol", repo, "", "refs/heads/dev")
	for range 5 {
		pushRefsAs(t, "carol", repo, "dev", "refs/heads/dev")
	}
	var refs []string
	for i := range 20 {
		refs = append(refs, fmt.Sprintf("refs/heads/dev%d", i))
	}
	pushRefsAs(t, "carol", repo, "", refs...)
	// Every job has ended, and Prune after the last one has run.
	var jobs []jobJSON
	testenv.WaitUntil(t, "the 28 jobs end and are pruned", 3*time.Minute, func() bool {
		jobs = listJSON(t, "alice", repo)
		if len(jobs) == 0 || jobs[0].ID != 27 || len(jobs) > 2*keep {
			return false
		}
		for _, j := range jobs {
			if j.State != "succeeded" {
				return false
			}
		}
		return true // and so Prune ran after the last one
	})
	var ids []int
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	slices.Sort(ids)
	for _, id := range []int{0, 1} {
		if !slices.Contains(ids, id) {
			t.Errorf("alice's master job %d was removed by carol's pushes; kept %v", id, ids)
		}
		if r := ssh("alice", "jobq", "log", repo, fmt.Sprint(id)); r.Code != 0 || !strings.Contains(r.Stdout, "\nhello\n") {
			t.Errorf("alice's master job %d has no log: %s", id, r)
		}
	}
	if len(ids) > 2*keep {
		t.Errorf("kept %d jobs %v, more than 2 × JOBQ_KEEP", len(ids), ids)
	}
	for _, id := range []int{24, 25, 26, 27} {
		if !slices.Contains(ids, id) {
			t.Errorf("the newest %d jobs are not all kept: %v", keep, ids)
		}
	}
}

// A push of an annotated tag, and of a tag of a tag, ran no job: the
// checkout took the tag object for a commit ("object not found"), though
// the default filter selects refs/tags/**. Each runs now with the tagged
// commit's source; a tag of a tree fails in one line.
func TestAnnotatedTagsRun(t *testing.T) {
	const repo = "hz-tag"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	w := filepath.Join(dir, "w")
	git := func(args ...string) string {
		t.Helper()
		r := env.Git(ctx, "alice", dir, append([]string{"-C", "w"}, args...)...)
		if r.Code != 0 {
			t.Fatalf("git %v: %s", args, r)
		}
		return strings.TrimSpace(r.Stdout)
	}
	if r := env.Git(ctx, "alice", dir, "clone", "-q", env.URL(repo), "w"); r.Code != 0 {
		t.Fatalf("clone: %s", r)
	}
	for name, body := range map[string]string{"ci.sh": "echo \"at $GIT_REF\"\ncat VERSION\n", "VERSION": "tagged-v1\n"} {
		if err := os.WriteFile(filepath.Join(w, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("add", "-A")
	git("commit", "-q", "-m", "release")
	git("tag", "-a", "-m", "release v1", "v1")
	git("tag", "-a", "-m", "v1, approved", "v1-approved", "v1") // a tag of a tag
	git("tag", "-a", "-m", "a tree", "tree-tag", "HEAD^{tree}")
	if git("cat-file", "-t", "v1-approved") != "tag" || git("cat-file", "-t", "v1-approved^{}") != "commit" ||
		git("cat-file", "-p", "v1-approved") == "" || !strings.Contains(git("cat-file", "-p", "v1-approved"), "type tag") {
		t.Fatal("v1-approved is not a tag of a tag")
	}
	// One ref at a time: job IDs follow the refs.
	for _, ref := range []string{"refs/tags/v1", "refs/tags/v1-approved", "refs/tags/tree-tag"} {
		if r := env.Git(ctx, "alice", dir, "-C", "w", "push", "-q", "origin", ref); r.Code != 0 {
			t.Fatalf("push %s: %s", ref, r)
		}
	}
	for id, ref := range []string{"refs/tags/v1", "refs/tags/v1-approved"} {
		r := follow(t, "alice", repo, id)
		if r.Code != 0 || !strings.Contains(r.Stdout, "\nat "+ref+"\ntagged-v1\n") || !strings.Contains(r.Stdout, "jobq: succeeded, exit code 0") {
			t.Errorf("job %d (%s): %s", id, ref, r)
		}
	}
	tag, tree := git("rev-parse", "tree-tag"), git("rev-parse", "HEAD^{tree}")
	want := fmt.Sprintf("jobq: failed: checkout %s: %s is a tree, not a commit (or a tag of one): there is nothing to check out; nothing was checked out, after ", tag[:12], tree[:12])
	if line := resultLine(t, repo, 2); !strings.HasPrefix(line, want) {
		t.Errorf("the tag of a tree: result line\n%s\nwant it to start\n%s", line, want)
	}
	checkNothingLeft(t, repo)
}

// jobq retry took JOBQ_PASS_ENV's values from the ssh session, where
// gitolite's GL_OPTION_ variables are not: a retried deploy lost the
// DEPLOY_HOST its push had. It takes them from gitolite now, as a push
// does; and --json shows none of them.
func TestRetryKeepsPassEnvFromOptions(t *testing.T) {
	const repo = "hz-passenv"
	pushAs(t, "alice", repo)
	if r := follow(t, "alice", repo, 0); r.Code != 0 || !strings.Contains(r.Stdout, "\nGL_OPTION_DEPLOY_HOST=prod.example\n") {
		t.Fatalf("the push's job: %s", r)
	}
	if r := ssh("alice", "jobq", "retry", repo, "0"); r.Code != 0 {
		t.Fatalf("retry: %s", r)
	}
	if r := follow(t, "alice", repo, 1); r.Code != 0 || !strings.Contains(r.Stdout, "\nGL_OPTION_DEPLOY_HOST=prod.example\n") {
		t.Errorf("the retry's job lacks GL_OPTION_DEPLOY_HOST: %s", r)
	}
	if r := ssh("alice", "jobq", "ls", repo, "--json"); r.Code != 0 || strings.Contains(r.Stdout, "prod.example") {
		t.Errorf("--json shows a JOBQ_PASS_ENV value: %s", r)
	}
}

// Queue and repository names were one namespace: hz-deploy's jobs go to
// the queue the administrator named hzwild/prod, and bob, who may create
// repositories under hzwild/, made hzwild/prod, whose default queue had
// that name: his jobs joined the deploy queue (and waited behind its
// job). A repository's own queue is repo:NAME now, which no JOBQ_QUEUE
// can name.
func TestRepositoryNamedLikeAQueueDoesNotJoinIt(t *testing.T) {
	r, _ := push(t, "hz-deploy", nil)
	if !strings.Contains(r.Stderr, "jobq: queued hz-deploy job 0 in queue hzwild/prod (0 ahead)") {
		t.Fatalf("push hz-deploy: %s", r.Stderr)
	}
	defer ssh("alice", "jobq", "cancel", "hz-deploy", "0")
	env.JobWorker(t, "hz-deploy", "deploying")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	steps := [][]string{
		{"clone", "-q", env.URL("hzwild/prod"), "w"},
		{"-C", "w", "commit", "-q", "--allow-empty", "-m", "by bob"},
		{"-C", "w", "push", "origin", "HEAD:refs/heads/master"},
	}
	var out testenv.Result
	for _, args := range steps {
		if out = env.Git(ctx, "bob", dir, args...); out.Code != 0 {
			t.Fatalf("bob: git %v: %s", args, out)
		}
	}
	if !strings.Contains(out.Stderr, "jobq: queued hzwild/prod job 0 in queue repo:hzwild/prod (0 ahead)") {
		t.Errorf("bob's push: %s", out.Stderr)
	}
	// bob's job runs while the deploy job still runs: not behind it.
	if r := follow(t, "bob", "hzwild/prod", 0); r.Code != 0 || !strings.Contains(r.Stdout, "\nbob-ran\n") {
		t.Errorf("bob's job: %s", r)
	}
	var deploy []jobJSON
	if deploy = listJSON(t, "alice", "hz-deploy"); len(deploy) != 1 || deploy[0].State != "running" {
		t.Errorf("hz-deploy's jobs: %+v", deploy)
	}
	if r := ssh("alice", "jobq", "cancel", "hz-deploy", "0"); r.Code != 0 {
		t.Errorf("cancel: %s", r)
	}
}

// jobq REPO -n 5 answered "unknown shorthand flag: 'n'" though the README
// documents it, and an unknown command "usage: jobq jobq [REPO [ID]]".
// Both work through ssh and gitolite now, and hostile counts are one line.
func TestListLimitAndUnknownCommandThroughSSH(t *testing.T) {
	const repo = "hz-cli"
	for range 3 {
		pushAs(t, "alice", repo)
	}
	waitFinal(t, repo, 3)
	r := ssh("alice", "jobq", repo, "-n", "2")
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if r.Code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[1], "2 ") || !strings.HasPrefix(lines[2], "1 ") ||
		lines[3] != "(the newest 2; all: jobq ls -n 0 hz-cli)" {
		t.Errorf("jobq %s -n 2: %s", repo, r)
	}
	if r := ssh("alice", "jobq", repo, "-n", "99999999999999999999"); r.Code != 0 || strings.Count(r.Stdout, "\n") != 4 {
		t.Errorf("jobq %s -n 99999999999999999999: %s", repo, r)
	}
	for _, n := range []string{"-1", "abc", "1.5"} {
		want := fmt.Sprintf("jobq: invalid argument %q for \"-n, --limit\" flag: not a number of jobs (0: all that are kept)\n", n)
		if r := ssh("alice", "jobq", repo, "-n", n); r.Code != 2 || r.Stdout != "" || r.Stderr != want {
			t.Errorf("jobq %s -n %s: %s", repo, n, r)
		}
	}
	// The same answer for anyone, whatever repository the words name.
	for _, user := range []string{"alice", "bob"} {
		for args, want := range map[string]string{
			"frobnicate set x":             `jobq: unknown command "frobnicate" (commands: cancel, log, ls, retry; or jobq [REPO [ID]])` + "\n",
			"frobnicate ls":                `jobq: unknown command "frobnicate", and "ls" is not a job ID (commands: cancel, log, ls, retry; or jobq [REPO [ID]])` + "\n",
			"run hz-cli refs/heads/master": `jobq: unknown command "run" (commands: cancel, log, ls, retry; or jobq [REPO [ID]])` + "\n",
		} {
			if r := ssh(user, append([]string{"jobq"}, strings.Fields(args)...)...); r.Code != 2 || r.Stdout != "" || r.Stderr != want {
				t.Errorf("%s: jobq %s: %s\nwant %q", user, args, r, want)
			}
		}
	}
}
