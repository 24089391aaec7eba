package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/jobq/jobq/internal/testenv"
)

func init() { confParts = append(confParts, webUXConf) }

// webux is readable anonymously; its job (webUXJob) writes colours, sixty
// lines and a progress line that waits at gates; on a ref named fail-*
// it fails at once.
const webUXConf = `
repo webux
    RW+ = alice
    R   = gitweb
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/web-ux %[1]s/web-gate"
`

const webUXJob = `#!/bin/sh
case "$GIT_REF" in refs/heads/fail-*) echo "failing on purpose"; exit 3 ;; esac
gate="$1/$GL_REPO-$JOBQ_JOB_ID"
printf '\033[38;5;208mpalette orange\033[0m and \033[38;2;10;200;250mtrue blue\033[0m\n'
i=1
while [ $i -le 60 ]; do echo "line $i"; i=$((i + 1)); done
printf 'downloading 10%%'
while [ ! -e "$gate-1" ]; do sleep 0.05; done
printf '\rdownloading 60%%'
while [ ! -e "$gate-2" ]; do sleep 0.05; done
printf '\rdownloading 100%%\n'
while [ ! -e "$gate-3" ]; do sleep 0.05; done
echo "all done"
`

// hostileSubject is a commit subject that tries to run, to reorder what
// follows it, and to be longer than a line.
const hostileSubject = `<img src=x onerror="window.pwned=9">fix: ` + "\u202e" + `txt.exe ` + "\x1b[31m" + `red and a long tail of words that goes on past what the page shows`

// axeScript is axe-core as scripts/setup installs it: a fixed version in a
// fixed directory.
const axeScript = "/usr/local/lib/jobq-test/node_modules/axe-core/axe.min.js"

