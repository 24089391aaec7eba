package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ProbeScript is the two-job probe (e2e/gws/testdata/probe.sh) as job x's
// ci.sh, attacking job y; port is a loopback port with an sshd behind it,
// hold how long x stays when it cannot see y.
func ProbeScript(t *testing.T, x, y string, port, hold int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(SourceDir(), "e2e/gws/testdata/probe.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("X=%s Y=%s PORT=%d HOLD=%d\n%s", x, y, port, hold, b)
}

// Probes are the probes of ProbeScript, in its order.
var Probes = []string{"environ", "root", "cwd", "fd", "mem", "forge", "shm", "loopback"}

// CheckProbeLog checks the log of job x of ProbeScript: every probe
// refused, and the job's output exactly what it printed, ending in one
// success line of jobq's own (a forged one would be a second). It returns
// x's uid_map line.
func CheckProbeLog(t *testing.T, x, log string) string {
	t.Helper()
	var body []string
	uidmap := ""
	for _, line := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		if u, ok := strings.CutPrefix(line, x+" uidmap "); ok {
			uidmap = u
			continue
		}
		if !strings.HasPrefix(line, "jobq: ") {
			body = append(body, line)
		}
	}
	want := []string{x + " ready"}
	for _, p := range Probes {
		want = append(want, "probe "+p+": refused")
	}
	want = append(want, x+" probes done", x+" end")
	if strings.Join(body, "\n") != strings.Join(want, "\n") {
		t.Errorf("job %s printed:\n%s\nwant:\n%s\nwhole log:\n%s", x, strings.Join(body, "\n"), strings.Join(want, "\n"), log)
	}
	lines := strings.Split(strings.TrimSuffix(log, "\n"), "\n")
	if n := strings.Count(log, "jobq: succeeded"); n != 1 || !strings.HasPrefix(lines[len(lines)-1], "jobq: succeeded, exit code 0") {
		t.Errorf("job %s: %d success lines, or not last:\n%s", x, n, log)
	}
	if uidmap == "" {
		t.Errorf("job %s printed no uid_map", x)
	}
	return uidmap
}

// CheckDisjoint checks two uid_map lines of CheckProbeLog: each maps the
// container's IDs 0..4095, and no ID of the outside to both. (Podman may
// split a range where its own namespace's ranges meet.)
func CheckDisjoint(t *testing.T, a, b string) {
	t.Helper()
	type span struct{ start, size int }
	parse := func(m string) []span {
		var spans []span
		total := 0
		for _, e := range strings.Split(strings.TrimSuffix(m, ";"), ";") {
			var in, out, size int
			if _, err := fmt.Sscan(e, &in, &out, &size); err != nil || in != total {
				t.Errorf("uid_map %q: entry %q", m, e)
				return nil
			}
			spans = append(spans, span{out, size})
			total += size
		}
		if total != 4096 {
			t.Errorf("uid_map %q maps %d IDs, want a range of 4096", m, total)
		}
		return spans
	}
	for _, x := range parse(a) {
		for _, y := range parse(b) {
			if x.start < y.start+y.size && y.start < x.start+x.size {
				t.Errorf("uid_maps %q and %q share IDs", a, b)
			}
		}
	}
}
