package host

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jobq/jobq/internal/atomicfile"
	"github.com/jobq/jobq/runner"
	"golang.org/x/sys/unix"
)

// Supervise is an exec job's supervisor, "jobq-worker supervise": a process
// of jobq's own between the worker and the job, so that nothing the job
// starts outlives it, and the job outlives its worker. args are
//
//	[--grace=DURATION] [--record-fd=N --exit=PATH [--dir-fd=M]] -- PROGRAM [ARG...]
//
// It makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so that every
// orphan among the job's descendants (setsid -f, a double fork, nohup ... &)
// becomes its child, not init's, and runs PROGRAM in a process group of its
// own with the supervisor's stdin, stdout, stderr, directory and
// environment. It reaps orphans as they exit. On SIGTERM it passes SIGTERM
// to the job's group and every descendant, and after the grace period kills
// them all. When PROGRAM exits, it kills and reaps every descendant left,
// writes PROGRAM's status (128+N for signal N) to the exit file, then exits
// with it. Its own failures are one line on stderr and exit status 127 (2
// for bad usage).
//
// The worker starts it detached (a session of its own) with its record
// open and locked at fd N: the supervisor writes "PID START" there (its pid
// and start time) and holds the lock until it exits, so that a later
// worker knows whether it still runs without trusting a pid. The exit
// file's directory is open at fd M, and PATH names it through that
// (/proc/self/fd/M/exit): any process on the host may read a command
// line, and the directory's path names the repository.
//
// The subreaper only catches processes that stay descendants: a job runs as
// the hosting account and can start processes elsewhere (at, cron, systemd
// --user, ssh) or kill the supervisor. The exec runner is for trusted
// writers.
func Supervise(args []string) int {
	flags := flag.NewFlagSet("supervise", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	grace := flags.Duration("grace", runner.DefaultGrace, "time between SIGTERM and SIGKILL")
	recordFD := flags.Int("record-fd", -1, "the open, locked record")
	exitPath := flags.String("exit", "", "where to write the exit status")
	dirFD := flags.Int("dir-fd", -1, "an open directory, for --exit to name as /proc/self/fd/M")
	var sec supervisorSecrets
	flags.StringVar(&sec.dir, "secrets", "", "the job's secrets directory (JOBQ_SECRETS_DIR): its values are masked in the output")
	maskFD := flags.Int("mask-fd", -1, "a pipe of further values to mask in the output (withheld from the job), read before it starts")
	flags.Func("secret-var", "VAR=NAME: the job's variable VAR holds the secret NAME", func(v string) error {
		sec.vars = append(sec.vars, v)
		return nil
	})
	if err := flags.Parse(args); err != nil || flags.NArg() == 0 || *recordFD == 0 || *recordFD == 1 || *recordFD == 2 ||
		*dirFD >= 0 && *dirFD <= 2 || *maskFD >= 0 && *maskFD <= 2 || len(sec.vars) > 0 && sec.dir == "" {
		fmt.Fprintln(os.Stderr, "jobq: usage: jobq-worker supervise [--grace=DURATION] [--record-fd=N --exit=PATH [--dir-fd=M]] [--secrets=DIR [--secret-var=VAR=NAME...]] [--mask-fd=K] -- PROGRAM [ARG...]")
		return 2
	}
	if *dirFD > 2 {
		syscall.CloseOnExec(*dirFD) // the supervisor's, not the job's
	}
	if *recordFD > 2 {
		// Not the job's: the lock must die with the supervisor alone.
		// Written through the bare descriptor, never an *os.File: a
		// garbage-collected *os.File closes its descriptor, and with it
		// would go the lock while the job still runs.
		syscall.CloseOnExec(*recordFD)
		if st, err := readStat(os.Getpid()); err == nil {
			unix.Ftruncate(*recordFD, 0)
			unix.Pwrite(*recordFD, []byte(fmt.Sprintf("%d %d\n", os.Getpid(), st.startTime)), 0)
		}
	}
	var err error
	if *maskFD > 2 {
		// Read whole and closed before the job starts: the job inherits
		// no descriptor of it.
		f := os.NewFile(uintptr(*maskFD), "mask")
		sec.mask, err = readMask(f)
		f.Close()
	}
	code := 127
	if err == nil {
		code, err = supervise(*grace, flags.Args(), sec)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "jobq: supervise: %v\n", err)
		code = 127
	}
	if *exitPath != "" {
		if err := writeExit(*exitPath, code); err != nil {
			fmt.Fprintf(os.Stderr, "jobq: supervise: %v\n", err)
		}
	}
	return code
}

