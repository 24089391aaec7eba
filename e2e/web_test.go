package e2e

import (
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

func init() { confParts = append(confParts, webConf) }

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
	if err := os.WriteFile(filepath.Join(env.Bin, "web-job"), []byte(webJob), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)

	// fcgiwrap as the hosting account, with no environment at all.
	sock := filepath.Join(s.dir, "fcgiwrap.sock")
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
		{"/jobq-auth/?json", "carol", "", false, true},
		{"/jobq-auth/?json", "alice", "", true, true},
		{"/jobq-auth/?json", "bob", "", false, false},
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
	if text := waitText(t, carol, "body", "Repositories"); strings.Contains(text, "webpub") || !strings.Contains(text, "websecret") || !strings.Contains(text, "signed in as carol") {
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
