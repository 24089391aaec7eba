package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

func TestMain(m *testing.M) {
	// The runner runs its supervisor as this program: the test binary.
	if len(os.Args) > 1 && os.Args[1] == "supervise" {
		os.Exit(Supervise(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func testJob(gitDir, rev, command string) *queue.Job {
	return &queue.Job{
		Repo: "team/app", ID: 7, Queue: "deploy", Ref: "refs/heads/master",
		OldRev: strings.Repeat("0", 40), NewRev: rev, User: "alice", GitDir: gitDir,
		Env:     map[string]string{"DEPLOY_TOKEN": "s3cret"},
		Options: queue.Options{Command: command, Runner: "exec", Timeout: time.Minute, Keep: 10},
	}
}

// markedSleep is a sleep whose command line names a directory of the
// test's own, so that pgrep finds exactly the processes this test made.
func markedSleep(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "jobq-marker-") // a name the shell takes as is
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "sleep")
	if err := os.Symlink("/bin/sleep", p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("pkill", "-KILL", "-f", "^"+p).Run()
		os.RemoveAll(dir)
	})
	return p
}

// marked lists the processes running the program at path (not those that
// merely name it, such as the job's shell).
func marked(path string) string {
	out, _ := exec.Command("pgrep", "-a", "-f", "^"+path).Output()
	return strings.TrimSpace(string(out))
}

// Every process an exec job starts is gone when the job has ended: those
// that left the job's process group (setsid), those orphaned by a double
// fork, and those that ignore SIGTERM; whether the job ends by itself or is
// stopped (timeout and cancel both end the job's context).
func TestExecKillsEveryDescendant(t *testing.T) {
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	leavers := []struct{ name, command string }{
		{"setsid -f", `setsid -f SLEEP 77`},
		// Still in the job's process group: today's group kill caught it.
		{"nohup double fork", `( nohup SLEEP 77 >/dev/null 2>&1 & )`},
		{"nohup double fork, own session", `( nohup setsid SLEEP 77 >/dev/null 2>&1 & )`},
		{"ignores SIGTERM, own session", `setsid -f sh -c "trap '' TERM; exec SLEEP 77"`},
		{"fork bomb, bounded", `setsid -f sh -c 'for i in 1 2 3 4 5 6 7 8; do (SLEEP 77 &); done; SLEEP 77'`},
		// Orphans keep coming while the supervisor kills.
		{"keeps forking", `setsid -f sh -c 'trap "" TERM; while :; do (SLEEP 77 &); done'`},
	}
	endings := []struct {
		name, tail string
		stop       bool
		exit       int
	}{
		{"exits", "echo started", false, 0},
		{"stopped", "echo started; exec sleep 60", true, 143},
		{"stopped, ignoring SIGTERM", "trap '' TERM; echo started; sleep 60", true, 137},
	}
	for _, l := range leavers {
		for _, e := range endings {
			t.Run(l.name+"/"+e.name, func(t *testing.T) {
				sleep := markedSleep(t)
				dir := t.TempDir()
				r := New(500 * time.Millisecond)
				j := testJob(gitDir, rev, strings.ReplaceAll(l.command, "SLEEP", sleep)+"; "+e.tail)
				j.Options.Runner = "exec"
				log, err := os.Create(filepath.Join(dir, "log"))
				if err != nil {
					t.Fatal(err)
				}
				defer log.Close()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if e.stop {
					go func() {
						// Stop it once it has made its processes.
						for ctx.Err() == nil {
							if b, _ := os.ReadFile(log.Name()); strings.Contains(string(b), "started") && marked(sleep) != "" {
								cancel()
							}
							time.Sleep(10 * time.Millisecond)
						}
					}()
				}
				exit, err := r.Run(ctx, runner.Job{Job: j, Log: log, Dir: dir})
				b, _ := os.ReadFile(log.Name())
				if err != nil || exit != e.exit || !strings.Contains(string(b), "started") {
					t.Errorf("exit %d, %v, want %d; log %q", exit, err, e.exit, b)
				}
				if left := marked(sleep); left != "" {
					t.Errorf("left running after the job ended:\n%s", left)
				}
			})
		}
	}
}

// A job that kills its own process group (kill 0) does not kill its
// supervisor: the result is the job's.
func TestExecKillZero(t *testing.T) {
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	dir := t.TempDir()
	r := New(time.Second)
	j := testJob(gitDir, rev, "kill -KILL 0")
	j.Options.Runner = "exec"
	log, _ := os.Create(filepath.Join(dir, "log"))
	defer log.Close()
	if exit, err := r.Run(context.Background(), runner.Job{Job: j, Log: log, Dir: dir}); exit != 137 || err != nil {
		t.Errorf("exit %d, %v; want 137", exit, err)
	}
}

// Cleanup, as a later worker calls it for a job whose worker died, stops
// the supervisor and with it every process of the job; twice is fine.
func TestExecCleanupAfterDeadWorker(t *testing.T) {
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	sleep := markedSleep(t)
	dir := t.TempDir()
	pf := filepath.Join(dir, "supervisor")
	r := New(time.Second)
	j := testJob(gitDir, rev, "setsid -f "+sleep+" 77; trap '' TERM; "+sleep+" 78")
	j.Options.Runner = "exec"
	log, _ := os.Create(filepath.Join(dir, "log"))
	defer log.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx, runner.Job{Job: j, Log: log, Dir: dir})
		close(done)
	}()
	testenv.WaitUntil(t, "the job runs both sleeps", time.Minute, func() bool {
		return strings.Count(marked(sleep), "\n") == 1
	})
	// The worker "dies": keep its record of the supervisor, as a crash does.
	record, err := os.ReadFile(pf)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(record), &pid); err != nil || syscall.Kill(pid, 0) != nil {
		t.Fatalf("supervisor record %q: %v", record, err)
	}
	if err := r.Cleanup(context.Background(), runner.Job{Job: j, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if left := marked(sleep); left != "" {
		t.Errorf("left running after Cleanup:\n%s", left)
	}
	// A supervisor killed between writing its exit status and renaming
	// it leaves exit.tmp: the run directory must still end empty, or the
	// store keeps the job for a clean-up that never comes.
	os.WriteFile(pf, record, 0o600) // Run removed it: a second Cleanup of a gone supervisor
	os.WriteFile(filepath.Join(dir, "exit.tmp"), []byte("1"), 0o600)
	if err := r.Cleanup(context.Background(), runner.Job{Job: j, Dir: dir}); err != nil {
		t.Errorf("a second Cleanup: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() != "log" {
		t.Errorf("the run directory keeps %v after Cleanup; want only the test's log", ents)
	}
	cancel()
	<-done
}

// BenchmarkExecRun runs a job of "true": what the exec runner itself costs
// a job, the supervisor included.
func BenchmarkExecRun(b *testing.B) {
	dir := b.TempDir()
	r := New(time.Second)
	j := testJob(dir, "rev", "true")
	j.Options.Runner = "exec"
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	for b.Loop() {
		if exit, err := r.Run(context.Background(), runner.Job{Job: j, Log: log, Dir: dir}); exit != 0 || err != nil {
			b.Fatal(exit, err)
		}
	}
}

func TestExecRunner(t *testing.T) {
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	files := t.TempDir()
	r := New(time.Second)
	tests := []struct {
		command string
		timeout time.Duration
		exit    int
		log     string
	}{
		{`echo out; echo err >&2; echo "$GIT_REF $JOBQ_JOB_ID $CI $DEPLOY_TOKEN"; git cat-file -t $GIT_REV_NEW; test "$GIT_DIR" = "$PWD"`, 0, 0,
			"out\nerr\nrefs/heads/master 7 true s3cret\ncommit\n"},
		{"exit 4", 0, 4, ""},
		{"trap '' TERM; echo up; sleep 30", 500 * time.Millisecond, 137, "up\n"},
		{"kill -TERM $$", 0, 143, ""},
	}
	for _, tt := range tests {
		j := testJob(gitDir, rev, tt.command)
		ctx := context.Background()
		if tt.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, tt.timeout)
			defer cancel()
		}
		var log bytes.Buffer
		f, _ := os.Create(filepath.Join(t.TempDir(), "log"))
		exit, err := r.Run(ctx, runner.Job{Job: j, Log: f, Dir: files})
		f.Close()
		b, _ := os.ReadFile(f.Name())
		log.Write(b)
		if err != nil || exit != tt.exit || log.String() != tt.log {
			t.Errorf("%q: exit %d, %v, log %q; want %d, %q", tt.command, exit, err, log.String(), tt.exit, tt.log)
		}
	}
}

