package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jobq/jobq/internal/testenv"
)

func init() { confParts = append(confParts, artifactsConf) }

// artifactsConf: carol reads art, bob reads only his own artown.
const artifactsConf = `
repo art artmany artkeep artown artexec artweb artspace artadopt artlink
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"

repo art artmany artkeep artexec artspace artadopt artlink
    RW+ = alice
    R   = carol

repo art
    option ENV.JOBQ_ARTIFACTS = "dist/*.tar.gz report/** out/big.bin"
    option ENV.JOBQ_ARTIFACTS_MAX = "2m 50"

repo artmany
    option ENV.JOBQ_ARTIFACTS = "report/*.keep"
    option ENV.JOBQ_ARTIFACTS_MAX = "1m 10"

repo artkeep
    option ENV.JOBQ_ARTIFACTS = "out.txt"
    option ENV.JOBQ_KEEP = "1"

repo artspace artadopt
    option ENV.JOBQ_ARTIFACTS = "out/**"

repo artlink
    option ENV.JOBQ_ARTIFACTS = "home/** keys ssh/authorized_keys up/**"

repo artweb
    RW+ = alice
    R   = gitweb
    option ENV.JOBQ_ARTIFACTS = "report/**"

repo artown
    RW+ = bob
    option ENV.JOBQ_ARTIFACTS = "out.txt"

repo artbad1 artbad2 artbad3
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest true"

repo artbad1
    option ENV.JOBQ_ARTIFACTS = "/etc/passwd"

repo artbad2
    option ENV.JOBQ_ARTIFACTS = "../../.ssh/*"

repo artbad3
    option ENV.JOBQ_ARTIFACTS = "a/../../b"

repo artexec
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_COMMAND = "true"
    option ENV.JOBQ_ARTIFACTS = "out.txt"
`

// artScript makes what a build hands back, and what a hostile one plants:
// a symlink to the hosting account's home and one up out of /source, a
// fifo, a hard link, a file over the bound; then it fails.
const artScript = `mkdir -p dist report/sub out
echo tarball > dist/app.tar.gz
echo skipped > dist/notes.txt
echo '<script>document.title="ran"</script><p>report</p>' > report/index.html
echo nested > report/sub/deep.txt
ln -s HOME report/home
ln -s ../../../../../../../ report/up
ln report/sub/deep.txt report/hard.txt
mkfifo report/fifo
dd if=/dev/zero of=out/big.bin bs=1024 count=3072 2>/dev/null
echo built
exit 3
`

