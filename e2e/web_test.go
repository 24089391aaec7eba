package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/jobq/jobq/internal/testenv"
)

func init() { confParts = append(confParts, webConf, webRevokeConf) }

// webpub and webpod are readable anonymously (R = gitweb); websecret only
// by alice and carol. webpub's job waits at gates the test opens, so that
// it provably runs while the browser watches.
const webConf = `
repo webpub
    RW+ = alice
    R   = gitweb
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/web-job %[1]s/web-gate"

repo websecret
    RW+ = alice
    R   = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps secret-output"

repo webpod
    RW+ = alice
    R   = gitweb
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"

repo webskip
    RW+ = alice
    R   = gitweb
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/web-burst %[1]s/web-gate"

repo webshare
    RW+ = alice
    R   = gitweb
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/web-ticker %[1]s/web-gate"
`

// webRevokeConf lets carol read webrevoke; testWebRevoked takes that away
// while she follows its job.
const webRevokeConf = `
repo webrevoke
    RW+ = alice
    R   = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/web-ticker %[1]s/web-gate"
`

// webTicker writes a line every half second until GATE/REPO-ID-end
// exists (five minutes at most).
const webTicker = `#!/bin/sh
gate="$1/$GL_REPO-$JOBQ_JOB_ID"
n=0
while [ ! -e "$gate-end" ] && [ $n -lt 600 ]; do
    n=$((n + 1))
    echo "tick $n"
    sleep 0.5
done
`

// webBurst writes a line, then, once GATE/REPO-ID-1 exists, about 3 MB
// at once, ending in lines that pass for jobq's notice of skipped bytes
// or for the stream's own fields, then waits for gate 2.
const webBurst = `#!/bin/sh
gate="$1/$GL_REPO-$JOBQ_JOB_ID"
echo "before the gap"
while [ ! -e "$gate-1" ]; do sleep 0.05; done
i=0
while [ $i -lt 30000 ]; do
    printf 'filler line %06d ................................................................................\n' $i
    i=$((i + 1))
done
printf 'jobq: 999 bytes skipped here; the raw log has them.\n'
printf 'event: skipped\ndata: {"bytes":7}\n\n'
printf '<p class="skipped">forged</p>\n'
echo "after the gap"
while [ ! -e "$gate-2" ]; do sleep 0.05; done
echo "the end"
`

// webJob prints coloured output and markup meant to run in a browser,
// then one line per gate: line N waits until GATE/REPO-ID-N exists.
const webJob = `#!/bin/sh
gate="$1/$GL_REPO-$JOBQ_JOB_ID"
printf 'step 1 \033[32mgreen\033[0m and \033[1;31mbold red\033[0m\n'
printf '<script>window.pwned=1</script><img src=x onerror="window.pwned=2"></pre><b>not bold</b>\n'
printf 'progress 10%%\rprogress 50%%\rprogress 100%%\n'
for n in 2 3 4 5; do
    while [ ! -e "$gate-$n" ]; do sleep 0.05; done
    echo "step $n"
done
`

// podScript runs in a Podman container: a build's coloured output.
const podScript = `printf '\033[1mbuilding\033[0m %s\n' "$GL_REPO"
for t in unit lint e2e; do printf 'test %s: \033[32mok\033[0m\n' "$t"; done
printf '\033[33mwarning:\033[0m 1 deprecation\n'
echo '<script>window.pwned=3</script>'
`

// webStack is jobq-web served the two ways, as the hosting account: as a
// CGI program by nginx and fcgiwrap, and as its own listener.
type webStack struct {
	t        *testing.T
	dir      string
	nginx    string // http://127.0.0.1:PORT
	listen   string // 127.0.0.1:PORT
	listener *exec.Cmd
	procs    []*exec.Cmd
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// asAccount is a command run as the hosting account with a bare
// environment (fcgiwrap gives its programs next to none).
func asAccount(environ []string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = environ
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: uint32(env.UID), Gid: uint32(env.GID)}}
	return cmd
}

