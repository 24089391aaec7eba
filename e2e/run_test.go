package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func init() { confParts = append(confParts, runConf) }

// runConf: on manual, alice may push anything, carol dev only, bob
// nothing; on manualro carol may only read. Their jobs print their
// environment.
const runConf = `
repo manual
    RW+     = alice
    RW  dev = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps env"
    option ENV.JOBQ_REF_FILTER = "refs/heads/master refs/heads/dev"

repo manualro
    RW+ = alice
    R   = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps env"
`

// runJob is what a test of jobq run reads of a job's --json.
type runJob struct {
	ID     int    `json:"id"`
	State  string `json:"state"`
	Ref    string `json:"ref"`
	OldRev string `json:"old_rev"`
	NewRev string `json:"new_rev"`
	User   string `json:"user"`
	Origin string `json:"origin"`
}

func runJobs(t *testing.T, repo string) map[int]runJob {
	t.Helper()
	r := ssh("alice", "jobq", "ls", "-n", "0", repo, "--json")
	var jobs []runJob
	if err := json.Unmarshal([]byte(r.Stdout), &jobs); r.Code != 0 || err != nil {
		t.Fatalf("jobq ls %s --json: %v %s", repo, err, r)
	}
	m := map[int]runJob{}
	for _, j := range jobs {
		m[j.ID] = j
	}
	return m
}

// jobq run over ssh: a writer of the ref runs it (and follows it with
// -f); a writer of dev cannot run master; a reader without W is told
// what is missing; a user who may not read the repository gets a
// missing repository's answer; a hostile REF is bad usage in one line.
func TestRunOverSSH(t *testing.T) {
	_, master := push(t, "manual", nil)                     // job 0
	_, dev := push(t, "manual", nil, "HEAD:refs/heads/dev") // job 1
	push(t, "manualro", nil)                                // manualro job 0
	waitFinal(t, "manual", 2)
	waitFinal(t, "manualro", 1)

	r := ssh("alice", "jobq", "run", "manual", "master", "-f")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "jobq: queued manual job 2 in queue repo:manual (0 ahead): refs/heads/master at "+master[:8]+"\n") {
		t.Fatalf("alice: jobq run manual master -f: %s", r)
	}
	for _, want := range []string{"jobq: job 2 of manual, queue repo:manual, run by alice\n", "\nGIT_REF=refs/heads/master\n", "\nGIT_REV_NEW=" + master + "\n", "\nGIT_REV_OLD=" + master + "\n", "\nGL_USER=alice\n", "\njobq: succeeded, exit code 0"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("alice's followed run lacks %q:\n%s", strings.TrimSpace(want), r.Stdout)
		}
	}
	for _, tt := range []struct {
		user, repo, ref string
		code            int
		out, err        string
	}{
		{"carol", "manual", "master", 1, "", "jobq: carol may not run manual refs/heads/master: that needs write access (W) on it\n"},
		{"carol", "manual", "refs/heads/master", 1, "", "jobq: carol may not run manual refs/heads/master: that needs write access (W) on it\n"},
		{"carol", "manual", "dev", 0, "jobq: queued manual job 3 in queue repo:manual (0 ahead): refs/heads/dev at " + dev[:8] + "\n", ""},
		{"carol", "manualro", "master", 1, "", "jobq: carol may not run manualro refs/heads/master: that needs write access (W) on it\n"},
		{"alice", "manual", "nosuch", 1, "", "jobq: manual has no branch or tag nosuch; no job queued\n"},
		{"alice", "manual", "refs/heads/other", 1, "", "jobq: manual has no ref refs/heads/other; no job queued\n"},
	} {
		r := ssh(tt.user, "jobq", "run", tt.repo, tt.ref)
		if r.Code != tt.code || r.Stdout != tt.out || r.Stderr != tt.err {
			t.Errorf("%s: jobq run %s %s: %s\nwant %d %q %q", tt.user, tt.repo, tt.ref, r, tt.code, tt.out, tt.err)
		}
	}
	sameAsMissing(t, "bob", "manual", "run", "manual", "master")
	sameAsMissing(t, "bob", "manual", "run", "manual", "nosuchref")
	sameAsMissing(t, "bob", "manualro", "run", "manualro", "master")

	// REFs no push could have made: bad usage, in one line, nothing
	// queued. gitolite itself refuses any argument with ".." in it.
	for _, ref := range []string{"-x", "--", "master:x", "refs/heads//x", "refs/heads/x.lock", "@", strings.Repeat("a", 2000)} {
		r := ssh("alice", "jobq", "run", "manual", ref)
		if r.Code != 2 || r.Stdout != "" || !strings.HasPrefix(r.Stderr, "jobq: ") || strings.Count(r.Stderr, "\n") != 1 || len(r.Stderr) > 400 {
			t.Errorf("jobq run manual %.40q: %s", ref, r)
		}
	}
	for _, ref := range []string{"..", "refs/heads/../x"} {
		if r := ssh("alice", "jobq", "run", "manual", ref); r.Code == 0 || r.Stdout != "" {
			t.Errorf("jobq run manual %.40q: %s", ref, r)
		}
	}

	jobs := waitFinal(t, "manual", 4)
	if len(jobs) != 4 {
		t.Fatalf("%d jobs of manual, want 4", len(jobs))
	}
	got := runJobs(t, "manual")
	want := map[int]runJob{
		0: {ID: 0, Ref: "refs/heads/master", NewRev: master, User: "alice", Origin: "push"},
		1: {ID: 1, Ref: "refs/heads/dev", NewRev: dev, User: "alice", Origin: "push"},
		2: {ID: 2, Ref: "refs/heads/master", OldRev: master, NewRev: master, User: "alice", Origin: "run"},
		3: {ID: 3, Ref: "refs/heads/dev", OldRev: dev, NewRev: dev, User: "carol", Origin: "run"},
	}
	for id, w := range want {
		g := got[id]
		g.State = ""
		if id < 2 {
			g.OldRev = "" // a push's: the ref's previous value
		}
		if g != w {
			t.Errorf("job %d: %+v, want %+v", id, g, w)
		}
	}
	if r := ssh("alice", "jobq", "manual"); !strings.Contains(r.Stdout, "ORIGIN") || strings.Count(r.Stdout, "  run\n") != 2 {
		t.Errorf("the listing does not say how jobs started:\n%s", r)
	}
}