// A job outlives its worker: Run, told the worker stops, leaves the
// supervisor running and returns runner.ErrDetached; another runner (the
// next worker) adopts the job, its output going on into the log, and gets
// its exit status. Before the detached supervisor, the stop killed the
// job.
func TestExecAdopt(t *testing.T) {
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	for _, tt := range []struct {
		name string
		stop error // the adopting worker's context ends with this cause
		exit int
		log  string
	}{
		{"ends", nil, 3, "before\n" + notice + "after\n"},
		{"cancelled", context.Canceled, 143, "before\n" + notice + "stopped\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			gate := filepath.Join(dir, "gate")
			j := testJob(gitDir, rev, `exec 2>/dev/null; trap 'echo stopped; exit 143' TERM; echo before; while [ ! -e `+gate+` ]; do sleep 0.05; done; echo after; exit 3`)
			log, _ := os.OpenFile(filepath.Join(dir, "log"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
			defer log.Close()
			ctx, stop := context.WithCancelCause(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := New(time.Second).Run(ctx, runner.Job{Job: j, Log: log, Dir: dir})
				done <- err
			}()
			testenv.WaitUntil(t, "the job starts", time.Minute, func() bool {
				b, _ := os.ReadFile(log.Name())
				return string(b) == "before\n"
			})
			stop(runner.ErrStopping)
			if err := <-done; !errors.Is(err, runner.ErrDetached) {
				t.Fatalf("Run after the worker's stop: %v, want ErrDetached", err)
			}
			r := New(time.Second)
			actx, astop := context.WithCancelCause(context.Background())
			defer astop(nil)
			adopted := make(chan error, 1)
			var exit int
			go func() {
				var err error
				exit, err = r.Adopt(actx, runner.Job{Job: j, Log: log, Dir: dir}, notice)
				adopted <- err
			}()
			testenv.WaitUntil(t, "the notice", time.Minute, func() bool {
				b, _ := os.ReadFile(log.Name())
				return strings.HasSuffix(string(b), notice)
			})
			if tt.stop != nil {
				astop(tt.stop)
			} else {
				os.WriteFile(gate, nil, 0o600)
			}
			if err := <-adopted; err != nil || exit != tt.exit {
				t.Errorf("Adopt: exit %d, %v; want %d", exit, err, tt.exit)
			}
			if b, _ := os.ReadFile(log.Name()); string(b) != tt.log {
				t.Errorf("log %q, want %q", b, tt.log)
			}
			// Adopted again (its worker died after the end): the same
			// status, from the exit file, and only the notice in the log.
			if exit, err := r.Adopt(context.Background(), runner.Job{Job: j, Log: log, Dir: dir}, notice); err != nil || exit != tt.exit {
				t.Errorf("Adopt of an ended job: exit %d, %v; want %d", exit, err, tt.exit)
			}
			if b, _ := os.ReadFile(log.Name()); string(b) != tt.log+notice {
				t.Errorf("log %q, want %q", b, tt.log+notice)
			}
			if err := r.Cleanup(context.Background(), runner.Job{Job: j, Dir: dir}); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Adopt(context.Background(), runner.Job{Job: j, Log: log, Dir: dir}, notice); !errors.Is(err, runner.ErrGone) {
				t.Errorf("Adopt after Cleanup: %v, want ErrGone", err)
			}
		})
	}
}

// A supervisor killed while no worker watched leaves no exit status: the
// job is gone (lost), not a made-up result.
func TestExecAdoptKilledSupervisor(t *testing.T) {
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	dir := t.TempDir()
	pf := filepath.Join(dir, "supervisor")
	sleep := markedSleep(t)
	j := testJob(gitDir, rev, sleep+" 60")
	log, _ := os.OpenFile(filepath.Join(dir, "log"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	defer log.Close()
	r := New(time.Second)
	ctx, stop := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { _, err := r.Run(ctx, runner.Job{Job: j, Log: log, Dir: dir}); done <- err }()
	testenv.WaitUntil(t, "the job runs", time.Minute, func() bool { return marked(sleep) != "" })
	stop(runner.ErrStopping)
	<-done
	b, _ := os.ReadFile(pf)
	var pid int
	fmt.Sscan(string(b), &pid)
	if pid <= 1 {
		t.Fatalf("record %q", b)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	testenv.WaitUntil(t, "the supervisor dies", time.Minute, func() bool {
		st, err := readStat(pid)
		return err != nil || st.state == 'Z'
	})
	if _, err := r.Adopt(context.Background(), runner.Job{Job: j, Log: log, Dir: dir}, notice); !errors.Is(err, runner.ErrGone) {
		t.Errorf("Adopt: %v, want ErrGone", err)
	}
}

const notice = "jobq: worker restarted; output continues\n"

// The supervisor's command line names no repository (any process on the
// host may read it, a job of another repository too): the exit file is
// named through a directory it holds open, which the job does not get.
// The exit status still arrives there.
func TestSupervisorCommandLineNamesNoRepository(t *testing.T) {
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	run := filepath.Join(t.TempDir(), "repos", "team%2Fapp", "7", "run")
	if err := os.MkdirAll(run, 0o700); err != nil {
		t.Fatal(err)
	}
	r := New(time.Second)
	// The job's parent is its supervisor.
	j := testJob(gitDir, rev, `tr '\0' ' ' </proc/$PPID/cmdline; echo; for f in /proc/$$/fd/*; do readlink $f; done; exit 3`)
	f, _ := os.Create(filepath.Join(t.TempDir(), "log"))
	defer f.Close()
	exit, err := r.Run(context.Background(), runner.Job{Job: j, Log: f, Dir: run})
	log, _ := os.ReadFile(f.Name())
	if err != nil || exit != 3 {
		t.Fatalf("exit %d, %v; log %q", exit, err, log)
	}
	if !strings.Contains(string(log), " supervise ") || strings.Contains(string(log), "team") || strings.Contains(string(log), run) {
		t.Errorf("the supervisor's command line: %q; want it without the repository or its path", log)
	}
	for _, l := range strings.Split(string(log), "\n")[1:] {
		if l == run {
			t.Errorf("the job got the supervisor's directory descriptor: %q", log)
		}
	}
	if b, err := os.ReadFile(filepath.Join(run, "exit")); err != nil || string(b) != "3\n" {
		t.Errorf("exit file: %q, %v", b, err)
	}
}
