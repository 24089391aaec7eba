package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

// remoteConf is the gitolite configuration of the jobs on build hosts:
// b0 and b1 are connections of the hosting account's containers.conf,
// pool a farm of both, stranger host 1 under a name known_hosts lacks.
const remoteConf = `
repo rsrc rcancel rtimeout rstranger rlong rnext rp0 rp1 rp2 rp3 rp4 rp5 rp6 rp7 radopt radopt-exit radopt-cancel radopt-timeout rvol rart rcache
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"

repo rsrc rcancel radopt radopt-cancel
    option ENV.JOBQ_CONNECTION = "b1"

repo radopt-exit rvol
    option ENV.JOBQ_CONNECTION = "b0"

repo rtimeout
    option ENV.JOBQ_CONNECTION = "b1"
    option ENV.JOBQ_TIMEOUT = "3s"

repo radopt-timeout
    option ENV.JOBQ_CONNECTION = "b1"
    option ENV.JOBQ_TIMEOUT = "8s"

repo rstranger
    option ENV.JOBQ_CONNECTION = "stranger"
    option ENV.JOBQ_TIMEOUT = "8s"

repo rlong rnext rp0 rp1 rp2 rp3 rp4 rp5 rp6 rp7 rcache
    option ENV.JOBQ_CONNECTION = "pool"

repo rcache
    option ENV.JOBQ_CACHE = "/root/.cache"

repo rart
    option ENV.JOBQ_CONNECTION = "b1"
    option ENV.JOBQ_ARTIFACTS = "dist/*.bin report/**"
    option ENV.JOBQ_ARTIFACTS_MAX = "2m"
`

// srcScript shows the job's /source: contents, modes, symlinks.
const srcScript = `echo "in $(pwd) as $(id -u)"
cat data.txt
ls -ln /source | awk 'NR>1 {print "mode", $1, $9}'
echo "link -> $(readlink link)"
cat link
./tool.sh
echo "sub: $(cat dir/sub/deep.txt)"
touch /source/written && echo can-write
exit 3
`