func startWeb(t *testing.T) *webStack {
	t.Helper()
	for _, p := range []string{"nginx", "fcgiwrap", "chromium"} {
		_, err := exec.LookPath(p)
		testenv.Require(t, err == nil, p+" (scripts/setup installs it)")
	}
	s := &webStack{t: t, dir: filepath.Join(env.Dir, "web")}
	for _, d := range []string{s.dir, filepath.Join(s.dir, "tmp"), filepath.Join(env.Bin, "web-gate")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// fcgiwrap, as the account, makes its socket here.
	os.Chown(s.dir, env.UID, env.GID)
	os.Chown(filepath.Join(s.dir, "tmp"), env.UID, env.GID)
	for name, body := range map[string]string{"web-job": webJob, "web-ticker": webTicker, "web-burst": webBurst} {
		if err := os.WriteFile(filepath.Join(env.Bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(s.stop)

	// fcgiwrap as the hosting account, with no environment at all.
	sock := filepath.Join(s.dir, "fcgiwrap.sock")
	// A socket left by the stack a test before this one started would
	// keep fcgiwrap from binding, and pass for it listening.
	os.Remove(sock)
	s.start(asAccount([]string{}, "/usr/sbin/fcgiwrap", "-s", "unix:"+sock))
	testenv.WaitUntil(t, "fcgiwrap listens", 10*time.Second, func() bool { _, err := os.Stat(sock); return err == nil })

	// nginx with the shipped configuration, this host's paths put in.
	conf, err := os.ReadFile(filepath.Join(env.Source, "nginx", "jobq-web.conf"))
	if err != nil {
		t.Fatal(err)
	}
	fcgi, err := os.ReadFile(filepath.Join(env.Source, "nginx", "jobq-web-fastcgi.conf"))
	if err != nil {
		t.Fatal(err)
	}
	fcgiPath := filepath.Join(s.dir, "jobq-web-fastcgi.conf")
	htpasswd := filepath.Join(s.dir, "htpasswd")
	r := strings.NewReplacer("/etc/nginx/jobq-web-fastcgi.conf", fcgiPath, "/config/htpasswd", htpasswd,
		"/run/fcgiwrap.socket", sock, "/usr/local/bin/jobq-web", filepath.Join(env.Bin, "jobq-web"))
	os.WriteFile(filepath.Join(s.dir, "jobq-web.conf"), []byte(r.Replace(string(conf))), 0o644)
	os.WriteFile(fcgiPath, []byte(r.Replace(string(fcgi))), 0o644)
	// GWS's HTTP users; nginx reads {PLAIN} passwords too.
	os.WriteFile(htpasswd, []byte("alice:{PLAIN}alice-pw\ncarol:{PLAIN}carol-pw\nbob:{PLAIN}bob-pw\n"), 0o644)
	port := freePort(t)
	tmp := filepath.Join(s.dir, "tmp")
	main := fmt.Sprintf(`user %[1]s;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log;
daemon off;
events {}
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[3]s/body; fastcgi_temp_path %[3]s/fastcgi; proxy_temp_path %[3]s/proxy;
    uwsgi_temp_path %[3]s/uwsgi; scgi_temp_path %[3]s/scgi;
    server {
        listen 127.0.0.1:%[4]d;
        include %[2]s/jobq-web.conf;
    }
}
`, env.User, s.dir, tmp, port)
	os.WriteFile(filepath.Join(s.dir, "nginx.conf"), []byte(main), 0o644)
	ng := exec.Command("nginx", "-c", filepath.Join(s.dir, "nginx.conf"), "-e", filepath.Join(s.dir, "error.log"))
	ng.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.start(ng)
	s.nginx = fmt.Sprintf("http://127.0.0.1:%d", port)
	testenv.WaitUntil(t, "nginx answers", 10*time.Second, func() bool {
		resp, err := http.Get(s.nginx + "/jobq/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})

	// The listener, as "jobq web" starts it.
	s.listen = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.startListener()
	return s
}

func (s *webStack) start(cmd *exec.Cmd) {
	s.t.Helper()
	out, _ := os.OpenFile(filepath.Join(s.dir, filepath.Base(cmd.Path)+".out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.procs = append(s.procs, cmd)
}

func (s *webStack) startListener() {
	s.t.Helper()
	cmd := asAccount([]string{"HOME=" + env.Home, "PATH=/usr/local/bin:/usr/bin:/bin"}, filepath.Join(env.Bin, "jobq"), "web", "--listen", s.listen)
	s.start(cmd)
	s.listener = cmd
	testenv.WaitUntil(s.t, "the listener answers", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + s.listen + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
}

// stopListener stops the listener by its pid, as an operator restarts it.
func (s *webStack) stopListener() {
	s.listener.Process.Signal(syscall.SIGTERM)
	s.listener.Wait()
}

// otherListener is one more listener, with options of its own, on a port
// of its own.
type otherListener struct {
	s    *webStack
	addr string
	args []string
	cmd  *exec.Cmd
}

func (s *webStack) otherListener(t *testing.T, args ...string) *otherListener {
	t.Helper()
	l := &otherListener{s: s, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), args: args}
	l.start(t)
	return l
}

func (l *otherListener) start(t *testing.T) {
	t.Helper()
	args := append([]string{"web", "--listen", l.addr}, l.args...)
	cmd := asAccount([]string{"HOME=" + env.Home, "PATH=/usr/local/bin:/usr/bin:/bin"}, filepath.Join(env.Bin, "jobq"), args...)
	out, _ := os.OpenFile(filepath.Join(l.s.dir, "jobq.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l.s.procs = append(l.s.procs, cmd) // the stack's end kills it, if nothing did before
	l.cmd = cmd
	testenv.WaitUntil(t, "the other listener answers", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + l.addr + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
}

func (l *otherListener) stop() {
	l.cmd.Process.Signal(syscall.SIGTERM)
	l.cmd.Wait()
}

func (s *webStack) stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		if p := s.procs[i]; p.ProcessState == nil {
			syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			p.Wait()
		}
	}
	if s.t.Failed() {
		for _, f := range []string{"error.log", "fcgiwrap.out", "jobq.out"} {
			b, _ := os.ReadFile(filepath.Join(s.dir, f))
			s.t.Logf("%s:\n%s", f, b)
		}
		s.t.Logf("webpub job 0's log:\n%s", readLog("webpub", 0))
		gates, _ := os.ReadDir(filepath.Join(env.Bin, "web-gate"))
		for _, g := range gates {
			s.t.Logf("gate %s", g.Name())
		}
	}
}

// openGate opens gate n of repo's job id.
func openGate(t *testing.T, repo string, id, n int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(env.Bin, "web-gate", fmt.Sprintf("%s-%d-%d", repo, id, n)), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// artifacts is where screenshots go: $JOBQ_ARTIFACTS, else e2e/testdata/out.
func artifacts(t *testing.T) string {
	dir := os.Getenv("JOBQ_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(env.Source, "e2e", "testdata", "out")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is a headless chromium tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath("/usr/bin/chromium"), chromedp.NoSandbox,
		chromedp.WindowSize(1000, 800))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// tab opens another tab of the browser of ctx.
func tab(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	tctx, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tctx); err != nil {
		t.Fatal(err)
	}
	return tctx
}

func runBrowser(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatal(err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// waitText waits until the element's text contains want.
func waitText(t *testing.T, ctx context.Context, sel, want string) string {
	t.Helper()
	var text string
	testenv.WaitUntil(t, fmt.Sprintf("%s shows %q", sel, want), 2*time.Minute, func() bool {
		text = eval[string](t, ctx, fmt.Sprintf("(document.querySelector(%q) || {}).textContent || ''", sel))
		return strings.Contains(text, want)
	})
	return text
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(artifacts(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func TestWeb(t *testing.T) {
	s := startWeb(t)
	t.Run("LiveLog", func(t *testing.T) { testWebLive(t, s) })
	t.Run("Access", func(t *testing.T) { testWebAccess(t, s) })
	t.Run("PodmanJob", func(t *testing.T) { testWebPodman(t, s) })
	t.Run("Revoked", func(t *testing.T) { testWebRevoked(t, s) })
	t.Run("Skipped", func(t *testing.T) { testWebSkipped(t, s) })
	t.Run("Share", func(t *testing.T) { testWebShare(t, s) })
}

// The job page of a running job shows lines while the job runs, keeps
// every line once across a cut connection (a killed CGI process; a
// restarted listener), shows the result without a reload, renders colours
// as styled text, and runs none of the log's markup.
func testWebLive(t *testing.T, s *webStack) {
	push(t, "webpub", nil)
	// However this ends, the job ends: later tests' jobs wait for it.
	t.Cleanup(func() {
		for n := 2; n <= 5; n++ {
			openGate(t, "webpub", 0, n)
		}
	})
	ctx := browser(t)
	cgiTab, listenTab := ctx, tab(t, ctx)
	runBrowser(t, cgiTab, chromedp.Navigate(s.nginx+"/jobq/webpub/0"))
	waitText(t, cgiTab, "#log", "step 1")
	runBrowser(t, listenTab, chromedp.Navigate("http://"+s.listen+"/webpub/0"))
	waitText(t, listenTab, "#log", "step 1")
	// A mark that a reload would wipe.
	for _, c := range []context.Context{cgiTab, listenTab} {
		eval[any](t, c, "window.mark = 42")
	}

	// A line written now reaches both pages while the job still runs: it
	// cannot end before gate 3 opens.
	openGate(t, "webpub", 0, 2)
	for _, c := range []context.Context{cgiTab, listenTab} {
		waitText(t, c, "#log", "step 2")
		if st := waitText(t, c, "#state", ""); st != "running" {
			t.Errorf("state %q while the job runs", st)
		}
	}

	// Under CGI every visit of the page's stream ends once it has sent what
	// the log holds, and the browser comes back from its last event id:
	// each line below crosses such a cut. A visit being served now is cut
	// harder: its process is killed.
	for _, pid := range strings.Fields(userProcessIDs("jobq-web")) {
		if n, _ := strconv.Atoi(pid); n != s.listener.Process.Pid {
			syscall.Kill(n, syscall.SIGKILL)
		}
	}
	// Stop the listener; the job writes while it is down.
	s.stopListener()
	openGate(t, "webpub", 0, 3)
	testenv.WaitUntil(t, "the job writes step 3", time.Minute, func() bool { return strings.Contains(readLog("webpub", 0), "step 3") })
	waitText(t, cgiTab, "#log", "step 3")
	s.startListener()
	waitText(t, listenTab, "#log", "step 3")
	openGate(t, "webpub", 0, 4)
	openGate(t, "webpub", 0, 5)

	for name, c := range map[string]context.Context{"CGI": cgiTab, "listener": listenTab} {
		if st := waitText(t, c, "#state", "succeeded"); st != "succeeded" {
			t.Errorf("%s: state %q", name, st)
		}
		if mark := eval[float64](t, c, "window.mark || 0"); mark != 42 {
			t.Errorf("%s: the page reloaded", name)
		}
		log := waitText(t, c, "#log", "jobq: succeeded")
		for _, line := range []string{"step 1 green and bold red", "step 2", "step 3", "step 4", "step 5", "jobq: succeeded, exit code 0"} {
			if n := strings.Count(log, line); n != 1 {
				t.Errorf("%s: %q %d times in the page's log:\n%s", name, line, n, log)
			}
		}
		if !strings.Contains(log, "\nprogress 100%\n") || strings.Contains(log, "progress 10%") {
			t.Errorf("%s: the progress line is not rendered:\n%s", name, log)
		}
		// Colours are styled text.
		colour := eval[string](t, c, `(function(){var e=[...document.querySelectorAll("#log span")].find(s=>s.textContent==="green");return e?getComputedStyle(e).color:"none"})()`)
		if colour != "rgb(85, 221, 85)" {
			t.Errorf("%s: 'green' has colour %q", name, colour)
		}
		bold := eval[string](t, c, `(function(){var e=[...document.querySelectorAll("#log span")].find(s=>s.textContent==="bold red");return e?getComputedStyle(e).fontWeight+" "+getComputedStyle(e).color:"none"})()`)
		if bold != "700 rgb(255, 85, 85)" {
			t.Errorf("%s: 'bold red' is %q", name, bold)
		}
		// The log's markup is text: nothing of it ran or became an element.
		if got := eval[string](t, c, `String(window.pwned) + " " + document.querySelectorAll("#log img, #log b, #log script").length`); got != "undefined 0" {
			t.Errorf("%s: the log's markup ran or rendered: %s", name, got)
		}
		if !strings.Contains(log, `<script>window.pwned=1</script><img src=x onerror="window.pwned=2"></pre><b>not bold</b>`) {
			t.Errorf("%s: the log's markup is not shown as text:\n%s", name, log)
		}
	}
	screenshot(t, cgiTab, "web-job-live.png")
}

// A visitor sees the repositories gitolite lets them read: anonymous what
// R = gitweb allows, an HTTP user theirs; forbidden and missing pages are
// the same bytes.
func testWebAccess(t *testing.T, s *webStack) {
	push(t, "websecret", nil)
	testenv.WaitUntil(t, "websecret job 0 ends", time.Minute, func() bool { return strings.Contains(readLog("websecret", 0), "jobq: succeeded") })

	get := func(path, user string, header ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.nginx+path, nil)
		if user != "" {
			req.SetBasicAuth(user, user+"-pw")
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	repos := func(path, user string, header ...string) []string {
		t.Helper()
		code, body := get(path, user, header...)
		var o struct{ Repos []struct{ Repo string } }
		if err := json.Unmarshal([]byte(body), &o); err != nil || code != 200 {
			t.Fatalf("%s as %q: %d %s", path, user, code, body)
		}
		var names []string
		for _, r := range o.Repos {
			names = append(names, r.Repo)
		}
		return names
	}
	has := func(names []string, n string) bool {
		return strings.Contains(" "+strings.Join(names, " ")+" ", " "+n+" ")
	}
	forged := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:anything"))
	for _, c := range []struct {
		path, user, auth  string
		webpub, websecret bool
	}{
		{"/jobq/?json", "", "", true, false},
		// nginx fills $remote_user from any Authorization header: the
		// anonymous location must not pass it on.
		{"/jobq/?json", "", forged, true, false},
		// A signed-in visitor reads what anyone may, too (webpub, marked
		// public on the page).
		{"/jobq-auth/?json", "carol", "", true, true},
		{"/jobq-auth/?json", "alice", "", true, true},
		{"/jobq-auth/?json", "bob", "", true, false},
	} {
		var names []string
		if c.auth != "" {
			names = repos(c.path, c.user, "Authorization", c.auth)
		} else {
			names = repos(c.path, c.user)
		}
		if has(names, "webpub") != c.webpub || has(names, "websecret") != c.websecret {
			t.Errorf("%s as %q (Authorization %q) lists %v", c.path, c.user, c.auth, names)
		}
	}
	if code, _ := get("/jobq-auth/", "alice", "Authorization", forged); code != 401 {
		t.Errorf("a wrong password: %d", code)
	}

	// Forbidden and missing: the same answer, byte for byte.
	for _, c := range []struct{ user, forbidden, missing string }{
		{"", "/jobq/websecret/", "/jobq/nosuch/"},
		{"", "/jobq/websecret/0", "/jobq/nosuch/0"},
		{"", "/jobq/websecret/0/log", "/jobq/webpub/999/log"},
		{"", "/jobq/websecret/badge.svg", "/jobq/nosuch/badge.svg"},
		{"bob", "/jobq-auth/websecret/0", "/jobq-auth/websecret/999"},
		{"bob", "/jobq-auth/websecret/?json", "/jobq-auth/nosuch/?json"},
		{"", "/jobq/websecret/0/events", "/jobq/nosuch/0/events"},
		{"", "/jobq/webpub/%2e%2e/websecret/0", "/jobq/nosuch/0"},
	} {
		fc, fb := get(c.forbidden, c.user)
		mc, mb := get(c.missing, c.user)
		if fc != 404 || fc != mc || fb != mb {
			t.Errorf("as %q: %s gives %d %q, %s gives %d %q", c.user, c.forbidden, fc, fb, c.missing, mc, mb)
		}
	}
	if code, body := get("/jobq-auth/websecret/0/log", "carol"); code != 200 || !strings.Contains(body, "secret-output") {
		t.Errorf("carol's websecret log: %d %s", code, body)
	}
	// Traversal through nginx reaches no file.
	for _, p := range []string{"/jobq/../../../../etc/passwd", "/jobq/%2e%2e%2f%2e%2e%2fetc%2fpasswd/", "/jobq/webpub/..%2f..%2f..%2fetc%2fpasswd", "/jobq/webpub/0/..%2F..%2F..%2F.ssh%2Fauthorized_keys/", "/jobq/%2e%2e/%2e%2e/etc/passwd/"} {
		if code, body := get(p, ""); code == 200 || strings.Contains(body, "root:") || strings.Contains(body, "ssh-") {
			t.Errorf("%s: %d %.200s", p, code, body)
		}
	}
	// The raw log honours Range; the badge shows the result.
	req, _ := http.NewRequest("GET", s.nginx+"/jobq/webpub/0/log", nil)
	req.Header.Set("Range", "bytes=5-9")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 206 {
		t.Errorf("Range: %v %v", resp, err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != readLog("webpub", 0)[5:10] {
			t.Errorf("Range 5-9: %q", b)
		}
	}
	if code, body := get("/jobq/webpub/badge.svg?ref=master", ""); code != 200 || !strings.Contains(body, ">succeeded<") {
		t.Errorf("badge: %d %s", code, body)
	}

	// In the browser: the anonymous overview, then carol's.
	ctx := browser(t)
	runBrowser(t, ctx, chromedp.Navigate(s.nginx+"/jobq/"))
	if text := waitText(t, ctx, "body", "Repositories"); !strings.Contains(text, "webpub") || strings.Contains(text, "websecret") {
		t.Errorf("anonymous overview:\n%s", text)
	}
	carol := tab(t, ctx)
	if _, err := chromedp.Call(carol, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	auth := network.Headers{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("carol:carol-pw"))}
	if _, err := chromedp.Call(carol, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: auth}); err != nil {
		t.Fatal(err)
	}
	runBrowser(t, carol, chromedp.Navigate(s.nginx+"/jobq-auth/"))
	if text := waitText(t, carol, "body", "Repositories"); !strings.Contains(text, "webpub public") || !strings.Contains(text, "websecret") || strings.Contains(text, "websecret public") || !strings.Contains(text, "signed in as carol") {
		t.Errorf("carol's overview:\n%s", text)
	}
}

// A Podman job's page and its repository's page, as a visitor sees them:
// the screenshots the README shows.
func testWebPodman(t *testing.T, s *webStack) {
	for i := range 3 {
		push(t, "webpod", map[string]string{"ci.sh": podScript, "n": strconv.Itoa(i)})
		if r := follow(t, "alice", "webpod", i); r.Code != 0 {
			t.Fatalf("jobq webpod %d: %s", i, r)
		}
	}
	ctx := browser(t)
	runBrowser(t, ctx, chromedp.Navigate(s.nginx+"/jobq/webpod/2"))
	waitText(t, ctx, "#log", "jobq: succeeded")
	if got := eval[string](t, ctx, `String(window.pwned) + " " + document.querySelectorAll("#log .term-fg32").length`); got != "undefined 3" {
		t.Errorf("podman job page: %s", got)
	}
	// Every line shown starting with "jobq:" (the header's, the result)
	// is of jobq's own class; no line of this job's poses as one, so none
	// is marked.
	var own, shown, marked int
	if _, err := fmt.Sscan(eval[string](t, ctx, `document.querySelectorAll("#log .jobq").length + " " + `+
		`document.getElementById("log").innerText.split("\n").filter(l => l.startsWith("jobq:")).length + " " + `+
		`document.querySelectorAll("#log .mark").length`), &own, &shown, &marked); err != nil || own < 5 || own != shown || marked != 0 {
		t.Errorf("podman job page: %d lines of jobq's class, %d shown starting with jobq:, %d marked (%v)", own, shown, marked, err)
	}
	screenshot(t, ctx, "web-job.png")
	// On a phone the page fits the screen's width; only the log scrolls
	// sideways, in its own box.
	runBrowser(t, ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.nginx+"/jobq/webpod/2"))
	waitText(t, ctx, "#log", "jobq: succeeded")
	if w := eval[float64](t, ctx, "document.documentElement.scrollWidth - window.innerWidth"); w > 0 {
		t.Errorf("on a phone the job page is %v pixels wider than the screen", w)
	}
	screenshot(t, ctx, "web-job-phone.png")
	runBrowser(t, ctx, chromedp.EmulateViewport(1000, 800), chromedp.Navigate(s.nginx+"/jobq/webpod/"))
	waitText(t, ctx, "body", "webpod")
	if n := eval[float64](t, ctx, `document.querySelectorAll("svg.chart rect").length`); n != 3 {
		t.Errorf("the chart has %v bars, want 3", n)
	}
	screenshot(t, ctx, "web-repo.png")
}

// userProcessIDs lists the pids of the hosting account's processes named
// exactly name.
func userProcessIDs(name string) string {
	out, _ := exec.Command("pgrep", "-u", env.User, "-x", name).Output()
	return strings.TrimSpace(string(out))
}

// openNamedGate opens the gate named name of repo's job id.
func openNamedGate(t *testing.T, repo string, id int, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(env.Bin, "web-gate", fmt.Sprintf("%s-%d-%s", repo, id, name)), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// sseLines reads a stream's lines into a channel, closed at its end.
func sseLines(body io.Reader) <-chan string {
	c := make(chan string, 10000)
	go func() {
		defer close(c)
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		for sc.Scan() {
			c <- sc.Text()
		}
	}()
	return c
}

// A visitor whose read access is taken away (the admin pushes a
// gitolite.conf without their rule) stops getting a running job's log
// within the access TTL and a keep-alive, although the job writes far
// more often than that: were the check put off by every event, the
// stream would go on to the job's end.
func testWebRevoked(t *testing.T, s *webStack) {
	const ttl, keepAlive = time.Second, 2 * time.Second
	l := s.otherListener(t, "--user-header", "X-Remote-User", "--access-ttl", ttl.String(), "--keep-alive", keepAlive.String())
	defer l.stop()
	push(t, "webrevoke", nil)
	t.Cleanup(func() { openNamedGate(t, "webrevoke", 0, "end") })
	t.Cleanup(func() { restoreConf(t) })
	get := func(path string) (*http.Response, error) {
		req, _ := http.NewRequest("GET", "http://"+l.addr+path, nil)
		req.Header.Set("X-Remote-User", "carol")
		return http.DefaultClient.Do(req)
	}
	testenv.WaitUntil(t, "webrevoke's job ticks", time.Minute, func() bool { return strings.Contains(readLog("webrevoke", 0), "tick 2") })
	resp, err := get("/webrevoke/0/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("carol's stream: %s", resp.Status)
	}
	lines := sseLines(resp.Body)
	ticks := 0
	for ticks < 3 {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("carol's stream ended before her access did")
			}
			if strings.HasPrefix(line, "data: tick ") {
				ticks++
			}
		case <-time.After(time.Minute):
			t.Fatal("carol's stream gets no ticks")
		}
	}

	pushing := time.Now()
	reconfigure(t, webRevokeConf, strings.Replace(webRevokeConf, "    R   = carol\n", "", 1))
	revoked := time.Now()
	// New requests are refused within the TTL.
	testenv.WaitUntil(t, "carol's new requests get 404", 30*time.Second, func() bool {
		r, err := get("/webrevoke/0")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 404
	})
	// The open stream ends within TTL + keep-alive (3 s); a loaded machine
	// gets 10 s more. The job writes two lines a second all along.
	deadline := time.After(ttl + keepAlive + 10*time.Second)
	var last string
	for ended := false; !ended; {
		select {
		case line, ok := <-lines:
			if !ok {
				ended = true
				break
			}
			if strings.HasPrefix(line, "data: tick ") {
				last = line
			}
		case <-deadline:
			t.Fatalf("carol still gets webrevoke's log %v after her access was taken away (bound: TTL %v + keep-alive %v); the last line: %q",
				time.Since(revoked).Round(time.Second), ttl, keepAlive, last)
		}
	}
	took := time.Since(revoked)
	t.Logf("carol's stream ended %v after the admin's push that took her access away returned (%v after it began; last line %q)",
		took.Round(10*time.Millisecond), time.Since(pushing).Round(10*time.Millisecond), last)
	// It ended for that, not with the job: the job goes on ticking.
	n, _ := strconv.Atoi(strings.TrimPrefix(last, "data: tick "))
	testenv.WaitUntil(t, "the job goes on after carol's stream ended", time.Minute, func() bool {
		return strings.Contains(readLog("webrevoke", 0), fmt.Sprintf("tick %d\n", n+3))
	})
	if log := readLog("webrevoke", 0); strings.Contains(log, "jobq: ") && strings.Contains(log, "exit code") {
		t.Errorf("the job ended before the check:\n%s", log)
	}
}

// A page whose follower comes back more than 1 MiB behind the log's end
// shows a notice of jobq's, outside the log, of how many bytes it skipped,
// with the raw log linked, and goes on from a line's start; lines of the
// job that pass for the notice stay text in the log (without the notice
// the page would go on silently, mid-line). Two pages of one
// job fall behind while it writes 3 MB: one from a listener that is down
// meanwhile, one from the CGI program whose visits the browser blocks
// meanwhile (a laptop asleep).
func testWebSkipped(t *testing.T, s *webStack) {
	l := s.otherListener(t)
	defer l.stop()
	push(t, "webskip", nil)
	t.Cleanup(func() {
		openGate(t, "webskip", 0, 1)
		openGate(t, "webskip", 0, 2)
	})
	ctx := browser(t)
	listenTab, cgiTab := ctx, tab(t, ctx)
	pages := []struct {
		name string
		ctx  context.Context
		url  string
		raw  string
	}{
		{"listener", listenTab, "http://" + l.addr + "/webskip/0", "/webskip/0/log"},
		{"CGI", cgiTab, s.nginx + "/jobq/webskip/0", "/jobq/webskip/0/log"},
	}
	if _, err := chromedp.Call(cgiTab, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	status := func(ctx context.Context) string {
		return eval[string](t, ctx, `document.getElementById("live").textContent`)
	}
	// The page is watched for "live" rather than looked at: under CGI the
	// stream's visits are short.
	const sawLive = `(function () {
		var live = document.getElementById("live");
		if (window.sawLive === undefined) {
			window.sawLive = live.textContent === "live";
			new MutationObserver(function () {
				if (live.textContent === "live") { window.sawLive = true; }
			}).observe(live, {childList: true, characterData: true, subtree: true});
		}
		return window.sawLive;
	})()`
	for _, p := range pages {
		runBrowser(t, p.ctx, chromedp.Navigate(p.url))
		waitText(t, p.ctx, "#log", "before the gap")
		testenv.WaitUntil(t, p.name+": the page follows", time.Minute, func() bool { return eval[bool](t, p.ctx, sawLive) })
	}

	l.stop()
	block := func(on bool) {
		var patterns []*network.BlockPattern
		if on {
			patterns = []*network.BlockPattern{{URLPattern: s.nginx + "/jobq/webskip/0/events?*", Block: true}}
		}
		if _, err := chromedp.Call(cgiTab, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: patterns}); err != nil {
			t.Fatal(err)
		}
	}
	block(true)
	// A visit under way when the block came ends at once (the log holds
	// no more); the next ones are blocked, and after a while without one
	// the page says the connection is lost.
	testenv.WaitUntil(t, "CGI: the page says the connection is lost", 30*time.Second, func() bool { return strings.Contains(status(cgiTab), "connection lost") })
	for range 20 {
		if st := status(cgiTab); !strings.Contains(st, "connection lost") {
			t.Fatalf("CGI: the page's status is %q while its visits are blocked", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	openGate(t, "webskip", 0, 1)
	testenv.WaitUntil(t, "the job writes past the gap", time.Minute, func() bool { return strings.Contains(readLog("webskip", 0), "after the gap\n") })
	log := readLog("webskip", 0)
	l.start(t)
	block(false)

	// What each page is told: from where it stopped to the first line that
	// starts in the last MiB.
	const window = 1 << 20
	from := int64(strings.Index(log, "before the gap\n") + len("before the gap\n"))
	to := int64(len(log)) - window
	to += int64(strings.IndexByte(log[to-1:], '\n'))
	logs := `[...document.querySelectorAll("pre.log")].map(function (p) { return p.textContent; })`
	for _, p := range pages {
		testenv.WaitUntil(t, p.name+": the page shows what follows the gap", 2*time.Minute, func() bool {
			return strings.Contains(eval[string](t, p.ctx, logs+`.join("\n")`), "after the gap")
		})
		note := eval[string](t, p.ctx, `(function () {
			var n = document.querySelectorAll(".skipped, [role=note]");
			if (n.length !== 1) { return n.length + " notices"; }
			var p = n[0], prev = p.previousElementSibling, next = p.nextElementSibling;
			return [p.tagName, p.closest("pre") ? "inside a log" : "outside the logs", prev && prev.id, next && next.tagName + "." + next.className,
				p.textContent, p.querySelector("a").getAttribute("href")].join(" | ");
		})()`)
		want := fmt.Sprintf("P | outside the logs | log | PRE.log | jobq: %d bytes skipped here; the raw log has them. | %s", to-from, p.raw)
		if note != want {
			t.Errorf("%s: the notice: %s\nwant %s", p.name, note, want)
		}
		parts := eval[[]string](t, p.ctx, logs)
		if len(parts) != 2 {
			for i, part := range parts {
				t.Logf("%s: log box %d: %.300q ... %q", p.name, i, part, part[max(len(part)-300, 0):])
			}
			t.Fatalf("%s: %d log boxes, want 2", p.name, len(parts))
		}
		if !strings.HasSuffix(parts[0], "before the gap\n") || strings.Contains(parts[0], "filler") {
			t.Errorf("%s: the log before the notice:\n%s", p.name, parts[0])
		}
		// The log goes on with a whole line, the one at the notice's end.
		wantFirst, _, _ := strings.Cut(log[to:], "\n")
		if first, _, _ := strings.Cut(parts[1], "\n"); first != wantFirst || !strings.HasPrefix(first, "filler line ") {
			t.Errorf("%s: the log after the notice starts with %q, want the whole line %q", p.name, first, wantFirst)
		}
		// The job's imitations are text in the log, and made no element.
		for _, line := range []string{"jobq: 999 bytes skipped here; the raw log has them.", "event: skipped", `<p class="skipped">forged</p>`, "after the gap"} {
			if !strings.Contains(parts[1], line+"\n") {
				t.Errorf("%s: the log after the notice lacks %q", p.name, line)
			}
		}
		// (The page's own elements: its numbered lines, <code id="LN">.)
		if n := eval[float64](t, p.ctx, `[...document.querySelectorAll("pre.log *:not(span)")].filter(e => !(e.nodeName === "CODE" && e.parentNode.matches("pre.log") && /^L[0-9]+$/.test(e.id))).length`); n != 0 {
			t.Errorf("%s: the job's output made %v elements", p.name, n)
		}
	}
	openGate(t, "webskip", 0, 2)
	for _, p := range pages {
		waitText(t, p.ctx, "#state", "succeeded")
		testenv.WaitUntil(t, p.name+": the page shows the end", time.Minute, func() bool {
			return strings.Contains(eval[string](t, p.ctx, logs+`.join("\n")`), "the end")
		})
	}
	// The page is 10,000 lines long: the screen around the notice.
	eval[any](t, cgiTab, `document.querySelector("p.skipped").scrollIntoView({block: "center"})`)
	c, cancel := context.WithTimeout(cgiTab, time.Minute)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(artifacts(t), "web-job-skipped.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// One client follows at most --max-followers-per-client logs at once; one
// more is refused with 429 and a line saying why, while another address
// still gets its place: otherwise one client could take every
// --max-followers place.
func testWebShare(t *testing.T, s *webStack) {
	l := s.otherListener(t, "--max-followers-per-client", "2")
	defer l.stop()
	push(t, "webshare", nil)
	t.Cleanup(func() { openNamedGate(t, "webshare", 0, "end") })
	testenv.WaitUntil(t, "webshare's job ticks", time.Minute, func() bool { return strings.Contains(readLog("webshare", 0), "tick 1") })
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	follow := func(ip string) (int, string) {
		t.Helper()
		resp, err := from(ip).Get("http://" + l.addr + "/webshare/0/events")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(b)
		}
		t.Cleanup(func() { resp.Body.Close() })
		// Served: the first tick arrives.
		for line := range sseLines(resp.Body) {
			if strings.HasPrefix(line, "data: tick") {
				return 200, ""
			}
		}
		return 0, "the stream ended"
	}
	for i, c := range []struct {
		ip   string
		code int
	}{{"127.0.0.1", 200}, {"127.0.0.1", 200}, {"127.0.0.1", 429}, {"127.0.0.2", 200}, {"127.0.0.1", 429}, {"127.0.0.2", 200}, {"127.0.0.2", 429}} {
		code, body := follow(c.ip)
		if code != c.code || code == 429 && body != "too many live logs followed from your address at once; close some\n" {
			t.Errorf("follower %d from %s: %d %q, want %d", i, c.ip, code, body, c.code)
		}
	}
}
