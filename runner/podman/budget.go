package podman

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// A job's RLIMIT_NPROC holds each of its user IDs to JOBQ_PIDS (spec.go),
// but a job that is root in its container may switch among the 4,096 IDs
// of its range and have JOBQ_PIDS for each. What bounds all of a job's IDs
// together, and all jobs together, is the RLIMIT_NPROC of the Podman
// service that created their containers: the kernel (5.14 and later)
// counts a user namespace's processes, those of every namespace below it
// included, against its creator in the parent namespace, and compares that
// count with the creator's RLIMIT_NPROC at the time it made the namespace
// (is_rlimit_overlimit walks up the chain). Every job's namespace is made
// by the OCI runtime, a child of conmon, a child of the service: a service
// started with RLIMIT_NPROC B holds all jobs, and the service's own
// threads, conmons and runtimes, to B processes and threads together,
// whatever IDs the jobs use. The account's other processes (sshd's
// sessions for pushes, workers, the web front end) keep what the account
// may have beyond B.

// jobsNprocEnv is the worker setting that names B: the RLIMIT_NPROC of a
// Podman service that jobq starts itself.
const jobsNprocEnv = "JOBQ_JOBS_NPROC"

// nprocReserve is what the account keeps beyond a service jobq starts,
// where JOBQ_JOBS_NPROC is not set: a push over ssh takes about a dozen
// processes (sshd, gitolite, git, the hooks) and a worker a few dozen
// threads, so 512 lets dozens of pushes and workers run while jobs hold
// all they may have. On an account with little to give, half.
const nprocReserve = 512

// serviceNproc is the RLIMIT_NPROC for a Podman service jobq starts: JOBQ_JOBS_NPROC, else the worker's own soft limit less
// nprocReserve; never more than the worker's own. 0: no bound to set (the
// account has none).
func serviceNproc(getenv func(string) string) (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
		return 0, fmt.Errorf("read RLIMIT_NPROC: %w", err)
	}
	if v := getenv(jobsNprocEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n < 1 {
			return 0, fmt.Errorf("%s=%q is not a positive number of processes", jobsNprocEnv, v)
		}
		return min(n, lim.Cur), nil
	}
	if lim.Cur == unix.RLIM_INFINITY {
		return 0, nil
	}
	return lim.Cur - min(nprocReserve, lim.Cur/2), nil
}

// nprocExecEnv asks a process that imports this package to lower its
// RLIMIT_NPROC to the value given and execute its argv (init below): jobq
// starts the Podman service so, through its own executable, because the
// limit must be in place before the service starts anything. Setting it on
// the service after it started (prlimit) races with the processes the
// service starts at once (its user namespace, the pause process), which
// would keep the higher limit; lowering the worker's own limit around the
// start would for that moment refuse the worker's other goroutines a
// thread, which the Go runtime does not survive.
const nprocExecEnv = "_JOBQ_EXEC_NPROC"

func init() {
	if v, ok := os.LookupEnv(nprocExecEnv); ok {
		execWithNproc(v)
	}
}

// execWithNproc lowers RLIMIT_NPROC, soft and hard, to v and executes
// os.Args, without nprocExecEnv; it returns only by exiting. The hard
// limit too: Podman 4 sets its own RLIMIT_NPROC to the kernel's pid_max
// (containers/common's default ulimits) wherever its hard limit lets it,
// which would undo a lower soft limit alone. A container's limits must be
// within the service's hard limits: Spec's are (localHard).
func execWithNproc(v string) {
	fail := func(err error) {
		fmt.Fprintf(os.Stderr, "jobq: start %s with RLIMIT_NPROC %s: %v\n", os.Args[0], v, err)
		os.Exit(125)
	}
	os.Unsetenv(nprocExecEnv)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || len(os.Args) == 0 {
		fail(fmt.Errorf("bad request %q", v))
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
		fail(err)
	}
	lim.Cur, lim.Max = min(lim.Cur, n), min(lim.Max, n) // never raised
	if err := unix.Setrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
		fail(err)
	}
	fail(syscall.Exec(os.Args[0], os.Args, os.Environ()))
}

// withNproc makes cmd (Path absolute) start with an RLIMIT_NPROC of at
// most n, through this process's own executable; n 0 leaves cmd as it is.
func withNproc(cmd *exec.Cmd, n uint64) {
	if n == 0 {
		return
	}
	cmd.Args = append([]string{cmd.Path}, cmd.Args[1:]...)
	cmd.Path = "/proc/self/exe"
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, nprocExecEnv+"="+strconv.FormatUint(n, 10))
}