// A schedule is the hosting account's crontab calling jobq run: as cron
// runs it, with no ssh, no gitolite variables and cron's own environment
// (HOME, LOGNAME, SHELL, PATH=/usr/bin:/bin), from the account's home.
func TestRunFromCron(t *testing.T) {
	_, master := push(t, "manual", nil)
	before := len(runJobs(t, "manual"))
	waitFinal(t, "manual", before)
	line := filepath.Join(env.Bin, "jobq") + " run manual master >>$HOME/cron.out 2>&1"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// What cron does with a crontab line: sh -c LINE, in a fresh
	// environment (as runuser -u ACCOUNT -- env -i ... gives).
	out, err := runCron(ctx, line)
	if err != nil {
		t.Fatalf("cron's line: %v %s", err, out)
	}
	b, _ := os.ReadFile(filepath.Join(env.Home, "cron.out"))
	os.Remove(filepath.Join(env.Home, "cron.out"))
	want := fmt.Sprintf("jobq: queued manual job %d in queue repo:manual (0 ahead): refs/heads/master at %s\n", before, master[:8])
	if string(b) != want {
		t.Errorf("cron's mail would be %q, want %q", b, want)
	}
	waitFinal(t, "manual", before+1)
	j := runJobs(t, "manual")[before]
	if j.Origin != "run" || j.User != "" || j.NewRev != master || j.State != "succeeded" {
		t.Errorf("the scheduled job: %+v", j)
	}
	log := follow(t, "alice", "manual", before)
	if !strings.Contains(log.Stdout, fmt.Sprintf("jobq: job %d of manual, queue repo:manual, run by -\n", before)) ||
		!strings.Contains(log.Stdout, "\nGIT_REF=refs/heads/master\n") || !strings.Contains(log.Stdout, "\nGL_USER=\n") {
		t.Errorf("the scheduled job's log:\n%s", log.Stdout)
	}
}

// runCron runs a crontab line as cron does, as the hosting account.
func runCron(ctx context.Context, line string) (string, error) {
	cmd := exec.CommandContext(ctx, "runuser", "-u", env.User, "--", "env", "-i",
		"HOME="+env.Home, "LOGNAME="+env.User, "SHELL=/bin/sh", "PATH=/usr/bin:/bin", "/bin/sh", "-c", line)
	cmd.Dir = env.Home
	out, err := cmd.CombinedOutput()
	return string(out), err
}
