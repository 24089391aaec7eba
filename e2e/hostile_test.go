package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

// waitFinal waits until repo has n jobs, all ended, and returns them.
func waitFinal(t *testing.T, repo string, n int) []jobJSON {
	t.Helper()
	var jobs []jobJSON
	testenv.WaitUntil(t, fmt.Sprintf("%d jobs of %s end", n, repo), 2*time.Minute, func() bool {
		jobs = listJSON(t, "alice", repo)
		if len(jobs) != n {
			return false
		}
		for _, j := range jobs {
			if j.State == "queued" || j.State == "running" {
				return false
			}
		}
		return true
	})
	return jobs
}

// Several pushers at once, through ssh and gitolite, into repositories that
// share a queue: every push has its job, IDs are unique and without gaps,
// the jobs ran one at a time in queue order, every log is whole.
func TestConcurrentPushes(t *testing.T) {
	repos := []string{"conc-a", "conc-b", "conc-c", "conc-d"}
	const pushes = 10
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, repo := range repos {
		dir := t.TempDir()
		if r := env.Git(ctx, "alice", dir, "clone", "-q", env.URL(repo), "w"); r.Code != 0 {
			t.Fatal(r)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := filepath.Join(dir, "w")
			for i := range pushes {
				os.WriteFile(filepath.Join(w, "f"), []byte(fmt.Sprint(i)), 0o644)
				env.Git(ctx, "alice", w, "add", "f")
				env.Git(ctx, "alice", w, "commit", "-q", "-m", fmt.Sprint(i))
				if r := env.Git(ctx, "alice", w, "push", "-q", "origin", "HEAD:refs/heads/master"); r.Code != 0 || !strings.Contains(r.Stderr, "jobq: queued") {
					t.Errorf("%s push %d: %s", repo, i, r)
				}
			}
		}()
	}
	wg.Wait()
	var all []jobJSON
	for _, repo := range repos {
		jobs := waitFinal(t, repo, pushes)
		for i := range jobs {
			jobs[i].Seq = recordedSeq(t, repo, jobs[i].ID) // not shown to users
		}
		ids := []int{}
		for _, j := range jobs {
			ids = append(ids, j.ID)
			if j.State != "succeeded" {
				t.Errorf("%s job %d: %s", repo, j.ID, j.State)
			}
			if log := readLog(repo, j.ID); !strings.Contains(log, "hello\njobq: succeeded, exit code 0") {
				t.Errorf("%s job %d log:\n%s", repo, j.ID, log)
			}
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
			t.Errorf("%s IDs %v", repo, ids)
		}
		all = append(all, jobs...)
	}
	slices.SortFunc(all, func(a, b jobJSON) int { return int(a.Seq - b.Seq) })
	for i := 1; i < len(all); i++ {
		if all[i].Seq == all[i-1].Seq {
			t.Errorf("two jobs share queue place %d", all[i].Seq)
		}
		if all[i].StartedAt.Before(all[i-1].FinishedAt) {
			t.Errorf("queue place %d started at %s, before place %d finished at %s", i, all[i].StartedAt, i-1, all[i-1].FinishedAt)
		}
	}
}

// A push of hundreds of refs at once, some with unusual characters.
func TestHundredsOfRefs(t *testing.T) {
	// Unusual, within what gitolite lets through ([-0-9a-zA-Z._@/+ :,]):
	// it refuses other characters itself.
	refspecs := []string{"HEAD:refs/heads/x+y_z.1", "HEAD:refs/heads/a@b", "HEAD:refs/heads/UP/low-er", "HEAD:refs/heads/with,comma"}
	for i := range 296 {
		refspecs = append(refspecs, fmt.Sprintf("HEAD:refs/heads/b%03d", i))
	}
	r, _ := push(t, "manyrefs", nil, refspecs...)
	if n := strings.Count(r.Stderr, "jobq: queued manyrefs job"); n != 300 {
		t.Fatalf("%d jobs queued for 300 refs", n)
	}
	jobs := waitFinal(t, "manyrefs", 300)
	refs := map[string]bool{}
	for _, j := range jobs {
		refs[j.Ref] = true
		if j.State != "succeeded" {
			t.Errorf("job %d (%s): %s", j.ID, j.Ref, j.State)
		}
	}
	for _, want := range []string{"refs/heads/x+y_z.1", "refs/heads/a@b", "refs/heads/UP/low-er", "refs/heads/with,comma", "refs/heads/b295"} {
		if !refs[want] {
			t.Errorf("no job for %s", want)
		}
	}
}

