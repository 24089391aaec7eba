package remote

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/specgen"

	"github.com/jobq/jobq/internal/gittree"
	"github.com/jobq/jobq/internal/testenv"
	"github.com/jobq/jobq/runner/podman"
)

// The benchmarks of build hosts, each against its baseline in
// the same run, as bench/run.sh reports them: go test -bench Remote
// -benchtime 1x; JOBQ_BENCH_RUNS runs of each (default 7), medians;
// JOBQ_BENCH_ROWS names a file the table rows are appended to;
// JOBQ_BENCH_TREE a bare repository to ship (default: a small one).

func benchRuns() int {
	if n, err := strconv.Atoi(os.Getenv("JOBQ_BENCH_RUNS")); err == nil && n > 0 {
		return n
	}
	return 7
}

func median(xs []time.Duration) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// report writes a row of bench/run.sh's table and the ratio as a metric.
func report(b *testing.B, what string, j, base time.Duration, baseName, target string) {
	ratio := j.Seconds() / base.Seconds()
	b.ReportMetric(ratio, "ratio")
	row := fmt.Sprintf("| %s | %.0f ms | %s: %.0f ms | %.2f | %s |\n", what, ms(j), baseName, ms(base), ratio, target)
	b.Log(row)
	if f := os.Getenv("JOBQ_BENCH_ROWS"); f != "" {
		out, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		out.WriteString(row)
		out.Close()
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// accountRepo is a copy of gitDir the hosting account owns.
func accountRepo(b *testing.B, gitDir, name string) string {
	dir := filepath.Join(env.Dir, "bench-"+name+".git")
	os.RemoveAll(dir)
	if out, err := exec.Command("cp", "-a", gitDir, dir).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", env.UID, env.GID), dir).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	return dir
}

// asAccount runs a shell script as the hosting account, with the
// account's containers.conf and known_hosts (setupAccount).
func asAccount(ctx context.Context, extra []string, script string) (string, error) {
	return env.AsUser(ctx, extra, "sh", "-c", script)
}

// Shipping a tree into a created container on a build host: jobq's tar
// stream (Archive into CopyFromArchive, over its ssh tunnel) against
// git archive | podman cp over ssh.
func BenchmarkRemoteShip(b *testing.B) {
	hosts := testenv.StartBuildHosts(b, 1, env.User)
	h := hosts[0]
	gitDir, rev := benchTree(b)
	dir := b.TempDir()
	conf := filepath.Join(dir, "containers.conf")
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(conf, []byte(fmt.Sprintf("[engine.service_destinations.b0]\nuri = %q\nidentity = %q\n", h.URI, h.Identity)), 0o600)
	os.WriteFile(kh, []byte(h.KnownHosts+"\n"), 0o600)
	os.MkdirAll(filepath.Join(dir, ".ssh"), 0o700)
	os.WriteFile(filepath.Join(dir, ".ssh", "known_hosts"), []byte(h.KnownHosts+"\n"), 0o600)
	b.Setenv("CONTAINERS_CONF", conf)
	svc := podman.Service{Getenv: func(k string) string {
		return map[string]string{"JOBQ_KNOWN_HOSTS": kh}[k]
	}, StateDir: dir}
	ctx := context.Background()
	conn, _, err := svc.Connect(ctx, "b0")
	if err != nil {
		b.Fatal(err)
	}
	create := func() string {
		s := specgen.NewSpecGenerator(testenv.Busybox, false)
		s.Command = []string{"true"}
		s.Volumes = []*specgen.NamedVolume{{Name: "", Dest: "/source", Options: []string{"nocopy"}}}
		c, err := containers.CreateWithSpec(conn, s, nil)
		if err != nil {
			b.Fatal(err)
		}
		return c.ID
	}
	remove := func(id string) {
		if _, err := containers.Remove(conn, id, new(containers.RemoveOptions).WithForce(true).WithVolumes(true)); err != nil {
			b.Fatal(err)
		}
	}
	api := func(id string) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(gittree.Archive(ctx, gitDir, rev, pw, gittree.DefaultLimits())) }()
		copyFn, err := containers.CopyFromArchive(conn, id, "/source", pr)
		if err == nil {
			err = copyFn()
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	cli := func(id string) {
		cmd := exec.Command("sh", "-c", fmt.Sprintf("git --git-dir %s archive %s | podman --url %s --identity %s cp - %s:/source", gitDir, rev, h.URI, h.Identity, id))
		cmd.Env = []string{"HOME=" + dir, "PATH=/usr/bin:/bin:/usr/sbin:/sbin", "CONTAINERS_CONF=" + conf}
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
	var tj, tc []time.Duration
	for i := range benchRuns() + 1 {
		for _, k := range []int{i % 2, 1 - i%2} { // alternate which goes first
			fill := []func(string){api, cli}[k]
			id := create()
			start := time.Now()
			fill(id)
			d := time.Since(start)
			remove(id)
			if i == 0 {
				continue // warm-up
			}
			if k == 0 {
				tj = append(tj, d)
			} else {
				tc = append(tc, d)
			}
		}
	}
	files, _ := exec.Command("sh", "-c", fmt.Sprintf("git --git-dir %s ls-tree -r %s | wc -l", gitDir, rev)).Output()
	report(b, fmt.Sprintf("ship the source to a build host (%s files, over ssh)", strings.TrimSpace(string(files))), median(tj), median(tc),
		"`git archive \\| podman cp`", "≤ 1.0×")
}

// benchTree is the repository to ship: JOBQ_BENCH_TREE (a bare repository,
// at its HEAD), else a small one.
func benchTree(b *testing.B) (gitDir, rev string) {
	if g := os.Getenv("JOBQ_BENCH_TREE"); g != "" {
		out, err := exec.Command("git", "--git-dir", g, "rev-parse", "HEAD").Output()
		if err != nil {
			b.Fatal(err)
		}
		return g, strings.TrimSpace(string(out))
	}
	files := map[string]string{}
	for i := range 200 {
		files[fmt.Sprintf("d%d/f%d.txt", i%10, i)] = strings.Repeat("x", 1000+i)
	}
	return testenv.MakeRepo(b, files)
}

// A trivial job on a build host, push to result (the hook, synchronous),
// against the article's pipeline done by hand over the same connection:
// podman --connection create, git archive | podman cp, start --attach, rm.
func BenchmarkRemoteJob(b *testing.B) {
	hosts := testenv.StartBuildHosts(b, 2, env.User)
	setupAccountB(b, hosts)
	gitDir, rev := testenv.MakeRepo(b, map[string]string{"README": "trivial\n"})
	repo := accountRepo(b, gitDir, "trivial")
	home := filepath.Join(env.Home, "bench-home")
	os.RemoveAll(home)
	ctx := context.Background()
	line := fmt.Sprintf("%s %s refs/heads/master", strings.Repeat("0", 40), rev)
	hook := fmt.Sprintf("cd %s && echo '%s' | JOBQ_HOME=%s GL_REPO=trivial JOBQ_CONNECTION=b0 JOBQ_NETWORK=none JOBQ_COMMAND='%s true' %s/jobq hook 2>&1",
		repo, line, home, testenv.Busybox, env.Bin)
	article := fmt.Sprintf(`set -e
id=$(podman --connection b0 create -q --network=none --volume /source --workdir /source %s true)
git --git-dir=%s archive %s | podman --connection b0 cp - "$id:/source"
podman --connection b0 start --attach "$id"
podman --connection b0 rm -v "$id" >/dev/null`, testenv.Busybox, repo, rev)
	var tj, ta []time.Duration
	for i := range benchRuns() + 1 {
		for _, k := range []int{i % 2, 1 - i%2} {
			script := []string{hook, article}[k]
			start := time.Now()
			out, err := asAccount(ctx, nil, script)
			d := time.Since(start)
			if err != nil || k == 0 && !strings.Contains(out, "jobq: succeeded") {
				b.Fatalf("%v:\n%s", err, out)
			}
			if i == 0 {
				continue
			}
			if k == 0 {
				tj = append(tj, d)
			} else {
				ta = append(ta, d)
			}
		}
	}
	report(b, "remote job overhead (push to result, `true`, --network=none, over ssh)", median(tj), median(ta), "article pipeline by hand over the same connection", "≤ 0.6×")
}

// 8 jobs of sleep 2 in 8 queues: a pool of 2 hosts × 2 slots against 1
// host × 2 slots, wall time from the first push to the last result.
func BenchmarkRemotePool(b *testing.B) {
	hosts := testenv.StartBuildHosts(b, 2, env.User)
	setupAccountB(b, hosts)
	gitDir, rev := testenv.MakeRepo(b, map[string]string{"README": "sleep\n"})
	repo := accountRepo(b, gitDir, "sleep")
	ctx := context.Background()
	line := fmt.Sprintf("%s %s refs/heads/master", strings.Repeat("0", 40), rev)
	wall := func(pool string, run int) time.Duration {
		home := filepath.Join(env.Home, fmt.Sprintf("bench-pool-%s-%d", pool, run))
		var hooks strings.Builder
		for q := range 8 {
			fmt.Fprintf(&hooks, "echo '%s' | JOBQ_HOME=%s GL_REPO=s%d JOBQ_ASYNC=1 JOBQ_HOST_SLOTS=2 JOBQ_CONNECTION=%s JOBQ_NETWORK=none JOBQ_COMMAND='%s sleep 2' %s/jobq hook >/dev/null 2>&1\n",
				line, home, q, pool, testenv.Busybox, env.Bin)
		}
		start := time.Now()
		if out, err := asAccount(ctx, nil, "cd "+repo+" && "+hooks.String()); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		for q := range 8 {
			for {
				log := filepath.Join(home, "repos", fmt.Sprintf("s%d", q), "0", "log")
				text, _ := os.ReadFile(log)
				if strings.Contains(string(text), "jobq: succeeded") {
					break
				}
				if strings.Contains(string(text), "jobq: failed") {
					b.Fatalf("%s", text)
				}
				if time.Since(start) > 5*time.Minute {
					b.Fatal("8 jobs did not end within 5 minutes")
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		return time.Since(start)
	}
	var tp, ts []time.Duration
	runs := max(benchRuns()/2, 1)
	for i := range runs + 1 {
		for _, k := range []int{i % 2, 1 - i%2} {
			d := wall([]string{"pool", "solo"}[k], i)
			if i == 0 {
				continue
			}
			if k == 0 {
				tp = append(tp, d)
			} else {
				ts = append(ts, d)
			}
		}
	}
	report(b, "8 jobs of `sleep 2` in 8 queues: 2 build hosts × 2 slots, wall time", median(tp), median(ts), "1 build host × 2 slots", "≤ 0.55")
}

// setupAccountB sets the account up as setupAccount does, plus a farm of
// host 0 alone.
func setupAccountB(b *testing.B, hosts []*testenv.BuildHost) {
	ssh := filepath.Join(env.Home, ".ssh")
	conf := filepath.Join(env.Home, ".config", "containers", "containers.conf")
	var cc strings.Builder
	for i, h := range hosts {
		fmt.Fprintf(&cc, "[engine.service_destinations.b%d]\nuri = %q\nidentity = %q\n", i, h.URI, h.Identity)
	}
	fmt.Fprintf(&cc, "[farms]\n[farms.list]\npool = [\"b0\", \"b1\"]\nsolo = [\"b0\"]\n")
	var kh strings.Builder
	for _, h := range hosts {
		kh.WriteString(h.KnownHosts + "\n")
	}
	for path, body := range map[string]string{filepath.Join(ssh, "known_hosts"): kh.String(), conf: cc.String()} {
		for d := filepath.Dir(path); d != env.Home; d = filepath.Dir(d) {
			os.MkdirAll(d, 0o700)
			os.Chown(d, env.UID, env.GID)
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			b.Fatal(err)
		}
		os.Chown(path, env.UID, env.GID)
	}
}
