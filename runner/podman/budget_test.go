package podman

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestServiceNproc(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur == unix.RLIM_INFINITY || lim.Cur < 2 {
		t.Fatalf("this test needs a finite RLIMIT_NPROC; it is %d", lim.Cur)
	}
	cur := strconv.FormatUint(lim.Cur, 10)
	tests := []struct {
		name, setting string
		want          uint64
		err           string
	}{
		{"default: the worker's less the reserve", "", lim.Cur - min(nprocReserve, lim.Cur/2), ""},
		{"setting", "300", min(300, lim.Cur), ""},
		{"setting at the worker's own", cur, lim.Cur, ""},
		{"never raised", strconv.FormatUint(lim.Cur+1, 10), lim.Cur, ""},
		{"zero", "0", 0, `JOBQ_JOBS_NPROC="0" is not a positive number of processes`},
		{"negative", "-1", 0, `JOBQ_JOBS_NPROC="-1" is not a positive number of processes`},
		{"not a number", "lots", 0, `JOBQ_JOBS_NPROC="lots" is not a positive number of processes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := serviceNproc(func(k string) string { return map[string]string{jobsNprocEnv: tt.setting}[k] })
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// helperEnv makes this test binary, started by TestWithNproc, print its
// RLIMIT_NPROC and exit, in place of running tests.
const helperEnv = "JOBQ_TEST_PRINT_NPROC"

// nprocHelper is the helper process of TestWithNproc: where helperEnv is
// set it prints its RLIMIT_NPROC, whether the wrapper's request reached
// it, and its arguments, and exits (TestMain).
func nprocHelper() {
	if os.Getenv(helperEnv) == "" {
		return
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	_, leaked := os.LookupEnv(nprocExecEnv)
	fmt.Printf("%d %d %v %s\n", lim.Cur, lim.Max, leaked, strings.Join(os.Args[1:], " "))
	os.Exit(0)
}

// A command withNproc prepared starts with the lower limit, soft and hard,
// its arguments as they were, and without the request in its
// environment (the service's children, jobs among them, never see it); a
// limit over the worker's own is not raised.
func TestWithNproc(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []uint64{0, 77, lim.Cur + 1} {
		t.Run(strconv.FormatUint(n, 10), func(t *testing.T) {
			cmd := exec.Command(self, "system", "service")
			cmd.Env = append(os.Environ(), helperEnv+"=1")
			withNproc(cmd, n)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			cur, hard := min(lim.Cur, n), min(lim.Max, n)
			if n == 0 {
				cur, hard = lim.Cur, lim.Max
			}
			if got, w := strings.TrimSpace(string(out)), fmt.Sprintf("%d %d false system service", cur, hard); got != w {
				t.Errorf("the command saw %q, want %q", got, w)
			}
		})
	}
}

// A request the wrapper cannot carry out fails the start with one line.
func TestWithNprocBadRequest(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"=1", nprocExecEnv+"=many")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 125 || strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), `bad request "many"`) {
		t.Errorf("exit %v, output %q", err, out)
	}
}

// The hard limit a job's own limits are held within is at most the
// budget, and at most pid_max, to which Podman 4 lowers its own.
func TestLocalHard(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	pidMax, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ budget, want uint64 }{
		{0, min(lim.Max, pidMax)},
		{77, min(lim.Max, pidMax, 77)},
		{pidMax + 1, min(lim.Max, pidMax)},
	} {
		if got := LocalHard(tt.budget).nproc; got != tt.want {
			t.Errorf("LocalHard(%d).nproc = %d, want %d", tt.budget, got, tt.want)
		}
	}
}