// Arguments meant to escape: through ssh (gitolite filters some itself),
// none reaches a path outside the data directory or answers differently
// from a plain unknown repository.
func TestHostileArguments(t *testing.T) {
	before := dataDirEntries(t)
	for _, args := range [][]string{
		{".."}, {"../.."}, {"../../../etc/passwd", "0"}, {"/etc/passwd"}, {"acl/../secret", "0"}, {"acl/..", "0"},
		{"log", "../secret", "0"}, {"cancel", "..", "0"}, {"retry", "/tmp", "0"},
		{"acl", "../../0"}, {"acl", "-1"}, {"acl", "99999999999999999999999"},
		{"--bogus"}, {"ls", "--no-such-flag", "acl"},
		{strings.Repeat("a", 5000)}, {"acl", strings.Repeat("9", 5000)},
		{"a;id"}, {"$(id)"}, {"`id`"}, {"a|b"}, {"a b c d e"},
	} {
		r := ssh("alice", append([]string{"jobq"}, args...)...)
		out := r.Stdout + r.Stderr
		if r.Code == 0 || strings.Contains(out, "root:") || strings.Contains(out, "uid=") {
			t.Errorf("jobq %q: %s", args, r)
		}
		if lines := strings.Count(strings.TrimSpace(r.Stderr), "\n"); lines > 1 && !strings.Contains(r.Stderr, "FATAL") {
			t.Errorf("jobq %q: not one line:\n%s", args, r.Stderr)
		}
	}
	if after := dataDirEntries(t); !slices.Equal(before, after) {
		t.Errorf("the data directory changed:\nbefore %v\nafter  %v", before, after)
	}
}

// dataDirEntries lists the repositories and queues jobq knows, and what
// stands beside them in the data directory.
func dataDirEntries(t *testing.T) []string {
	var names []string
	for _, dir := range []string{".", "repos", "queues"} {
		ents, _ := os.ReadDir(filepath.Join(env.DataDir(), dir))
		for _, e := range ents {
			names = append(names, filepath.Join(dir, e.Name()))
		}
	}
	return names
}

// A corrupt job record: the listing still works and shows it unreadable.
func TestCorruptRecordListed(t *testing.T) {
	push(t, "acl", nil)
	push(t, "acl", nil)
	waitFinal(t, "acl", 2)
	rec := filepath.Join(env.DataDir(), "repos", "acl", "0", "job.json")
	orig, _ := os.ReadFile(rec)
	defer os.WriteFile(rec, orig, 0o600)
	os.WriteFile(rec, []byte("{\"state\": \x00garbage"), 0o600)
	r := ssh("alice", "jobq", "acl")
	if r.Code != 0 || !strings.Contains(r.Stdout, "0   unreadable") || !strings.Contains(r.Stdout, "succeeded") {
		t.Errorf("jobq acl with a corrupt record: %s", r)
	}
	if r := ssh("alice", "jobq", "acl", "0"); r.Code != 1 || !strings.Contains(r.Stderr, "unreadable record") {
		t.Errorf("jobq acl 0: %s", r)
	}
}

// The access matrix: no, read and write access × every command.
func TestAccessMatrix(t *testing.T) {
	push(t, "acl", nil)
	testenv.WaitUntil(t, "acl has jobs", 2*time.Minute, func() bool { return len(listJSON(t, "alice", "acl")) > 0 })
	id := fmt.Sprint(listJSON(t, "alice", "acl")[0].ID)
	waitFinal(t, "acl", len(listJSON(t, "alice", "acl")))
	commands := map[string][]string{
		"list":   {"acl"},
		"ls":     {"ls", "acl", "--json"},
		"log":    {"log", "acl", id},
		"follow": {"acl", id},
		"cancel": {"cancel", "acl", id},
		"retry":  {"retry", "acl", id},
	}
	denied := "no such repository with jobs, or no access"
	for _, tt := range []struct {
		user    string
		allowed map[string]bool
	}{
		{"bob", map[string]bool{}},
		{"carol", map[string]bool{"list": true, "ls": true, "log": true, "follow": true}},
		{"alice", map[string]bool{"list": true, "ls": true, "log": true, "follow": true, "cancel": true, "retry": true}},
	} {
		for name, args := range commands {
			r := ssh(tt.user, append([]string{"jobq"}, args...)...)
			refused := strings.Contains(r.Stderr, denied) || strings.Contains(r.Stderr, "needs write access")
			if tt.allowed[name] == refused {
				t.Errorf("%s: jobq %s: allowed %v, got %s", tt.user, strings.Join(args, " "), tt.allowed[name], r)
			}
			if tt.user == "bob" {
				other := slices.Clone(args)
				for i := range other {
					other[i] = strings.ReplaceAll(other[i], "acl", "nosuchrepo")
				}
				m := ssh("bob", append([]string{"jobq"}, other...)...)
				if m.Code != r.Code || strings.ReplaceAll(m.Stderr, "nosuchrepo", "acl") != r.Stderr {
					t.Errorf("bob: jobq %s differs from a missing repository:\n%s\n---\n%s", name, r, m)
				}
			}
		}
	}
}

