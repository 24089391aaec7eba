package web

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/queue"
)

// Truecolour sequences, which terminal-to-html drops, become the nearest
// palette entry, which has a class; the colon forms too. What is not a
// colour sequence, or is cut short, renders as before and never as markup.
func TestTruecolour(t *testing.T) {
	for _, c := range []struct{ in, class string }{
		{"\x1b[38;2;255;135;0morange\x1b[0m\n", "term-fgx208"},
		{"\x1b[38;5;208morange\x1b[0m\n", "term-fgx208"},
		{"\x1b[1;38;2;0;0;255mblue\x1b[0m\n", "term-fgx21"},
		{"\x1b[48;2;255;255;255mon white\x1b[0m\n", "term-bgx231"},
		{"\x1b[38:2::95:135:175mcolon\x1b[0m\n", "term-fgx67"},
		{"\x1b[38:2:95:135:175mcolon\x1b[0m\n", "term-fgx67"},
		{"\x1b[38:5:9mcolon\x1b[0m\n", "term-fgx9"},
		{"\x1b[38;2;128;128;128mgrey\x1b[0m\n", "term-fgx244"},
		{"\x1b[38;2;99999;0300;12mclamped\x1b[0m\n", "term-fgx226"},
	} {
		html := newLineRenderer().Render([]byte(c.in))
		if !strings.Contains(html, `class="`+c.class) {
			t.Errorf("%q renders %q, want class %s", c.in, html, c.class)
		}
	}
	for _, in := range []string{"\x1b[38;2;1m<b>cut</b>\n", "\x1b[38;2mnothing\n", "\x1b[38:2:1mx\n", "<script>\x1b[38;2;1;2;3m</script>\n"} {
		html := newLineRenderer().Render([]byte(in))
		if strings.Contains(html, "<b>") || strings.Contains(html, "<script") || strings.Contains(html, "\x1b") {
			t.Errorf("%q renders %q", in, html)
		}
	}
	// The quantisation is bounded: every value is near its entry (within
	// the cube, each channel is at most 47 off: half its widest step).
	worst := 0.0
	for r := 0; r < 256; r += 5 {
		for g := 0; g < 256; g += 5 {
			for b := 0; b < 256; b += 5 {
				pr, pg, pb := paletteRGB(nearestPalette(uint8(r), uint8(g), uint8(b)))
				worst = max(worst, math.Sqrt(float64(sq(int(pr)-r)+sq(int(pg)-g)+sq(int(pb)-b))))
			}
		}
	}
	if worst > 47*math.Sqrt(3) {
		t.Errorf("a value is %.1f off its palette entry", worst)
	}
	// Every class the renderer can make has a rule.
	for n := range 256 {
		if !strings.Contains(palette, fmt.Sprintf(".term-fgx%d{", n)) || !strings.Contains(palette, fmt.Sprintf(".term-bgx%d{", n)) {
			t.Errorf("no rule for palette entry %d", n)
		}
	}
}

// contrast is the WCAG 2 contrast ratio of two #rrggbb colours.
func contrast(a, b string) float64 {
	lum := func(hex string) float64 {
		v, _ := strconv.ParseUint(hex[1:], 16, 32)
		ch := func(c uint64) float64 {
			s := float64(c) / 255
			if s <= 0.03928 {
				return s / 12.92
			}
			return math.Pow((s+0.055)/1.055, 2.4)
		}
		return 0.2126*ch(v>>16&255) + 0.7152*ch(v>>8&255) + 0.0722*ch(v&255)
	}
	la, lb := lum(a), lum(b)
	return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)
}