// jobView is what jobq REPO --json shows of a job.
type jobView struct {
	ID         int       `json:"id"`
	State      string    `json:"state"`
	Waiting    string    `json:"waiting"`
	Host       string    `json:"host"`
	Adopted    int       `json:"adopted"`
	ExitCode   *int      `json:"exit_code"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

func listing(t *testing.T, repo string) []jobView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := env.SSH(ctx, "alice", "jobq", "--json", repo)
	var v []jobView
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		t.Fatalf("jobq --json %s: %v: %s", repo, err, r)
	}
	return v
}

// pushTree commits what prepare writes in a fresh clone of repo and pushes
// it as alice.
func pushTree(t *testing.T, repo string, prepare func(dir string)) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if r := env.Git(ctx, "alice", dir, "clone", "-q", env.URL(repo), "w"); r.Code != 0 {
		t.Fatalf("clone %s: %s", repo, r)
	}
	w := filepath.Join(dir, "w")
	prepare(w)
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", "change"}, {"push", "-q", "origin", "HEAD:refs/heads/master"}} {
		if r := env.Git(ctx, "alice", w, args...); r.Code != 0 {
			t.Fatalf("git %v: %s", args, r)
		}
	}
}

// pushScript pushes ci.sh with body to repo.
func pushScript(t *testing.T, repo, body string) {
	t.Helper()
	pushTree(t, repo, func(w string) {
		write(t, filepath.Join(w, "ci.sh"), body, 0o644)
		write(t, filepath.Join(w, "stamp"), time.Now().String(), 0o644)
	})
}

func write(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, mode) // past the umask
}

// follow waits for the job's end and returns its log.
func follow(t *testing.T, repo string, id int) testenv.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return env.SSH(ctx, "alice", "jobq", repo, fmt.Sprint(id))
}

// readLog reads a job's log as it is now. Its header says "started" too:
// look for the job's own output on a line of its own.
func readLog(repo string, id int) string {
	b, _ := os.ReadFile(filepath.Join(env.DataDir(), "repos", repo, fmt.Sprint(id), "log"))
	return string(b)
}

// leftovers lists what jobs left on a host: containers and volumes.
func leftovers(t *testing.T, h *testenv.BuildHost) string {
	t.Helper()
	ctx := context.Background()
	c, err := h.Podman(ctx, "ps", "-a", "--filter", "label=jobq.home", "--format", "{{.Names}} {{.State}}")
	if err != nil {
		t.Fatal(err)
	}
	v, err := h.Podman(ctx, "volume", "ls", "-q")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(c + v)
}

// The hosting account is set up as the README's "More build machines"
// says: the hosts' keys in ~/.ssh/known_hosts, a connection per host and
// a farm in ~/.config/containers/containers.conf, JOBQ_HOST_SLOTS.
func setupAccount(t *testing.T, hosts []*testenv.BuildHost) (knownHosts string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ssh := filepath.Join(env.Home, ".ssh")
	knownHosts = filepath.Join(ssh, "known_hosts")
	conf := filepath.Join(env.Home, ".config", "containers", "containers.conf")
	var cc strings.Builder
	fmt.Fprintf(&cc, "[engine]\n")
	for i, h := range hosts {
		fmt.Fprintf(&cc, "[engine.service_destinations.b%d]\nuri = %q\nidentity = %q\n", i, h.URI, h.Identity)
	}
	fmt.Fprintf(&cc, "[engine.service_destinations.stranger]\nuri = %q\nidentity = %q\n",
		strings.Replace(hosts[1].URI, "127.0.0.1", "localhost", 1), hosts[1].Identity)
	fmt.Fprintf(&cc, "[farms]\n[farms.list]\npool = [\"b0\", \"b1\"]\n")
	files := map[string]string{
		knownHosts: hosts[0].KnownHosts + "\n" + hosts[1].KnownHosts + "\n",
		conf:       cc.String(),
	}
	for path, body := range files {
		for d := filepath.Dir(path); d != env.Home; d = filepath.Dir(d) {
			os.MkdirAll(d, 0o700)
			os.Chown(d, env.UID, env.GID)
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chown(path, env.UID, env.GID)
	}
	rc := filepath.Join(env.Home, ".gitolite.rc")
	old, err := os.ReadFile(rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rc, append([]byte("$ENV{JOBQ_HOST_SLOTS} = '2';\n"), old...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(rc, old, 0o644) })
	if err := env.Configure(ctx, remoteConf); err != nil {
		t.Fatal(err)
	}
	return knownHosts
}

// Jobs on build hosts, through gitolite, sshd and real remote Podman
// services.
func TestRemoteJobs(t *testing.T) {
	hosts := testenv.StartBuildHosts(t, 2, env.User)
	knownHosts := setupAccount(t, hosts)
	kh, err := os.ReadFile(knownHosts)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("source", func(t *testing.T) {
		pushTree(t, "rsrc", func(w string) {
			write(t, filepath.Join(w, "ci.sh"), srcScript, 0o644)
			write(t, filepath.Join(w, "data.txt"), "pushed-data\n", 0o644)
			write(t, filepath.Join(w, "tool.sh"), "#!/bin/sh\necho tool-ran\n", 0o755)
			write(t, filepath.Join(w, "dir", "sub", "deep.txt"), "deep\n", 0o644)
			if err := os.Symlink("data.txt", filepath.Join(w, "link")); err != nil {
				t.Fatal(err)
			}
			// An absolute symlink is kept as a symlink, not followed.
			if err := os.Symlink("/etc/shadow", filepath.Join(w, "abs")); err != nil {
				t.Fatal(err)
			}
		})
		r := follow(t, "rsrc", 0)
		if r.Code != 1 {
			t.Errorf("jobq rsrc 0: %s", r)
		}
		for _, want := range []string{"jobq: build host b1\n", "in /source as 0\n", "pushed-data\n",
			"mode -rwxr-xr-x tool.sh", "mode -rw-r--r-- data.txt", "mode lrwxrwxrwx link", "mode lrwxrwxrwx abs",
			"mode drwxr-xr-x dir", "link -> data.txt\npushed-data\ntool-ran\nsub: deep\ncan-write\n", "jobq: failed, exit code 3"} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("log lacks %q:\n%s", want, r.Stdout)
			}
		}
		v := listing(t, "rsrc")
		if len(v) != 1 || v[0].Host != "b1" || v[0].ExitCode == nil || *v[0].ExitCode != 3 {
			t.Errorf("listing: %+v", v)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if r := env.SSH(ctx, "alice", "jobq", "rsrc"); !strings.Contains(r.Stdout, "HOST") || !strings.Contains(r.Stdout, " b1    push\n") {
			t.Errorf("jobq rsrc lacks the host column:\n%s", r)
		}
		// The clean-up is done, and complete: no record of the runner's is
		// left for jobq gc, none failed.
		run := filepath.Join(env.DataDir(), "repos", "rsrc", "0", "run")
		testenv.WaitUntil(t, "rsrc 0 is cleaned up", time.Minute, func() bool {
			ents, err := os.ReadDir(run)
			return err != nil || len(ents) == 0
		})
		if b, _ := os.ReadFile(filepath.Join(env.DataDir(), "worker.log")); strings.Contains(string(b), "clean up after rsrc") {
			t.Errorf("worker.log:\n%s", b)
		}
		if got := leftovers(t, hosts[1]); got != "" {
			t.Errorf("host 1 keeps:\n%s", got)
		}
	})

	t.Run("artifacts", func(t *testing.T) { testRemoteArtifacts(t, hosts[1]) })

	t.Run("pool", func(t *testing.T) {
		const n = 8
		for i := range n {
			pushScript(t, fmt.Sprintf("rp%d", i), "echo running\nsleep 2\n")
		}
		var jobs []jobView
		for i := range n {
			repo := fmt.Sprintf("rp%d", i)
			if r := follow(t, repo, 0); r.Code != 0 || !strings.Contains(r.Stdout, "running") {
				t.Errorf("jobq %s 0: %s", repo, r)
			}
			jobs = append(jobs, listing(t, repo)...)
		}
		used := map[string]int{}
		for _, j := range jobs {
			used[j.Host]++
			if j.State != "succeeded" {
				t.Errorf("job %+v", j)
			}
		}
		if used["b0"] == 0 || used["b1"] == 0 || used["b0"]+used["b1"] != n {
			t.Errorf("hosts used: %v", used)
		}
		// A job's run lies inside its slot's hold (taken before it starts,
		// let go after its clean-up): at no moment more than 2 per host.
		for _, host := range []string{"b0", "b1", ""} {
			if most := overlap(jobs, host); host != "" && most > 2 || host == "" && most > 4 {
				t.Errorf("host %q: %d jobs at once", host, most)
			}
		}
	})

	t.Run("cancel and timeout", func(t *testing.T) {
		pushScript(t, "rcancel", "echo started\nsleep 300\n")
		pushScript(t, "rtimeout", "echo started\nsleep 300\n")
		testenv.WaitUntil(t, "rcancel 0 runs", 2*time.Minute, func() bool { return strings.Contains(readLog("rcancel", 0), "\nstarted\n") })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if r := env.SSH(ctx, "alice", "jobq", "cancel", "rcancel", "0"); r.Code != 0 {
			t.Fatalf("cancel: %s", r)
		}
		if r := follow(t, "rcancel", 0); !strings.Contains(r.Stdout, "jobq: cancelled") {
			t.Errorf("jobq rcancel 0: %s", r)
		}
		if r := follow(t, "rtimeout", 0); !strings.Contains(r.Stdout, "\nstarted\n") || !strings.Contains(r.Stdout, "jobq: timed-out") {
			t.Errorf("jobq rtimeout 0: %s", r)
		}
		for i, h := range hosts {
			if got := leftovers(t, h); got != "" {
				t.Errorf("host %d keeps:\n%s", i, got)
			}
		}
	})

	// Attack: a host whose key is not in known_hosts (the same machine
	// under another name) is refused, and nothing is added to known_hosts.
	// The job's readers see that its host cannot be reached, and no
	// address or path; the worker's log says which key to add, and how.
	// The job fails after its JOBQ_TIMEOUT without running, and the
	// queue's next job is not held behind it: it gets its own timeout.
	t.Run("unknown host key", func(t *testing.T) {
		pushed := time.Now()
		pushScript(t, "rstranger", "echo must-not-run\n")
		pushScript(t, "rstranger", "echo must-not-run either\n")
		var v []jobView
		testenv.WaitUntil(t, "rstranger 0 waits", 2*time.Minute, func() bool {
			v = listing(t, "rstranger")
			return len(v) == 2 && v[1].ID == 0 && v[1].Waiting != ""
		})
		if v[1].Waiting != "build host unreachable" || v[1].State != "queued" {
			t.Errorf("rstranger 0: %s, waiting %q", v[1].State, v[1].Waiting)
		}
		secrets := []string{"localhost:" + strconv.Itoa(hosts[1].Port), "known_hosts", env.Home}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ls := env.SSH(ctx, "alice", "jobq", "rstranger").Stdout
		if !strings.Contains(ls, "  waiting: build host unreachable\n") {
			t.Errorf("jobq rstranger:\n%s", ls)
		}
		for id := range 2 {
			r := follow(t, "rstranger", id)
			want := "\njobq: failed: build host unreachable: none of its build hosts could be reached within JOBQ_TIMEOUT=8s; it never started, after "
			if !strings.Contains(r.Stdout, "jobq: job "+strconv.Itoa(id)+" waits to start: build host unreachable\n") ||
				!strings.Contains(r.Stdout, want) || strings.Contains(r.Stdout, "must-not-run") {
				t.Errorf("jobq rstranger %d: %s", id, r)
			}
			for _, s := range secrets {
				if strings.Contains(r.Stdout, s) || strings.Contains(ls, s) {
					t.Errorf("a reader of rstranger %d sees %q:\n%s\n%s", id, s, ls, r.Stdout)
				}
			}
		}
		v = listing(t, "rstranger")
		if v[1].State != "failed" || v[0].State != "failed" || v[1].FinishedAt.Sub(pushed) < 8*time.Second || v[0].FinishedAt.Sub(v[1].FinishedAt) < 8*time.Second {
			t.Errorf("pushed at %s, jobs: %+v", pushed, v)
		}
		want := fmt.Sprintf("build host localhost:%d is not in %s; after checking its key, add it: ssh-keyscan -p %d localhost >> %s",
			hosts[1].Port, knownHosts, hosts[1].Port, knownHosts)
		if b, _ := os.ReadFile(filepath.Join(env.DataDir(), "worker.log")); !strings.Contains(string(b), "rstranger 0 waits: ") || !strings.Contains(string(b), want) {
			t.Errorf("worker.log lacks %q:\n%s", want, b)
		}
		if b, err := os.ReadFile(knownHosts); err != nil || string(b) != string(kh) {
			t.Errorf("known_hosts changed:\n%s", b)
		}
	})

	// A worker SIGKILLed while its job runs on a build host: the next
	// worker (started by the follower) adopts the job there and continues
	// its log from the container's log, exactly once, rather than ending
	// "lost: its worker died".
	t.Run("adopt", func(t *testing.T) {
		pushScript(t, "radopt", adoptScript(300, 3))
		pid := env.JobWorker(t, "radopt", "out-20\n")
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		r := follow(t, "radopt", 0) // starts the next worker
		checkAdopted(t, r.Stdout, 300, "jobq: failed, exit code 3")
		v := listing(t, "radopt")
		if len(v) != 1 || v[0].State != "failed" || v[0].Adopted != 1 || v[0].Host != "b1" || v[0].ExitCode == nil || *v[0].ExitCode != 3 {
			t.Errorf("listing: %+v", v)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if ls := env.SSH(ctx, "alice", "jobq", "radopt").Stdout; !strings.Contains(ls, "failed (adopted)") || !strings.Contains(ls, " b1    push\n") {
			t.Errorf("the listing does not say the job was adopted on b1:\n%s", ls)
		}
		testenv.WaitUntil(t, "host 1 is clean", time.Minute, func() bool { return leftovers(t, hosts[1]) == "" })
	})

	// A job on a build host that ends while no worker watches: the next
	// worker appends the rest of its output and records its real result.
	t.Run("adopt exited", func(t *testing.T) {
		pushScript(t, "radopt-exit", adoptScript(100, 5))
		pid := env.JobWorker(t, "radopt-exit", "out-10\n")
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		testenv.WaitUntil(t, "the container exits with no worker", 2*time.Minute, func() bool {
			out, err := hosts[0].Podman(context.Background(), "ps", "-a", "-q", "--filter", "label=jobq.repo=radopt-exit", "--filter", "status=exited")
			return err == nil && strings.TrimSpace(out) != ""
		})
		if v := listing(t, "radopt-exit"); len(v) != 1 || v[0].State != "running" {
			t.Fatalf("before the next worker: %+v", v)
		}
		r := follow(t, "radopt-exit", 0)
		checkAdopted(t, r.Stdout, 100, "jobq: failed, exit code 5")
		if v := listing(t, "radopt-exit"); len(v) != 1 || v[0].Adopted != 1 || v[0].Host != "b0" || v[0].ExitCode == nil || *v[0].ExitCode != 5 {
			t.Errorf("listing: %+v", v)
		}
		testenv.WaitUntil(t, "host 0 is clean", time.Minute, func() bool { return leftovers(t, hosts[0]) == "" })
	})

	// A job adopted on a build host is cancelled through its adopter.
	t.Run("adopt cancel", func(t *testing.T) {
		pushScript(t, "radopt-cancel", "trap 'echo got-term; exit 143' TERM\ni=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.2; done\n")
		pid := env.JobWorker(t, "radopt-cancel", "tick-3\n")
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		followed := make(chan testenv.Result, 1)
		go func() { followed <- follow(t, "radopt-cancel", 0) }()
		testenv.WaitUntil(t, "the job is adopted", 2*time.Minute, func() bool {
			v := listing(t, "radopt-cancel")
			return len(v) == 1 && v[0].Adopted == 1
		})
		// The adopter holds the job's slot on its build host and its ID
		// range there, as the dead worker did: no more jobs than the cap
		// run there, and no other job gets the range (not a free slot, nor
		// this machine's range instead).
		for _, pattern := range []string{"hosts/*/*.lock", "hosts/*/idranges/*.lock"} {
			testenv.WaitUntil(t, "the adopter holds a lock "+pattern+" for the job", time.Minute, func() bool {
				return heldBy(t, pattern, "radopt-cancel/0") == 1
			})
		}
		if held := heldBy(t, "idranges/*.lock", "radopt-cancel/0"); held != 0 {
			t.Errorf("the adopted job holds an ID range of this machine")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if r := env.SSH(ctx, "alice", "jobq", "cancel", "radopt-cancel", "0"); r.Code != 0 {
			t.Fatalf("cancel: %s", r)
		}
		r := <-followed
		if !strings.Contains(r.Stdout, "got-term\n") || !strings.Contains(r.Stdout, "jobq: cancelled, exit code 143: cancelled by request") || strings.Count(r.Stdout, notice) != 1 {
			t.Errorf("jobq radopt-cancel 0: %s", r)
		}
		testenv.Numbered(t, r.Stdout, "tick-", strings.Count(r.Stdout, "tick-"))
		if v := listing(t, "radopt-cancel"); len(v) != 1 || v[0].State != "cancelled" {
			t.Errorf("listing: %+v", v)
		}
		testenv.WaitUntil(t, "host 1 is clean", time.Minute, func() bool { return leftovers(t, hosts[1]) == "" })
	})

	// A job adopted on a build host still ends at its own deadline.
	t.Run("adopt timeout", func(t *testing.T) {
		pushScript(t, "radopt-timeout", "trap 'echo got-term; exit 143' TERM\ni=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.2; done\n")
		pid := env.JobWorker(t, "radopt-timeout", "tick-3\n")
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		r := follow(t, "radopt-timeout", 0)
		if !strings.Contains(r.Stdout, "got-term\njobq: timed-out") || strings.Count(r.Stdout, notice) != 1 {
			t.Errorf("jobq radopt-timeout 0: %s", r)
		}
		testenv.Numbered(t, r.Stdout, "tick-", strings.Count(r.Stdout, "tick-"))
		if v := listing(t, "radopt-timeout"); len(v) != 1 || v[0].State != "timed-out" || v[0].Adopted != 1 {
			t.Errorf("listing: %+v", v)
		}
		testenv.WaitUntil(t, "host 1 is clean", time.Minute, func() bool { return leftovers(t, hosts[1]) == "" })
	})

	// A job's /source volume that its container's removal left (a service
	// that dies between the two leaves it: here it is made again under its
	// name once the job is cleaned up) is removed by jobq-worker gc on its
	// host; a volume of the account's own, and one of another jobq data
	// directory's, stay, also on a host without a failed clean-up.
	t.Run("stray volume", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		h := hosts[0]
		pushScript(t, "rvol", "echo started\nsleep 1\n")
		testenv.WaitUntil(t, "rvol 0 runs", 2*time.Minute, func() bool { return strings.Contains(readLog("rvol", 0), "\nstarted\n") })
		id, err := h.Podman(ctx, "ps", "-a", "-q", "--filter", "label=jobq.repo=rvol")
		if err != nil {
			t.Fatal(err)
		}
		vol, err := h.Podman(ctx, "inspect", "--format", "{{range .Mounts}}{{.Name}}{{end}}", strings.TrimSpace(id))
		if err != nil {
			t.Fatal(err)
		}
		vol = strings.TrimSpace(vol)
		if r := follow(t, "rvol", 0); !strings.Contains(r.Stdout, "jobq: succeeded") {
			t.Fatalf("jobq rvol 0: %s", r)
		}
		testenv.WaitUntil(t, "host 0 is clean", time.Minute, func() bool { return leftovers(t, h) == "" })
		// The stray, another data directory's job volume (the digest of
		// another home), and a volume of the account's own.
		const tag = "jobq-0123456789abcdef"
		if !strings.HasPrefix(vol, "jobq-") || len(vol) < len(tag) {
			t.Fatalf("rvol's volume: %q", vol)
		}
		other := tag + vol[len(tag):]
		for _, name := range []string{vol, other, "mydata"} {
			if out, err := h.Podman(ctx, "volume", "create", name); err != nil {
				t.Fatalf("volume create: %v %s", err, out)
			}
		}
		if out, err := env.AsUser(ctx, nil, filepath.Join(env.Bin, "jobq-worker"), "gc"); err != nil {
			t.Errorf("jobq-worker gc: %v\n%s", err, out)
		}
		out, err := h.Podman(ctx, "volume", "ls", "-q")
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Fields(out)
		if slices.Contains(got, vol) || !slices.Contains(got, other) || !slices.Contains(got, "mydata") {
			t.Errorf("after gc the host has %q; want %s gone, %s and mydata kept", got, vol, other)
		}
		h.Podman(ctx, "volume", "rm", other, "mydata")
	})

	// Caches on build hosts: a cache lives on the host where it was made,
	// and the next job goes there while it has a free slot; a dev job's
	// own cache is copied from the main one through the host's Podman.
	t.Run("cache", func(t *testing.T) {
		const script = `if [ -f /root/.cache/stamp ]; then echo "cache warm: $(cat /root/.cache/stamp)"; else echo "cache cold"; fi
echo "$GIT_REF $JOBQ_JOB_ID" > /root/.cache/stamp
`
		pushScript(t, "rcache", script)
		if r := follow(t, "rcache", 0); r.Code != 0 || !strings.Contains(r.Stdout, "cache cold") {
			t.Fatalf("jobq rcache 0: %s", r)
		}
		first := listing(t, "rcache")[0].Host
		pushScript(t, "rcache", script)
		if r := follow(t, "rcache", 1); r.Code != 0 || !strings.Contains(r.Stdout, "cache warm: refs/heads/master 0") {
			t.Errorf("jobq rcache 1: %s", r)
		}
		if v := listing(t, "rcache"); v[0].Host != first {
			t.Errorf("job 1 ran on %s, its warm cache is on %s", v[0].Host, first)
		}
		ctx := context.Background()
		dir := t.TempDir()
		for _, args := range [][]string{{"clone", "-q", env.URL("rcache"), "w"}, {"-C", "w", "commit", "-q", "--allow-empty", "-m", "dev"}, {"-C", "w", "push", "-q", "origin", "HEAD:refs/heads/dev"}} {
			if r := env.Git(ctx, "alice", dir, args...); r.Code != 0 {
				t.Fatalf("git %v: %s", args, r)
			}
		}
		if r := follow(t, "rcache", 2); r.Code != 0 || !strings.Contains(r.Stdout, "cache warm: refs/heads/master 1") ||
			!strings.Contains(r.Stdout, "refs/heads/dev's own, started as a copy of the main cache") {
			t.Errorf("jobq rcache 2 (dev): %s", r)
		}
		if v := listing(t, "rcache"); v[0].Host != first {
			t.Errorf("dev's job ran on %s, the main cache is on %s", v[0].Host, first)
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if r := env.SSH(cctx, "alice", "jobq", "cache", "rcache"); !strings.Contains(r.Stdout, " "+first+"\n") || !strings.Contains(r.Stdout, "refs/heads/dev") {
			t.Errorf("jobq cache rcache: %s", r)
		}
		for _, ref := range []string{"master", "dev"} {
			if r := env.SSH(cctx, "alice", "jobq", "cache", "rm", "rcache", ref); r.Code != 0 {
				t.Errorf("jobq cache rm rcache %s: %s", ref, r)
			}
		}
		testenv.WaitUntil(t, "rcache's jobs are cleaned up", time.Minute, func() bool {
			ents, err := os.ReadDir(filepath.Join(env.DataDir(), "repos", "rcache", "2", "run"))
			return err != nil || len(ents) == 0
		})
		if out, err := env.AsUser(cctx, nil, filepath.Join(env.Bin, "jobq-worker"), "gc"); err != nil {
			t.Errorf("jobq-worker gc: %v\n%s", err, out)
		}
		for _, h := range hosts {
			if got := leftovers(t, h); got != "" {
				t.Errorf("%s keeps:\n%s", h.Name, got)
			}
		}
	})

	// One host goes down mid-job: its job ends lost, later jobs go to the
	// other host and their logs say why; back up, a clean-up removes
	// what the job left there.
	t.Run("host down", func(t *testing.T) {
		pushScript(t, "rlong", "echo started\nsleep 300\n")
		testenv.WaitUntil(t, "rlong 0 runs", 2*time.Minute, func() bool { return strings.Contains(readLog("rlong", 0), "\nstarted\n") })
		v := listing(t, "rlong")
		if len(v) != 1 || v[0].Host == "" {
			t.Fatalf("listing: %+v", v)
		}
		down, up := hosts[0], hosts[1]
		other := "b1"
		if v[0].Host == "b1" {
			down, up, other = hosts[1], hosts[0], "b0"
		}
		down.Stop(t)
		r := follow(t, "rlong", 0)
		if !strings.Contains(r.Stdout, "jobq: lost: build host "+v[0].Host+" went away during the job") {
			t.Errorf("jobq rlong 0: %s", r)
		}
		pushScript(t, "rnext", "echo next-ran\n")
		r = follow(t, "rnext", 0)
		for _, want := range []string{"jobq: build host " + other + "\n", "jobq: build host " + v[0].Host + " was skipped: it cannot be reached", "next-ran", "jobq: succeeded"} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("jobq rnext 0 lacks %q: %s", want, r)
			}
		}
		down.Start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if out, err := env.AsUser(ctx, nil, filepath.Join(env.Bin, "jobq-worker"), "gc"); err != nil {
			t.Errorf("jobq-worker gc: %v\n%s", err, out)
		}
		for _, h := range []*testenv.BuildHost{down, up} {
			if got := leftovers(t, h); got != "" {
				t.Errorf("%s keeps:\n%s", h.Name, got)
			}
		}
	})
	if b, err := os.ReadFile(knownHosts); err != nil || string(b) != string(kh) {
		t.Errorf("known_hosts changed:\n%s", b)
	}
	// Workers that ended closed their tunnels: no socket directory of the
	// account's is left in /tmp but those of live workers (a killed one's
	// goes at the next worker's first tunnel).
	testenv.WaitUntil(t, "only live workers' tunnel directories are left", time.Minute, func() bool {
		return len(staleTunnels()) == 0
	})
}

const notice = "jobq: worker restarted; output continues\n"

// adoptScript prints out-I on stdout and err-I on stderr, every 20 ms, for
// I below n, then a last line without a newline, and exits with code.
func adoptScript(n, code int) string {
	return fmt.Sprintf("i=0; while [ $i -lt %d ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); sleep 0.02; done\nprintf last-line-no-newline\nexit %d\n", n, code)
}

// checkAdopted checks the log of an adoptScript job adopted once: every
// number once and in order on both streams, the notice, the last line,
// then result.
func checkAdopted(t *testing.T, log string, n int, result string) {
	t.Helper()
	if strings.Count(log, notice) != 1 || !strings.Contains(log, "\nlast-line-no-newline\n"+result) {
		t.Errorf("log:\n%s", log)
	}
	testenv.Numbered(t, log, "out-", n)
	testenv.Numbered(t, log, "err-", n)
}

// heldBy counts the lock files matching pattern in the data directory
// that name owner and whose flock someone holds.
func heldBy(t *testing.T, pattern, owner string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(env.DataDir(), pattern))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range files {
		if b, err := os.ReadFile(name); err != nil || string(b) != owner+"\n" {
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) != nil {
			n++
		}
		f.Close()
	}
	return n
}

// staleTunnels lists the account's tunnel directories whose worker is gone.
func staleTunnels() []string {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "jobq-ssh-*"))
	var stale []string
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(env.UID) {
			continue
		}
		// jobq-ssh-PID-RANDOM; one without its worker's pid is stale too.
		f := strings.Split(filepath.Base(d), "-")
		pid := 0
		if len(f) == 4 {
			pid, _ = strconv.Atoi(f[2])
		}
		if pid <= 0 || syscall.Kill(pid, 0) == syscall.ESRCH {
			stale = append(stale, d)
		}
	}
	return stale
}

// overlap is the most jobs of host (any, for "") that ran at one moment.
func overlap(jobs []jobView, host string) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, j := range jobs {
		if host == "" || j.Host == host {
			edges = append(edges, edge{j.StartedAt, 1}, edge{j.FinishedAt, -1})
		}
	}
	// Ends before starts at the same instant.
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta
	})
	most, n := 0, 0
	for _, e := range edges {
		n += e.delta
		most = max(most, n)
	}
	return most
}