// checkAccessible runs axe-core in the page of ctx and fails on serious or
// critical violations.
func checkAccessible(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	axe, err := os.ReadFile(axeScript)
	testenv.Require(t, err == nil, "axe-core in "+axeScript+" (scripts/setup installs it)")
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// DevTools' evaluation is not the page's script: the page's CSP, which
	// allows no other script, does not apply to it.
	if _, err := chromedp.Run(c, chromedp.Evaluate[any](string(axe)+";0")); err != nil {
		t.Fatalf("load axe-core: %v", err)
	}
	got, err := chromedp.Run(c, chromedp.Evaluate[string](`axe.run(document).then(function (r) {
		return r.violations.filter(function (v) { return v.impact === "serious" || v.impact === "critical"; }).map(function (v) {
			return v.impact + " " + v.id + ": " + v.help + " at " + v.nodes.slice(0, 3).map(function (n) { return n.target.join(" "); }).join("; ");
		}).join("\n");
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe.run: %v", err)
	}
	if got != "" {
		t.Errorf("%s: accessibility violations (axe-core):\n%s", page, got)
	}
}

// pushMsg pushes a commit with message msg to ref of repo, as alice.
func pushMsg(t *testing.T, repo, ref, msg string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if r := env.Git(ctx, "alice", dir, "clone", "-q", env.URL(repo), "w"); r.Code != 0 {
		t.Fatalf("clone %s: %s", repo, r)
	}
	w := filepath.Join(dir, "w")
	os.WriteFile(filepath.Join(w, "README"), []byte(time.Now().String()), 0o644)
	os.WriteFile(filepath.Join(dir, "msg"), []byte(msg), 0o644)
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-F", filepath.Join(dir, "msg")}, {"push", "-q", "origin", "HEAD:" + ref}} {
		if r := env.Git(ctx, "alice", w, args...); r.Code != 0 {
			t.Fatalf("git %v: %s", args, r)
		}
	}
}

// screenshotDoc saves a screenshot for the documentation
// (docs/screenshots/NAME, where the README links it) in the artifacts.
func screenshotDoc(t *testing.T, ctx context.Context, name string) { screenshot(t, ctx, "docs-"+name) }

// screenshotView saves what the window shows (a full-page screenshot puts
// a sticky header where the page was scrolled to).
func screenshotView(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(artifacts(t), "docs-"+name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWebUX: the web view as a visitor uses it, in chromium, through nginx
// and the CGI program and through the listener.
func TestWebUX(t *testing.T) {
	s := startWeb(t)
	if err := os.WriteFile(filepath.Join(env.Bin, "web-ux"), []byte(webUXJob), 0o755); err != nil {
		t.Fatal(err)
	}
	pushMsg(t, "webux", "refs/heads/master", hostileSubject)
	t.Cleanup(func() {
		for n := 1; n <= 3; n++ {
			openGate(t, "webux", 0, n)
		}
	})
	t.Run("LiveLog", func(t *testing.T) { testWebUXLive(t, s) })
	t.Run("RepoPage", func(t *testing.T) { testWebUXRepo(t, s) })
	t.Run("SignIn", func(t *testing.T) { testWebUXSignIn(t, s) })
}

// The running job's page: the line being written shows as it changes;
// 256-colour and truecolour output has its colours; under CGI the status
// stays calm while the stream's visits end, and says the connection is
// lost only when the server is gone (the listener, stopped); the header
// stays in view and its duration ticks; a line's anchor scrolls to it.
func testWebUXLive(t *testing.T, s *webStack) {
	ctx := browser(t)
	cgiTab, listenTab := ctx, tab(t, ctx)
	pages := map[string]context.Context{"CGI": cgiTab, "listener": listenTab}
	runBrowser(t, cgiTab, chromedp.Navigate(s.nginx+"/jobq/webux/0"))
	runBrowser(t, listenTab, chromedp.Navigate("http://"+s.listen+"/webux/0"))
	for name, c := range pages {
		waitText(t, c, "#partial", "downloading 10%")
		// Every status the page shows from now on, and a mark a reload
		// would wipe.
		eval[any](t, c, `window.mark = 42; window.statuses = [document.getElementById("live").textContent];
			new MutationObserver(function () { window.statuses.push(document.getElementById("live").textContent); }).observe(document.getElementById("live"), {childList: true, characterData: true, subtree: true})`)
		colours := eval[string](t, c, `(function () {
			var s = [...document.querySelectorAll("#log span")];
			function colour(text) { var e = s.find(x => x.textContent === text); return e ? getComputedStyle(e).color : "none"; }
			return colour("palette orange") + " " + colour("true blue");
		})()`)
		// 38;5;208 is xterm's #ff8700; 38;2;10;200;250 is quantised to the
		// nearest palette entry, 45 (#00d7ff).
		if colours != "rgb(255, 135, 0) rgb(0, 215, 255)" {
			t.Errorf("%s: the 256-colour and truecolour spans are %s", name, colours)
		}
		// Every whole line of the log is numbered (jobq's header, the
		// colours, sixty lines); the line being written is not.
		if n, want := eval[float64](t, c, `document.querySelectorAll("#log > code[id]").length`), strings.Count(readLog("webux", 0), "\n"); int(n) != want {
			t.Errorf("%s: %v numbered lines, want %d", name, n, want)
		}
	}

	// The progress line changes while the job runs; the page does not
	// reload.
	openGate(t, "webux", 0, 1)
	for _, c := range pages {
		waitText(t, c, "#partial", "downloading 60%")
	}
	// The job is idle now: under CGI each visit of the stream ends at once
	// and the browser comes back. Over some of those, the status stays
	// "live".
	started := eval[string](t, cgiTab, `document.getElementById("duration").textContent`)
	time.Sleep(4 * time.Second)
	for name, c := range pages {
		if st := eval[string](t, c, `document.getElementById("live").textContent + " | " + window.statuses.join(" | ")`); strings.Contains(st, "lost") || !strings.HasPrefix(st, "live |") {
			t.Errorf("%s: statuses while the job is idle: %s", name, st)
		}
	}
	if now := eval[string](t, cgiTab, `document.getElementById("duration").textContent`); now == started {
		t.Errorf("the duration does not tick: %q then %q", started, now)
	}

	// The header stays in view at the end of the log, with the state.
	runBrowser(t, cgiTab, chromedp.Navigate(s.nginx+"/jobq/webux/0")) // fresh: follow is on
	waitText(t, cgiTab, "#partial", "downloading 60%")
	eval[any](t, cgiTab, "window.mark = 42")
	eval[any](t, cgiTab, `window.scrollTo(0, document.body.scrollHeight)`)
	if got := eval[string](t, cgiTab, `(function () {
		var bar = document.querySelector(".jobbar").getBoundingClientRect(), st = document.getElementById("state").getBoundingClientRect();
		var at = document.elementFromPoint(st.left + 2, st.top + st.height / 2);
		return Math.round(bar.top) + " " + (window.scrollY > 300) + " " + (at && at.closest(".jobbar") !== null) + " " + document.getElementById("follow").checked;
	})()`); got != "0 true true true" {
		t.Errorf("after a scroll to the end: bar top, scrolled, state visible, follow: %s", got)
	}
	screenshotView(t, cgiTab, "job-live.png")
	// Scrolling up turns "follow" off.
	eval[any](t, cgiTab, `window.scrollTo(0, 0)`)
	testenv.WaitUntil(t, "follow turns off", 10*time.Second, func() bool { return !eval[bool](t, cgiTab, `document.getElementById("follow").checked`) })
	checkAccessible(t, cgiTab, "a running job's page")

	// A line's anchor scrolls to it, below the sticky header.
	anchor := tab(t, ctx)
	lines := strings.Split(readLog("webux", 0), "\n")
	n := slices.Index(lines, "line 29") + 1
	runBrowser(t, anchor, chromedp.Navigate(fmt.Sprintf("%s/jobq/webux/0#L%d", s.nginx, n)))
	waitText(t, anchor, fmt.Sprintf("#L%d", n), "line 29")
	testenv.WaitUntil(t, "the anchor's line is in view below the header", 10*time.Second, func() bool {
		return eval[bool](t, anchor, `(function () {
			var l = document.getElementById("L`+strconv.Itoa(n)+`").getBoundingClientRect(), bar = document.querySelector(".jobbar").getBoundingClientRect();
			return window.scrollY > 0 && l.top >= bar.bottom - 1 && l.bottom <= window.innerHeight && !document.getElementById("follow").checked;
		})()`)
	})

	// A real loss: the listener stops; its page says so, and goes on once
	// it is back.
	s.stopListener()
	waitText(t, listenTab, "#live", "connection lost")
	s.startListener()
	testenv.WaitUntil(t, "the listener's page is live again", time.Minute, func() bool {
		return eval[string](t, listenTab, `document.getElementById("live").textContent`) == "live"
	})

	// The line ends, numbered as the page numbered the others, and the job.
	ended := len(lines) // the number the progress line gets once it ends
	openGate(t, "webux", 0, 2)
	openGate(t, "webux", 0, 3)
	for name, c := range pages {
		waitText(t, c, "#state", "succeeded")
		if got := eval[string](t, c, `(document.getElementById("L`+strconv.Itoa(ended)+`") || {}).textContent + " | " + document.getElementById("partial").textContent + " | " + window.mark`); got != "downloading 100% |  | 42" {
			t.Errorf("%s: line %d, the partial line, the mark: %q", name, ended, got)
		}
		if log := waitText(t, c, "#log", "jobq: succeeded"); strings.Count(log, "downloading") != 1 || strings.Count(log, "all done") != 1 {
			t.Errorf("%s: the log:\n%s", name, log)
		}
	}
	// The page names the commands for a finished job.
	runBrowser(t, cgiTab, chromedp.Navigate(s.nginx+"/jobq/webux/0"))
	if text := waitText(t, cgiTab, "body", "run it again"); !strings.Contains(text, "jobq retry webux 0") || !strings.Contains(text, "jobq webux 0") {
		t.Errorf("the job page's commands:\n%s", text)
	}
	checkAccessible(t, cgiTab, "job page")
	screenshotDoc(t, cgiTab, "job-light.png")
	if _, err := chromedp.Call(cgiTab, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatal(err)
	}
	runBrowser(t, cgiTab, chromedp.Navigate(s.nginx+"/jobq/webux/0"))
	waitText(t, cgiTab, "#log", "jobq: succeeded")
	if got := eval[string](t, cgiTab, `getComputedStyle(document.body).backgroundColor + " " + getComputedStyle(document.getElementById("state")).color`); got != "rgb(13, 17, 23) rgb(63, 185, 80)" {
		t.Errorf("dark theme: body background, succeeded's colour: %s", got)
	}
	checkAccessible(t, cgiTab, "job page, dark")
	screenshotDoc(t, cgiTab, "job-dark.png")
}

// The repository page: commit subjects, inert; relative times with the
// absolute time on hover; filter links that narrow the table; counts per
// state; the chart's axis and legend.
func testWebUXRepo(t *testing.T, s *webStack) {
	for n := 1; n <= 3; n++ {
		openGate(t, "webux", 0, n) // job 1 waits for job 0, whatever became of the test before
	}
	pushMsg(t, "webux", "refs/heads/fail-1", "a failing change")
	testenv.WaitUntil(t, "webux job 1 fails", time.Minute, func() bool { return strings.Contains(readLog("webux", 1), "jobq: failed") })
	ctx := browser(t)
	runBrowser(t, ctx, chromedp.Navigate(s.nginx+"/jobq/webux/"))
	waitText(t, ctx, "body", "webux")
	if got := eval[string](t, ctx, `String(window.pwned) + " " + document.querySelectorAll("td.subject img, td.subject b").length + " | " +
		[...document.querySelectorAll("td.subject")].map(e => e.textContent).join(" | ")`); !strings.HasPrefix(got, "undefined 0 | a failing change | <img src=x onerror=\"window.pwned=9\">fix: txt.exe [31mred and") ||
		!strings.HasSuffix(got, "…") || strings.Contains(got, "\u202e") {
		t.Errorf("subjects: %s", got)
	}
	if title := eval[string](t, ctx, `document.querySelector("td time").title + " | " + document.querySelector("td time").textContent`); !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ \([+-]\d\d:\d\d\) \| \d+ (s|min|h) ago$`).MatchString(title) {
		t.Errorf("a queued time: %s", title)
	}
	rows := func() string {
		return eval[string](t, ctx, `[...document.querySelectorAll("table tr td:first-child a")].map(a => a.textContent).join(" ")`)
	}
	if got := rows(); got != "1 0" {
		t.Fatalf("jobs listed: %s", got)
	}
	if got := eval[string](t, ctx, `document.querySelector("nav.filters").textContent`); !strings.Contains(got, "succeeded 1") || !strings.Contains(got, "failed 1") {
		t.Errorf("counts: %s", got)
	}
	if got := eval[string](t, ctx, `document.querySelector("svg.chart").textContent`); !strings.Contains(got, "duration") || !strings.Contains(got, " s") ||
		!strings.Contains(got, "succeeded") || !strings.Contains(got, "failed") {
		t.Errorf("the chart's axis and legend: %s", got)
	}
	checkAccessible(t, ctx, "repository page")
	screenshotDoc(t, ctx, "repo.png")
	// The links narrow the table, and take it back.
	runBrowser(t, ctx, chromedp.Click(`nav.filters a.failed`))
	testenv.WaitUntil(t, "the state filter shows the failed job", 30*time.Second, func() bool { return rows() == "1" })
	runBrowser(t, ctx, chromedp.Click(chromedp.Search(`//nav//a[text()="refs/heads/master"]`)))
	testenv.WaitUntil(t, "the ref filter with the state filter shows nothing", 30*time.Second, func() bool {
		return strings.Contains(eval[string](t, ctx, "location.search"), "ref=") && rows() == ""
	})
	runBrowser(t, ctx, chromedp.Click(chromedp.Search(`//nav//p[1]/a[text()="all"]`)))
	testenv.WaitUntil(t, "the ref filter alone", 30*time.Second, func() bool { return rows() == "0" })
}

// An anonymous visitor is offered to sign in, on the same page; a signed-in
// one sees the public repositories too, marked.
func testWebUXSignIn(t *testing.T, s *webStack) {
	ctx := browser(t)
	runBrowser(t, ctx, chromedp.Navigate(s.nginx+"/jobq/"))
	waitText(t, ctx, "body", "Repositories")
	if href := eval[string](t, ctx, `[...document.querySelectorAll("header a")].filter(a => a.textContent === "sign in").map(a => a.getAttribute("href")).join(" ")`); href != "/jobq-auth/" {
		t.Errorf("the sign-in link: %q", href)
	}
	checkAccessible(t, ctx, "overview")
	screenshotDoc(t, ctx, "overview.png")
	carol := tab(t, ctx)
	if _, err := chromedp.Call(carol, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	auth := network.Headers{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("carol:carol-pw"))}
	if _, err := chromedp.Call(carol, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: auth}); err != nil {
		t.Fatal(err)
	}
	runBrowser(t, carol, chromedp.Navigate(s.nginx+"/jobq-auth/"))
	text := waitText(t, carol, "body", "Repositories")
	if !strings.Contains(text, "webux public") || !strings.Contains(text, "signed in as carol") || strings.Contains(text, "sign in ") {
		t.Errorf("carol's overview:\n%s", text)
	}
	checkAccessible(t, carol, "overview, signed in")
	runBrowser(t, carol, chromedp.Navigate(s.nginx+"/jobq-auth/webux/0"))
	waitText(t, carol, "#log", "jobq: succeeded")
}