// Each state's colour passes WCAG AA (4.5:1) on its theme's background,
// and queued and cancelled differ by more than a shade: colour and sign.
func TestStateContrast(t *testing.T) {
	looks := map[queue.State]stateLook{}
	for _, l := range stateLooks {
		looks[l.State] = l
		for _, c := range []struct{ fg, bg string }{{l.Light, lightBG}, {l.Dark, darkBG}} {
			if r := contrast(c.fg, c.bg); r < 4.5 {
				t.Errorf("%s: %s on %s is %.2f:1", l.State, c.fg, c.bg, r)
			}
		}
		if !strings.Contains(style, "."+string(l.State)+"{color:"+l.Light+"}") || !strings.Contains(style, "."+string(l.State)+"{color:"+l.Dark+"}") {
			t.Errorf("the stylesheet lacks %s's colours", l.State)
		}
	}
	q, c := looks[queue.Queued], looks[queue.Cancelled]
	if q.Sign == c.Sign || q.Light == c.Light || q.Dark == c.Dark {
		t.Errorf("queued and cancelled look alike: %+v %+v", q, c)
	}
	for _, st := range []queue.State{queue.Queued, queue.Running, queue.Succeeded, queue.Failed, queue.TimedOut, queue.Cancelled, queue.Lost} {
		if _, ok := looks[st]; !ok {
			t.Errorf("%s has no look", st)
		}
	}
}

// The line being written shows as the terminal shows it (the last
// "\r" wins), marked when it imitates jobq, and rendering it changes
// nothing of the lines that follow.
func TestPartialLine(t *testing.T) {
	r := newLineRenderer()
	var out bytes.Buffer
	r.Partial(&out, []byte("\x1b[32mdownloading 10%\rdownloading 60%"))
	if got := out.String(); got != `<span class="term-fg32">downloading 60%</span>`+"\n" {
		t.Errorf("partial %q", got)
	}
	out.Reset()
	r.Partial(&out, []byte("\rjobq: succeeded"))
	if !strings.HasPrefix(out.String(), markerHTML) {
		t.Errorf("an imitation is not marked: %q", out.String())
	}
	out.Reset()
	r.Partial(&out, []byte("<img src=x onerror=alert(1)>"))
	if strings.Contains(out.String(), "<img") {
		t.Errorf("markup in a partial line: %q", out.String())
	}
	if got := r.Render([]byte("plain\n")); got != "plain\n" {
		t.Errorf("after a preview: %q", got)
	}
}

// A long timed-out job does not flatten the others: the axis ends near
// the rest, the outlier reaches the top and is marked; the axis and the
// legend say what they show.
func TestChartOutlier(t *testing.T) {
	now := time.Now()
	var rows []row
	for i := range 20 {
		d := time.Duration(50+i) * time.Second
		state := queue.Succeeded
		if i == 7 {
			d, state = time.Hour, queue.TimedOut
		}
		rows = append(rows, row{ID: int64(i), Job: &queue.Job{State: state, StartedAt: now.Add(-d), FinishedAt: now}})
	}
	c := newChart(rows)
	if c.Over != 1 || c.Cap != "2 min" || c.Max != "1h0m0s" {
		t.Errorf("over %d, axis up to %s, longest %s", c.Over, c.Cap, c.Max)
	}
	for _, b := range c.Bars {
		if b.ID != 7 && b.H < 30 {
			t.Errorf("job %d is %d px high", b.ID, b.H)
		}
		if b.Over != (b.ID == 7) {
			t.Errorf("job %d over: %v", b.ID, b.Over)
		}
	}
	if len(c.Legend) != 2 || c.Ticks[2].Label != "2 min" || c.Ticks[1].Label != "1 min" {
		t.Errorf("legend %+v ticks %+v", c.Legend, c.Ticks)
	}
	// Without an outlier the axis reaches the longest job.
	if c := newChart(rows[:7]); c.Over != 0 || c.Cap != "1 min" {
		t.Errorf("no outlier: over %d, axis %s", c.Over, c.Cap)
	}
}