// Job data is private to the hosting account.
func TestDataIsPrivate(t *testing.T) {
	err := filepath.WalkDir(env.DataDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %s: readable by others", p, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// And another local account cannot read a log.
	logs, _ := filepath.Glob(filepath.Join(env.DataDir(), "repos", "*", "0", "log"))
	if len(logs) == 0 {
		t.Fatal("no logs to check")
	}
	if out, err := exec.Command("runuser", "-u", "nobody", "--", "cat", logs[0]).CombinedOutput(); err == nil {
		t.Errorf("user nobody read %s: %s", logs[0], out)
	}
}

// Only the JOBQ_PASS_ENV names reach a job, beyond its own variables (and,
// for the exec runner, the host basics).
func TestOnlyPassEnvReachesJob(t *testing.T) {
	for _, repo := range []string{"envcheck", "envpod"} {
		push(t, repo, nil)
		r := follow(t, "alice", repo, 0)
		if r.Code != 0 {
			t.Fatalf("jobq %s 0: %s", repo, r)
		}
		if !strings.Contains(r.Stdout, "\nSSH_CLIENT=127.0.0.1 ") {
			t.Errorf("%s: SSH_CLIENT (in JOBQ_PASS_ENV) missing:\n%s", repo, r.Stdout)
		}
		for _, leak := range []string{"SSH_CONNECTION=", "GL_OPTION_", "GL_BINDIR=", "GL_ADMIN_BASE=", "GIT_DIR=.", "JOBQ_HOME="} {
			if strings.Contains(r.Stdout, "\n"+leak) {
				t.Errorf("%s: %s reached the job:\n%s", repo, leak, r.Stdout)
			}
		}
	}
}

// JOBQ_HOME on a small, full filesystem: the push succeeds, the hook says
// so in one line, what was there stays intact, and all works once space
// returns.
func TestFullDisk(t *testing.T) {
	setRC(t, map[string]string{"JOBQ_MIN_FREE": "0"}) // jobs start on this small filesystem
	data := env.DataDir()
	// A 2 MB tmpfs over the data directory for this test (the jobs of the
	// other tests are under it, untouched, and back after). It exists
	// already unless this test runs first.
	if out, err := env.AsUser(context.Background(), nil, "mkdir", "-p", data); err != nil {
		t.Fatalf("mkdir: %v %s", err, out)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=2m,mode=0700,uid=%d,gid=%d", env.UID, env.GID), "jobq-full", data).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	defer func() {
		testenv.WaitUntil(t, "no worker holds the small filesystem", 2*time.Minute, func() bool { return userProcesses("jobq-worker") == "" })
		exec.Command("umount", "-l", data).Run()
	}()
	push(t, "diskfull", nil)
	first := follow(t, "alice", "diskfull", 0)
	if first.Code != 0 {
		t.Fatalf("jobq diskfull 0: %s", first)
	}
	filler := filepath.Join(data, "filler")
	exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=64k").Run() // until the disk is full
	r, _ := push(t, "diskfull", nil)                                 // push fails the test if git push fails
	var lines []string
	for _, l := range strings.Split(r.Stderr, "\n") {
		if strings.Contains(l, "jobq:") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "no space left on device") || !strings.Contains(lines[0], "no job queued") {
		t.Errorf("a push to a full disk said:\n%s", r.Stderr)
	}
	if again := follow(t, "alice", "diskfull", 0); again.Stdout != first.Stdout {
		t.Errorf("job 0's log changed on a full disk:\n%s", again.Stdout)
	}
	os.Remove(filler)
	push(t, "diskfull", nil)
	jobs := waitFinal(t, "diskfull", 2)
	if jobs[0].State != "succeeded" {
		t.Errorf("after space returned: %+v", jobs[0])
	}
	time.Sleep(100 * time.Millisecond)
}