// Artifacts through the real gitolite, sshd and Podman: collected from a
// failed job's container, the hostile entries left out and said so in
// the log, listed and fetched over ssh by a reader, refused to a reader
// of another repository as a missing repository is.
func TestArtifacts(t *testing.T) {
	push(t, "art", map[string]string{"ci.sh": strings.ReplaceAll(artScript, "HOME", env.Home)})
	log := follow(t, "alice", "art", 0)
	if log.Code != 1 || !strings.Contains(log.Stdout, "jobq: failed, exit code 3") {
		t.Fatalf("jobq art 0: %s", log)
	}
	for _, want := range []string{
		`jobq: artifacts: "report/home" left out: a symlink (only files are collected)`,
		`jobq: artifacts: "report/up" left out: a symlink`,
		`jobq: artifacts: "report/fifo" left out: a fifo`,
		`jobq: artifacts: "out/big.bin" left out: 3.0 MiB, over what is left of JOBQ_ARTIFACTS_MAX's 2.0 MiB`,
		"jobq: artifacts: 4 files, ",
	} {
		if !strings.Contains(log.Stdout, want) {
			t.Errorf("log lacks %q:\n%s", want, log.Stdout)
		}
	}
	// The artifacts' lines come before the result line.
	if strings.Index(log.Stdout, "jobq: artifacts: 4 files") > strings.Index(log.Stdout, "jobq: failed") {
		t.Errorf("artifacts reported after the result:\n%s", log.Stdout)
	}

	l := ssh("carol", "jobq", "artifacts", "art", "0", "--json")
	var list []struct {
		Path string `json:"path"`
		Size int64  `json:"size"`
	}
	if err := json.Unmarshal([]byte(l.Stdout), &list); l.Code != 0 || err != nil {
		t.Fatalf("jobq artifacts --json: %s %v", l, err)
	}
	var got []string
	for _, a := range list {
		got = append(got, fmt.Sprintf("%s:%d", a.Path, a.Size))
	}
	if want := "dist/app.tar.gz:8 report/hard.txt:7 report/index.html:51 report/sub/deep.txt:7"; strings.Join(got, " ") != want {
		t.Errorf("artifacts %q, want %q", got, want)
	}
	if l := ssh("carol", "jobq", "artifacts", "art", "0"); l.Code != 0 || !strings.Contains(l.Stdout, "report/sub/deep.txt  7 bytes") {
		t.Errorf("jobq artifacts: %s", l)
	}
	if f := ssh("carol", "jobq", "artifacts", "art", "0", "report/sub/deep.txt"); f.Code != 0 || f.Stdout != "nested\n" {
		t.Errorf("one artifact: %s", f)
	}
	tr := ssh("carol", "jobq", "artifacts", "art", "0", "--tar")
	var names []string
	rd := tar.NewReader(bytes.NewReader([]byte(tr.Stdout)))
	for {
		h, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("--tar: %v\n%s", err, tr.Stderr)
		}
		names = append(names, h.Name)
	}
	if strings.Join(names, " ") != "dist/app.tar.gz report/hard.txt report/index.html report/sub/deep.txt" {
		t.Errorf("--tar holds %q", names)
	}
	// Hostile paths over ssh: gitolite refuses "..", jobq the rest as
	// missing artifacts (cmd/jobq's tests send ".." straight at jobq).
	for _, p := range []string{"../job.json", "../../../../../.ssh/authorized_keys", "/etc/passwd", "report/home/.gitolite.rc", "report/up/.ssh/authorized_keys"} {
		f := ssh("carol", "jobq", "artifacts", "art", "0", p)
		if f.Code == 0 || f.Stdout != "" || !strings.Contains(f.Stderr, "job 0 of art has no artifact") && !strings.Contains(f.Stderr, "FATAL: no relative paths allowed") {
			t.Errorf("%q: %s", p, f)
		}
	}
	// bob reads artown only: guessing at art's artifacts gets what a
	// repository that does not exist gets.
	for _, args := range [][]string{{"0"}, {"0", "report/index.html"}, {"0", "--tar"}, {"1"}} {
		g := ssh("bob", append([]string{"jobq", "artifacts", "art"}, args...)...)
		m := ssh("bob", append([]string{"jobq", "artifacts", "nosuch"}, args...)...)
		if g.Code != 1 || g.Stdout != "" || g.Code != m.Code || strings.ReplaceAll(g.Stderr, `"art"`, `"nosuch"`) != m.Stderr {
			t.Errorf("bob %v: %s\nmissing repository: %s", args, g, m)
		}
	}
	// Nothing of the hosting account's was written or followed.
	if _, err := os.Lstat(filepath.Join(env.DataDir(), "repos", "art", "0", "artifacts", "report", "home")); err == nil {
		t.Error("the symlink was written")
	}
	checkNothingLeft(t, "art")
}

// A container with thousands of entries under a pattern's directory is
// read no further than the entry bound (ten per file allowed).
func TestArtifactsEntryBound(t *testing.T) {
	push(t, "artmany", map[string]string{"ci.sh": "mkdir report && cd report && seq 1 3000 | xargs touch && echo a > a.keep\n"})
	log := follow(t, "alice", "artmany", 0)
	if log.Code != 0 || !strings.Contains(log.Stdout, "jobq: artifacts: stopped: read 100 entries") {
		t.Errorf("jobq artmany 0: %s", log)
	}
	checkNothingLeft(t, "artmany")
}