// The filter links narrow the table to a state or a ref; the counts are
// per state; a hostile ref is a link's escaped query, never markup; a
// filter that names no state is not found.
func TestRepoFilters(t *testing.T) {
	f := newFixture(t)
	hostile := `refs/heads/"><script>alert(1)</script>`
	for i := range 6 {
		ref, state := "refs/heads/master", queue.Succeeded
		if i%2 == 1 {
			state = queue.Failed
		}
		if i == 5 {
			ref = hostile
		}
		f.job("pub", ref, state, "")
	}
	f.job("pub", "refs/heads/master", queue.Cancelled, "")
	page := f.get("", "/pub/")
	for _, want := range []string{`href="/pub/?state=failed">failed 3</a>`, `href="/pub/?state=succeeded">succeeded 3</a>`, `href="/pub/?state=cancelled">cancelled 1</a>`,
		`href="/pub/?ref=refs%2Fheads%2F%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E">refs/heads/&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</a>`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(page.body, "<script>alert") {
		t.Errorf("a ref is markup")
	}
	ids := func(body string) string {
		var out []string
		for _, m := range regexp.MustCompile(`<tr><td><a href="/pub/(\d+)">`).FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return strings.Join(out, " ")
	}
	for target, want := range map[string]string{
		"/pub/":                           "6 5 4 3 2 1 0",
		"/pub/?state=failed":              "5 3 1",
		"/pub/?ref=refs%2Fheads%2Fmaster": "6 4 3 2 1 0",
		"/pub/?ref=refs%2Fheads%2Fmaster&state=failed": "3 1",
		"/pub/?state=failed&before=3":                  "1",
		"/pub/?ref=refs%2Fheads%2Fnone":                "",
	} {
		got := f.get("", target)
		if got.code != 200 || ids(got.body) != want {
			t.Errorf("%s: %d, jobs %q, want %q", target, got.code, ids(got.body), want)
		}
	}
	for _, target := range []string{"/pub/?state=nope", "/pub/?state=<b>", "/pub/?ref=a%0Ab", "/pub/?state=failed&before=x"} {
		if got := f.get("", target); got.code != 404 {
			t.Errorf("%s: %d", target, got.code)
		}
	}
}

// The repository page shows each revision's commit subject, read from the
// repository: hostile subjects are inert text, cut to length.
func TestCommitSubjects(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "--bare", "r.git")
	gitDir := filepath.Join(dir, "r.git")
	subjects := []string{
		"<script>window.pwned=1</script><img src=x onerror=alert(1)> fix\nbody line",
		"evil \u202egnp.exe\x1b[31m red \x07 bell",
		strings.Repeat("long ", 40),
	}
	var revs []string
	for i, msg := range subjects {
		os.WriteFile(filepath.Join(dir, "msg"), []byte(msg), 0o644)
		tree := git("--git-dir", gitDir, "write-tree")
		args := []string{"--git-dir", gitDir, "commit-tree", tree, "-F", "msg"}
		if i > 0 {
			args = append(args, "-p", revs[i-1])
		}
		revs = append(revs, git(args...))
	}
	for _, rev := range append(revs, strings.Repeat("0", 40)) {
		id := f.job("pub", "refs/heads/master", queue.Succeeded, "")
		f.store.Update("pub", id, func(j *queue.Job) error { j.GitDir, j.NewRev = gitDir, rev; return nil })
	}
	body := f.get("", "/pub/").body
	for _, want := range []string{
		`<td class="subject">&lt;script&gt;window.pwned=1&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; fix</td>`,
		`<td class="subject">evil gnp.exe[31m red  bell</td>`,
		`<td class="subject">` + strings.TrimSpace(strings.Repeat("long ", 16)) + "…</td>",
		`<td class="subject"></td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(body, "<script>window") || strings.Contains(body, "body line") {
		t.Errorf("a subject is markup, or more than its line")
	}
	// A repository whose pack indexes are too large to read for a page
	// shows no subjects (a sparse file stands for them).
	idx, err := os.Create(filepath.Join(gitDir, "objects", "pack", "pack-big.idx"))
	if err != nil {
		t.Fatal(err)
	}
	idx.Truncate(maxPackIndexes + 1)
	idx.Close()
	if body := f.get("", "/pub/").body; strings.Contains(body, "window.pwned") || strings.Count(body, `<td class="subject"></td>`) != 4 {
		t.Errorf("subjects of a repository too large to look in")
	}
}

// An anonymous visitor's page links to the same page at the sign-in
// location; a signed-in visitor sees the public repositories too, marked.
func TestSignIn(t *testing.T) {
	f := newFixture(t)
	f.job("pub", "refs/heads/master", queue.Succeeded, "")
	f.job("secret", "refs/heads/master", queue.Succeeded, "")
	if got := f.get("", "/pub/?state=succeeded").body; strings.Contains(got, "sign in") {
		t.Errorf("a sign-in link without a location")
	}
	f.srv.SignIn = "/jobq-auth"
	if got := f.get("", "/pub/?state=succeeded").body; !strings.Contains(got, `<a href="/jobq-auth/pub/?state=succeeded">sign in</a>`) {
		t.Errorf("no sign-in link:\n%s", got)
	}
	if got := f.get("alice", "/").body; strings.Contains(got, "sign in") {
		t.Errorf("a sign-in link for a signed-in visitor")
	}
	// bob reads nothing himself; gitweb reads pub.
	bob := f.get("bob", "/").body
	if !strings.Contains(bob, `<a href="/pub/">pub</a> <span class="tag"`) || strings.Contains(bob, "secret") {
		t.Errorf("bob's overview:\n%s", bob)
	}
	if alice := f.get("alice", "/").body; strings.Contains(alice, `class="tag"`) {
		t.Errorf("alice reads pub herself: marked public")
	}
}

// The job page names the ssh commands for the job; a hostile Host header
// does not get into them.
func TestJobCommands(t *testing.T) {
	f := newFixture(t)
	done := f.job("pub", "refs/heads/master", queue.Succeeded, "x\n")
	running := f.job("pub", "refs/heads/master", queue.Running, "x\n")
	get := func(host string, id int64) string {
		req := httptest.NewRequest("GET", fmt.Sprintf("http://jobq.example/pub/%d", id), nil)
		req.Host = host
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		return rec.Body.String()
	}
	if body := get("git.example.org:8080", done); !strings.Contains(body, "@git.example.org jobq retry pub 0</code>") || strings.Contains(body, "jobq cancel") {
		t.Errorf("a finished job's commands:\n%s", body)
	}
	if body := get("git.example.org", running); !strings.Contains(body, "@git.example.org jobq cancel pub 1</code>") {
		t.Errorf("a running job's commands")
	}
	if body := get(`evil.example";rm -rf ~`, done); !strings.Contains(body, "@HOST jobq retry") {
		t.Errorf("a hostile host in the commands")
	}
	f.srv.SSH = "ssh -p 2222 git@example.org"
	if body := get("x", done); !strings.Contains(body, "<code class=\"cmd\">ssh -p 2222 git@example.org jobq retry pub 0</code>") {
		t.Errorf("--ssh is not used")
	}
}

// A follower is shown each unfinished line as it changes, again after a
// whole line even when the next unfinished line reads the same (the page
// clears its unfinished line at each whole one).
func TestEventsPartial(t *testing.T) {
	f := newFixture(t)
	id := f.job("pub", "refs/heads/master", queue.Running, "10%")
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	resp, err := http.Get(fmt.Sprintf("%s/pub/%d/events", ts.URL, id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	c := make(chan sseEvent, 100)
	go readEvents(t, resp.Body, c)
	next := func() sseEvent {
		t.Helper()
		select {
		case ev := <-c:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
			return sseEvent{}
		}
	}
	write := func(s string) {
		lf, err := os.OpenFile(f.store.LogPath("pub", id), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		lf.WriteString(s)
		lf.Close()
	}
	var got []string
	for _, step := range []string{"", "\r50%", "\n10%\r50%", "\n"} {
		write(step)
		ev := next()
		got = append(got, ev.event+":"+ev.data)
		if step == "\n10%\r50%" {
			ev = next()
			got = append(got, ev.event+":"+ev.data)
		}
	}
	want := "partial:10% | partial:50% | :50% | partial:50% | :50%"
	if all := strings.Join(got, " | "); all != want {
		t.Errorf("events %q, want %q", all, want)
	}
}