// writeExit records the job's exit status, atomically: a reader sees the
// whole status or none.
func writeExit(path string, code int) error {
	return atomicfile.WriteOwned(path, []byte(strconv.Itoa(code)+"\n"), 0o600)
}

func supervise(grace time.Duration, argv []string, sec supervisorSecrets) (int, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("PR_SET_CHILD_SUBREAPER: %w", err)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return 0, err
	}
	// Without values to mask (of secrets given or withheld) the job
	// writes straight into the log (stdout); with them, into a pipe the
	// supervisor masks into the log, and the directory of those given
	// goes when the job has ended.
	env, out := os.Environ(), uintptr(1)
	values := sec.mask
	if sec.dir != "" {
		defer os.RemoveAll(sec.dir)
		given, vars, err := sec.load()
		if err != nil {
			return 0, fmt.Errorf("the job's secrets: %w", err)
		}
		env = withVars(env, vars)
		values = append(values, given...)
	}
	if len(values) > 0 {
		pw, wait, err := maskOutput(os.Stdout, values)
		if err != nil {
			return 0, err
		}
		defer wait()
		out = pw.Fd()
	}
	// Before the job starts: no SIGCHLD or SIGTERM may be missed.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, out, out},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", argv[0], err)
	}
	var status syscall.WaitStatus
	var kill <-chan time.Time
	for done := false; !done; {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGTERM && kill == nil {
				syscall.Kill(-pid, syscall.SIGTERM)
				signalDescendants(syscall.SIGTERM)
				kill = time.After(grace)
			}
		case <-kill:
			syscall.Kill(-pid, syscall.SIGKILL)
			signalDescendants(syscall.SIGKILL)
		}
		// Children are reaped here only (never by os/exec), so the job's
		// status cannot be taken by another wait.
		done, _ = reap(pid, &status)
	}
	killDescendants()
	if status.Signaled() {
		return 128 + int(status.Signal()), nil
	}
	return status.ExitStatus(), nil
}

// reap reaps every child that has exited, without waiting; it reports
// whether pid was among them, its status in status, and syscall.ECHILD when
// no child is left.
func reap(pid int, status *syscall.WaitStatus) (bool, error) {
	found := false
	for {
		var ws syscall.WaitStatus
		p, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return found, err
		case p <= 0:
			return found, nil
		case p == pid:
			*status, found = ws, true
		}
	}
}

// killDescendants kills and reaps every descendant. As a subreaper, the
// supervisor has no descendants once it has no children; a process forked
// after a round's scan is found by the next one (its parent's death makes
// it the supervisor's child).
func killDescendants() {
	var ws syscall.WaitStatus
	for {
		if _, err := reap(-1, &ws); errors.Is(err, syscall.ECHILD) {
			return
		}
		signalDescendants(syscall.SIGKILL)
		time.Sleep(time.Millisecond) // for them to die
	}
}

// signalDescendants sends sig to each live descendant of this process,
// found through /proc.
func signalDescendants(sig syscall.Signal) {
	for _, p := range descendants(os.Getpid()) {
		syscall.Kill(p, sig)
	}
}

// descendants lists the live (not zombie) descendants of pid.
func descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(p)
		if err != nil || st.state == 'Z' {
			continue
		}
		children[st.ppid] = append(children[st.ppid], p)
	}
	var out []int
	seen := map[int]bool{pid: true} // a scan is no snapshot: no cycle may loop
	for queue := children[pid]; len(queue) > 0; queue = queue[1:] {
		if p := queue[0]; !seen[p] {
			seen[p] = true
			out = append(out, p)
			queue = append(queue, children[p]...)
		}
	}
	return out
}

// procStat is what jobq reads of /proc/PID/stat.
type procStat struct {
	state     byte
	ppid      int
	startTime uint64 // clock ticks after boot: with the pid, names one process
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 20 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return procStat{state: f[0][0], ppid: ppid, startTime: start}, nil
}