// Artifacts go with their job (JOBQ_KEEP); the exec runner collects none,
// and says so.
func TestArtifactsKeepAndExec(t *testing.T) {
	push(t, "artkeep", map[string]string{"ci.sh": "echo one > out.txt\n"})
	if log := follow(t, "alice", "artkeep", 0); log.Code != 0 || !strings.Contains(log.Stdout, "jobq: artifacts: 1 file, 4 bytes collected") {
		t.Fatalf("jobq artkeep 0: %s", log)
	}
	dir := filepath.Join(env.DataDir(), "repos", "artkeep", "0", "artifacts", "out.txt")
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	push(t, "artkeep", map[string]string{"ci.sh": "echo two > out.txt\n"})
	if log := follow(t, "alice", "artkeep", 1); log.Code != 0 {
		t.Fatalf("jobq artkeep 1: %s", log)
	}
	testenv.WaitUntil(t, "job 0 and its artifacts are pruned", time.Minute, func() bool {
		_, err := os.Stat(filepath.Dir(filepath.Dir(dir)))
		return os.IsNotExist(err)
	})
	if f := ssh("carol", "jobq", "artifacts", "artkeep", "1", "out.txt"); f.Stdout != "two\n" {
		t.Errorf("job 1's artifact: %s", f)
	}

	push(t, "artexec", nil)
	if log := follow(t, "alice", "artexec", 0); log.Code != 0 || !strings.Contains(log.Stdout, "jobq: JOBQ_ARTIFACTS: the exec runner collects no artifacts") {
		t.Errorf("jobq artexec 0: %s", log)
	}
}

// A hostile pattern is refused at push time, in one line, and queues
// nothing; the push itself succeeds.
func TestArtifactsBadPattern(t *testing.T) {
	for repo, pat := range map[string]string{"artbad1": "/etc/passwd", "artbad2": "../../.ssh/*", "artbad3": "a/../../b"} {
		r, _ := push(t, repo, nil)
		if !strings.Contains(r.Stderr, `remote: jobq: JOBQ_ARTIFACTS="`+pat+`" holds`) || strings.Contains(r.Stderr, "jobq: queued") {
			t.Errorf("push %s: %s", repo, r)
		}
	}
}

// beacon counts the requests a page's script makes to it: the proof that
// the script ran.
type beacon struct {
	url  string
	hits atomic.Int64
}

func newBeacon(t *testing.T) *beacon {
	t.Helper()
	b := &beacon{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/control" {
			// The same page, served plainly: there its script runs.
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, evilReport(b.url))
			return
		}
		b.hits.Add(1)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	b.url = "http://" + ln.Addr().String()
	return b
}

// evilReport is an HTML artifact whose script calls home.
func evilReport(beacon string) string {
	return `<!doctype html><title>report</title><script>fetch("` + beacon + `/ran", {mode: "no-cors"}); document.title = "ran"</script><img src="` + beacon + `/img">`
}

// In the browser: the job page lists the artifacts with their sizes, an
// artifact is fetched from it, and an HTML artifact with a script opened
// through the web view (CGI and listener) runs nothing: a control page
// with the same script, served plainly, does call the beacon. A reader
// of another repository gets the missing repository's 404.
func TestArtifactsWeb(t *testing.T) {
	s := startWeb(t)
	b := newBeacon(t)
	script := "mkdir -p report && cat evil.html > report/index.html && echo plain > report/notes.txt\n"
	push(t, "artweb", map[string]string{"ci.sh": script, "evil.html": evilReport(b.url)})
	if log := follow(t, "alice", "artweb", 0); log.Code != 0 {
		t.Fatalf("jobq artweb 0: %s", log)
	}
	ctx := browser(t)
	runBrowser(t, ctx, chromedp.Navigate(s.nginx+"/jobq/artweb/0"))
	list := waitText(t, ctx, "#artifacts", "report/notes.txt")
	if !strings.Contains(list, "report/index.html") || !strings.Contains(list, "6 bytes") {
		t.Errorf("the job page's artifacts: %q", list)
	}
	// Fetched from the page, the bytes are the job's.
	c, cancel := context.WithTimeout(ctx, time.Minute)
	got, err := chromedp.Run(c, chromedp.Evaluate[string](`fetch(document.querySelector("#artifacts a[href*=notes]").href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if got != "plain\n" {
		t.Errorf("fetched %q", got)
	}
	for _, base := range []string{s.nginx + "/jobq", "http://" + s.listen} {
		// Followed as a link, and opened as a page: neither runs it.
		runBrowser(t, ctx, chromedp.Navigate(base+"/artweb/0"))
		waitText(t, ctx, "#artifacts", "report/index.html")
		eval[bool](t, ctx, `document.querySelector('#artifacts a[href*="index.html"]').click() === undefined`)
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		chromedp.Do(c, chromedp.Navigate(base+"/artweb/0/artifact?path=report/index.html")) // a download: the navigation is aborted
		cancel()
		time.Sleep(2 * time.Second)
		title := eval[string](t, ctx, "document.title")
		if n := b.hits.Load(); n != 0 || title == "ran" {
			t.Errorf("%s: the artifact's script ran: %d calls home, title %q", base, n, title)
		}
		resp, err := http.Get(base + "/artweb/0/artifact?path=report/index.html")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if h := resp.Header; !strings.HasPrefix(h.Get("Content-Disposition"), "attachment") || !strings.Contains(h.Get("Content-Security-Policy"), "sandbox") ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("%s: headers %v", base, h)
		}
	}
	// The control: the same page served plainly calls the beacon, so the
	// check above can fail.
	runBrowser(t, ctx, chromedp.Navigate(b.url+"/control"))
	testenv.WaitUntil(t, "the control page's script runs", 30*time.Second, func() bool { return b.hits.Load() > 0 })

	// bob, signed in, reads artown only: art's artifacts are missing.
	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", s.nginx+path, nil)
		req.SetBasicAuth("bob", "bob-pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	// Whether or not TestArtifacts ran: art has a job 0 with artifacts.
	push(t, "art", map[string]string{"ci.sh": strings.ReplaceAll(artScript, "HOME", env.Home), "stamp": time.Now().String()})
	follow(t, "alice", "art", 0)
	wantCode, wantBody := get("/jobq-auth/nosuch/0/artifact?path=report/index.html")
	for _, p := range []string{"/jobq-auth/art/0/artifact?path=report/index.html", "/jobq-auth/art/0/artifact", "/jobq-auth/artweb/0/artifact?path=../../art/0/artifacts/report/index.html"} {
		if code, body := get(p); code != 404 || code != wantCode || body != wantBody {
			t.Errorf("bob %s: %d %q", p, code, body)
		}
	}
}

// Artifacts count towards JOBQ_MIN_FREE: with the data directory on an
// 8 MiB filesystem (a tmpfs of this test's own) and JOBQ_MIN_FREE=4m, the
// collection of three files of 1.5 MiB stops before the one that would
// leave less than 4 MiB free, and the log says so; the job's result is
// its own.
func TestArtifactsLowSpace(t *testing.T) {
	// A job before: the data directory exists, and the Podman service
	// jobq starts keeps its log there, not on the filesystem mounted over.
	push(t, "artspace", map[string]string{"ci.sh": "true\n"})
	if log := follow(t, "alice", "artspace", 0); log.Code != 0 {
		t.Fatalf("jobq artspace 0: %s", log)
	}
	data := env.DataDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=8m,mode=0700,uid=%d,gid=%d", env.UID, env.GID), "jobq-xart-space", data).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	defer func() {
		for deadline := time.Now().Add(2 * time.Minute); userProcesses("jobq-worker") != "" && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
		var out []byte
		var err error
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if out, err = exec.Command("umount", data).CombinedOutput(); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			holders, _ := exec.Command("fuser", "-vm", data).CombinedOutput()
			t.Errorf("umount: %v %s\n%s", err, out, holders)
			exec.Command("umount", "-l", data).Run()
		}
	}()
	setRC(t, map[string]string{"JOBQ_MIN_FREE": "4m", "JOBQ_MIN_FREE_INODES": "0"})
	push(t, "artspace", map[string]string{"ci.sh": "mkdir out && for i in 1 2 3; do dd if=/dev/zero of=out/f$i bs=1024 count=1536 2>/dev/null; done\n"})
	log := follow(t, "alice", "artspace", 0) // IDs count from 0 again here
	if log.Code != 0 || !strings.Contains(log.Stdout, "jobq: artifacts: stopped: ") ||
		!strings.Contains(log.Stdout, " free in the data directory, a file of 1.5 MiB next, JOBQ_MIN_FREE=4m; ") ||
		!strings.Contains(log.Stdout, "jobq: artifacts: 2 files, 3.0 MiB collected") {
		t.Errorf("jobq artspace 0: %s", log)
	}
	workerGone(t, "artspace")
}

// A job whose worker is killed while its container runs is collected by
// the worker that adopts it, before its result, from the same container.
func TestArtifactsAdopted(t *testing.T) {
	push(t, "artadopt", map[string]string{"ci.sh": "echo started\nsleep 2\nmkdir out && echo hello > out/a.txt\nexit 3\n"})
	pid := env.JobWorker(t, "artadopt", "started\n")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	log := follow(t, "alice", "artadopt", 0) // starts the next worker
	if log.Code != 1 || !strings.Contains(log.Stdout, "jobq: worker restarted; output continues\n") ||
		!strings.Contains(log.Stdout, "jobq: artifacts: 1 file, 6 bytes collected\njobq: failed, exit code 3") {
		t.Errorf("jobq artadopt 0: %s", log)
	}
	if f := ssh("alice", "jobq", "artifacts", "artadopt", "0", "out/a.txt"); f.Code != 0 || f.Stdout != "hello\n" {
		t.Errorf("the adopted job's artifact: %s", f)
	}
	checkNothingLeft(t, "artadopt")
}

// A pattern's own directory a symlink out of /source (to the hosting
// account's home, its .ssh, up past the checkout): the archive endpoint
// resolves it within the container, nothing of the host is collected.
func TestArtifactsSymlinkedBase(t *testing.T) {
	canary := filepath.Join(env.Home, "jobq-xart-canary")
	if err := os.WriteFile(canary, []byte("CANARY\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(canary)
	script := fmt.Sprintf("ln -s %[1]s home && ln -s %[1]s/.ssh keys && ln -s %[1]s/.ssh ssh && ln -s ../../../../../../../../ up\n", env.Home)
	push(t, "artlink", map[string]string{"ci.sh": script})
	log := follow(t, "alice", "artlink", 0)
	if log.Code != 0 || !strings.Contains(log.Stdout, "jobq: artifacts: 0 files, 0 bytes collected") {
		t.Errorf("jobq artlink 0: %s", log)
	}
	if l := ssh("alice", "jobq", "artifacts", "artlink", "0", "--json"); l.Code != 0 || strings.TrimSpace(l.Stdout) != "[]" {
		t.Errorf("artifacts: %s", l)
	}
	if _, err := os.Stat(filepath.Join(env.DataDir(), "repos", "artlink", "0", "artifacts")); !os.IsNotExist(err) {
		t.Errorf("artifacts/ exists: %v", err)
	}
	checkNothingLeft(t, "artlink")
}
