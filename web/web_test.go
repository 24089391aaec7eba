package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/jobview"
	"github.com/jobq/jobq/internal/testenv"
	"github.com/jobq/jobq/queue"
)

// fakeGitolite answers "gitolite access" from a file of "USER REPO"
// lines, and records each call.
const fakeGitolite = `#!/bin/sh
[ "$1" = access ] || exit 2
echo "$*" >> "$RULES.calls"
allowed() { grep -qxF "$1 $2" "$RULES"; }
case "$2" in
-q) allowed "$4" "$3" && exit 0; exit 1 ;;
%) while read -r r; do
     if allowed "$3" "$r"; then printf '%s\t%s\trefs/.*\n' "$r" "$3"
     else printf '%s\t%s\tR any %s %s DENIED by fallthru\n' "$r" "$3" "$r" "$3"; fi
   done ;;
*) exit 2 ;;
esac
`

type fixture struct {
	t     *testing.T
	store *queue.Store
	srv   *Server
	rules string
}

// newFixture makes a store with repositories pub (gitweb and alice may
// read it), secret (alice only) and a/5 (alice only), and a server for it.
// user names the visitor: the X-User header.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	store, err := queue.Open(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "gitolite")
	if err := os.WriteFile(bin, []byte(fakeGitolite), 0o755); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "rules")
	os.WriteFile(rules, []byte("gitweb pub\nalice pub\nalice secret\nalice a/5\n"), 0o644)
	srv := &Server{
		Store:   store,
		Access:  &Access{Gitolite: bin, Env: []string{"RULES=" + rules, "PATH=/usr/bin:/bin"}, TTL: time.Minute},
		Watcher: &Watcher{},
		User:    func(r *http.Request) string { return r.Header.Get("X-User") },
		Log:     nil,
	}
	return &fixture{t: t, store: store, srv: srv, rules: rules}
}

// job enqueues a job of repo and brings it to state, with log as its log.
func (f *fixture) job(repo, ref string, state queue.State, log string) int64 {
	f.t.Helper()
	j := &queue.Job{Repo: repo, Queue: repo, Ref: ref, NewRev: strings.Repeat("ab", 20), User: "alice",
		Options: queue.Options{Timeout: time.Hour}}
	if _, err := f.store.Enqueue(j); err != nil {
		f.t.Fatal(err)
	}
	if state != queue.Queued {
		_, err := f.store.Update(repo, j.ID, func(r *queue.Job) error {
			r.State, r.StartedAt, r.Worker = state, time.Now().UTC(), os.Getpid()
			if state.Final() {
				r.FinishedAt = r.StartedAt.Add(time.Duration(j.ID+1) * time.Second)
				code := 0
				if state != queue.Succeeded {
					code = 1
				}
				r.ExitCode = &code
			}
			return nil
		})
		if err != nil {
			f.t.Fatal(err)
		}
	}
	if log != "" {
		if err := os.WriteFile(f.store.LogPath(repo, j.ID), []byte(log), 0o600); err != nil {
			f.t.Fatal(err)
		}
	}
	return j.ID
}

type response struct {
	code   int
	header http.Header
	body   string
}

func (f *fixture) get(user, target string) response {
	f.t.Helper()
	req := httptest.NewRequest("GET", "http://jobq.example"+target, nil)
	if user != "" {
		req.Header.Set("X-User", user)
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return response{rec.Code, rec.Result().Header, rec.Body.String()}
}

func (f *fixture) calls() string {
	b, _ := os.ReadFile(f.rules + ".calls")
	return string(b)
}

// What does not exist and what the visitor may not read get the same
// answer, byte for byte, headers included: paths that try to climb out,
// invalid names, forbidden and missing repositories and jobs.
func TestNotFoundIsOneAnswer(t *testing.T) {
	f := newFixture(t)
	f.job("pub", "refs/heads/master", queue.Succeeded, "pub log\n")
	f.job("secret", "refs/heads/master", queue.Succeeded, "secret log\n")
	want := f.get("", "/nope/")
	if want.code != 404 || want.body != notFoundBody {
		t.Fatalf("missing repository: %d %q", want.code, want.body)
	}
	for _, c := range []struct{ user, target string }{
		{"", "/secret/"}, {"", "/secret/0"}, {"", "/secret/0/log"}, {"", "/secret/0/events"}, {"", "/secret/badge.svg"},
		{"", "/secret/0?json"}, {"", "/secret/?json"},
		{"", "/nope/0"}, {"", "/nope/badge.svg"}, {"", "/pub/7"}, {"", "/pub/7/log"}, {"", "/pub/7/events"},
		{"alice", "/nope/"}, {"alice", "/secret/9"}, {"bob", "/secret/"}, {"bob", "/secret/0"}, {"bob", "/secret/0/events"},
		// Traversal and odd names: never a path on disk.
		{"", "/../secret/"}, {"", "/pub/../secret/"}, {"", "/pub/..%2F..%2Fsecret/"}, {"", "/%2e%2e/%2e%2e/etc/passwd/"},
		{"", "/pub/0/../../secret/0"}, {"alice", "/../../../../etc/passwd/"}, {"alice", "/secret%2F0/"},
		{"", "//secret/"}, {"", "/.secret/"}, {"", "/-x/"}, {"", "/pub/%201"}, {"", "/pub/%00/"}, {"", "/pub%00/"},
		{"", "/pub/x/badge.svg/"}, {"", "/pub/0/log/"},
		// Users gitolite could misread: never asked, never allowed.
		{"-q", "/pub/"}, {"@all", "/secret/"}, {"alice bob", "/secret/"}, {"%", "/secret/"},
	} {
		got := f.get(c.user, c.target)
		if got.code != want.code || got.body != want.body || !reflect.DeepEqual(got.header, want.header) {
			t.Errorf("%s as %q: %d %v %q\nwant the missing repository's answer: %d %v", c.target, c.user, got.code, got.header, got.body, want.code, want.header)
		}
	}
	// A name without its slash is sent to its page, whether or not it
	// exists: the redirect tells nothing either.
	for _, target := range []string{"/secret", "/nope", "/pub/-1", "/pub/99999999999999999999"} {
		got := f.get("", target)
		if got.code != 301 || got.header.Get("Location") != target+"/" {
			t.Errorf("%s: %d %v", target, got.code, got.header)
		}
	}
	if calls := f.calls(); strings.Contains(calls, "-q pub -q") || strings.Contains(calls, "@all") || strings.Contains(calls, "alice bob") {
		t.Errorf("gitolite was asked about a user it could misread:\n%s", calls)
	}
	// The pages that exist do answer, for those who may read them.
	// A signed-in visitor reads what anyone may, too (bob: pub, as gitweb).
	for _, c := range []struct{ user, target string }{{"", "/pub/"}, {"", "/pub/0"}, {"alice", "/secret/0"}, {"alice", "/secret/0/log"}, {"bob", "/pub/0"}, {"bob", "/pub/"}} {
		if got := f.get(c.user, c.target); got.code != 200 {
			t.Errorf("%s as %q: %d %q", c.target, c.user, got.code, got.body)
		}
	}
}

// The overview lists only the repositories the visitor may read, with what
// runs and waits in them.
func TestOverviewShowsOnlyReadable(t *testing.T) {
	f := newFixture(t)
	f.job("pub", "refs/heads/master", queue.Succeeded, "")
	f.job("pub", "refs/heads/master", queue.Running, "x\n")
	f.job("secret", "refs/heads/master", queue.Running, "x\n")
	f.job("secret", "refs/heads/master", queue.Queued, "")
	var anon overviewJSON
	if err := json.Unmarshal([]byte(f.get("", "/?json").body), &anon); err != nil {
		t.Fatal(err)
	}
	if len(anon.Repos) != 1 || anon.Repos[0].Repo != "pub" || len(anon.Running) != 1 || anon.Running[0].Repo != "pub" || len(anon.Waiting) != 0 {
		t.Errorf("anonymous overview: %+v", anon)
	}
	var alice overviewJSON
	json.Unmarshal([]byte(f.get("alice", "/?json").body), &alice)
	if len(alice.Repos) != 2 || len(alice.Running) != 2 || len(alice.Waiting) != 1 || alice.Waiting[0].Repo != "secret" || *alice.Waiting[0].Ahead != 1 {
		t.Errorf("alice's overview: %+v", alice)
	}
	if page := f.get("", "/").body; strings.Contains(page, "secret") || !strings.Contains(page, `href="/pub/1"`) {
		t.Errorf("anonymous overview page:\n%s", page)
	}
}

// Access answers are cached per user and repository, never across users.
func TestAccessCachePerUser(t *testing.T) {
	f := newFixture(t)
	f.job("secret", "refs/heads/master", queue.Succeeded, "")
	for range 3 {
		if got := f.get("alice", "/secret/"); got.code != 200 {
			t.Fatalf("alice: %d", got.code)
		}
		if got := f.get("bob", "/secret/"); got.code != 404 {
			t.Fatalf("bob sees secret: %d", got.code)
		}
	}
	// bob is refused, and then asked for as anyone (gitweb): three
	// questions, each asked once.
	if n := strings.Count(f.calls(), "\n"); n != 3 {
		t.Errorf("%d gitolite calls for two users and gitweb, want 3:\n%s", n, f.calls())
	}
}

// A repository page is a range of IDs counted down from the newest; page
// numbers past the oldest, or too large to count, are not found, never a
// wrapped-around range.
func TestRepoPaging(t *testing.T) {
	f := newFixture(t)
	for range 120 {
		f.job("pub", "refs/heads/master", queue.Succeeded, "")
	}
	ids := func(target string) []int64 {
		var vs []jobview.Job
		r := f.get("", target)
		if err := json.Unmarshal([]byte(r.body), &vs); err != nil {
			t.Fatalf("%s: %d %q", target, r.code, r.body)
		}
		var out []int64
		for _, v := range vs {
			out = append(out, v.ID)
		}
		return out
	}
	if p1 := ids("/pub/?json"); len(p1) != 50 || p1[0] != 119 || p1[49] != 70 {
		t.Errorf("page 1: %v", p1)
	}
	if p3 := ids("/pub/?json&page=3"); len(p3) != 20 || p3[0] != 19 || p3[19] != 0 {
		t.Errorf("page 3: %v", p3)
	}
	// Pruned IDs are missing from their range.
	os.RemoveAll(filepath.Dir(f.store.LogPath("pub", 100)))
	if p1 := ids("/pub/?json"); len(p1) != 49 || p1[19] != 99 {
		t.Errorf("page 1 with job 100 pruned: %v", p1)
	}
	for _, p := range []string{"4", "0", "-1", "999999999999999999", "9223372036854775807", "9223372036854775808", "92233720368547758070", "1e3", "abc", "", "1%20", "%2B1", "%2D1"} {
		r := f.get("", "/pub/?page="+p)
		if p == "" {
			if r.code != 200 {
				t.Errorf("page=: %d", r.code)
			}
			continue
		}
		if r.code != 404 || r.body != notFoundBody {
			t.Errorf("page=%s: %d, want 404", p, r.code)
		}
	}
	if page := f.get("", "/pub/?page=2").body; !strings.Contains(page, "<svg class=\"chart\"") || !strings.Contains(page, `href="/pub/?page=3"`) || !strings.Contains(page, `href="/pub/?page=1"`) {
		t.Errorf("page 2 lacks its chart or links:\n%s", page)
	}
}

// The JSON of the pages has the ssh listing's fields.
func TestJSONFields(t *testing.T) {
	f := newFixture(t)
	f.job("pub", "refs/heads/master", queue.Failed, "log\n")
	var m []map[string]any
	json.Unmarshal([]byte(f.get("", "/pub/?json").body), &m)
	var keys []string
	for k := range m[0] {
		keys = append(keys, k)
	}
	want := "duration_ms exit_code finished_at id new_rev origin queue queued_at ref started_at state user"
	if got := strings.Join(sortStrings(keys), " "); got != want {
		t.Errorf("fields %s, want %s", got, want)
	}
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

// A log's HTML and script are text on the page; the only script is the
// page's own, allowed by its hash.
func TestLogIsText(t *testing.T) {
	f := newFixture(t)
	hostile := "<script>window.pwned=1</script>\n<img src=x onerror=alert(1)>\n\x1b]8;;javascript:alert(1)\x1b\\click\x1b]8;;\x1b\\\n\x1b[31mred\x1b[0m\n</pre><script>alert(2)</script>\n"
	id := f.job("pub", "refs/heads/master", queue.Running, hostile)
	page := f.get("", fmt.Sprintf("/pub/%d", id))
	body := page.body
	if strings.Count(body, "<script") != 1 || strings.Contains(body, "<img") || strings.Contains(body, "javascript:") || strings.Count(body, "</pre>") != 1 {
		t.Errorf("the log's markup reached the page:\n%s", body)
	}
	for _, want := range []string{"&lt;script&gt;window.pwned=1", `<span class="term-fg31">red</span>`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	csp := page.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src "+hash(script)+";") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	if !strings.Contains(body, "<script>"+script+"</script>") {
		t.Errorf("the page's script is not the one the CSP allows")
	}
	raw := f.get("", fmt.Sprintf("/pub/%d/log", id))
	if raw.body != hostile || raw.header.Get("Content-Type") != "text/plain; charset=utf-8" || raw.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("raw log: %v %q", raw.header, raw.body)
	}
}

// Badges: any ref is only compared, never shown or used as a path.
func TestBadgeRefs(t *testing.T) {
	f := newFixture(t)
	f.job("pub", "refs/heads/master", queue.Failed, "")
	f.job("pub", "refs/tags/v1", queue.Succeeded, "")
	for ref, want := range map[string]string{
		"": "succeeded", "master": "failed", "refs/heads/master": "failed", "v1": "succeeded", "refs/tags/v1": "succeeded",
		"nope": "none", "<script>alert(1)</script>": "none", "../../../etc/passwd": "none", "refs/heads/../../x": "none",
		"%26%3C%22'": "none", strings.Repeat("x", 256): "none", "refs/heads/master%0a": "bad",
		"%00": "bad", strings.Repeat("y", 257): "bad", "\u202e": "none",
	} {
		r := f.get("", "/pub/badge.svg?ref="+ref)
		if want == "bad" {
			if r.code != 400 {
				t.Errorf("ref %q: %d", ref, r.code)
			}
			continue
		}
		if r.code != 200 || r.header.Get("Content-Type") != "image/svg+xml" || !strings.Contains(r.body, ">"+want+"</text>") {
			t.Errorf("ref %q: %d %s", ref, r.code, r.body)
		}
		if strings.Contains(r.body, "script") || strings.Contains(r.body, "passwd") {
			t.Errorf("ref %q reached the badge: %s", ref, r.body)
		}
	}
}

// sseEvent is one event of a stream.
type sseEvent struct {
	id, event, data string
}

func readEvents(t *testing.T, body io.Reader, out chan<- sseEvent) {
	sc := bufio.NewScanner(body)
	var ev sseEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != nil || ev.event != "" {
				ev.data = strings.Join(data, "\n")
				out <- ev
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[6:])
		}
	}
	close(out)
}

// A follower gets lines as they are written, resumes after a cut exactly
// where it stopped (Last-Event-ID), and gets the job's end.
func TestEventsResume(t *testing.T) {
	f := newFixture(t)
	f.srv.KeepAlive = 50 * time.Millisecond
	id := f.job("pub", "refs/heads/master", queue.Running, "line 1\n\x1b[32mline 2\x1b[0m\npart")
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	logPath := f.store.LogPath("pub", id)
	appendLog := func(s string) {
		lf, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		lf.WriteString(s)
		lf.Close()
	}
	open := func(lastID string) (<-chan sseEvent, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/pub/%d/events", ts.URL, id), nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("X-Accel-Buffering") != "no" || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Errorf("headers: %v", resp.Header)
		}
		c := make(chan sseEvent, 100)
		go readEvents(t, resp.Body, c)
		stop := func() { cancel(); resp.Body.Close() }
		t.Cleanup(stop)
		return c, stop
	}
	var partials []string
	next := func(c <-chan sseEvent) sseEvent {
		for {
			select {
			case ev := <-c:
				if ev.event == "partial" {
					partials = append(partials, ev.data)
					continue
				}
				return ev
			case <-time.After(10 * time.Second):
				t.Fatal("no event within 10s")
				return sseEvent{}
			}
		}
	}
	var got []string
	c, cut := open("")
	ev := next(c)
	if ev.data != "line 1\n<span class=\"term-fg32\">line 2</span>" || ev.id != "23" {
		// "part" has no newline yet: it waits.
		t.Fatalf("first event %+v", ev)
	}
	got = append(got, ev.data)
	appendLog("ial line 3\n")
	ev = next(c)
	got = append(got, ev.data)
	lastID := ev.id
	cut()
	// Written while the follower is away.
	appendLog("line 4\nline 5\n")
	c, _ = open(lastID)
	appendLog("line 6\n")
	f.store.Update("pub", id, func(j *queue.Job) error {
		j.State, j.FinishedAt = queue.Succeeded, time.Now().UTC()
		return nil
	})
	for {
		ev = next(c)
		if ev.event == "end" {
			break
		}
		got = append(got, ev.data)
	}
	want := "line 1\n<span class=\"term-fg32\">line 2</span>\npartial line 3\nline 4\nline 5\nline 6"
	if all := strings.Join(got, "\n"); all != want {
		t.Errorf("the follower got\n%q\nwant every line once:\n%q", all, want)
	}
	// The unfinished line was shown as it was, without moving the stream
	// on: the whole line came after.
	if len(partials) == 0 || partials[0] != "part" {
		t.Errorf("partial events %q, want \"part\" first", partials)
	}
	var end jobview.Job
	if err := json.Unmarshal([]byte(ev.data), &end); err != nil || end.State != queue.Succeeded {
		t.Errorf("end event %q", ev.data)
	}
}

// A job page shows the tail of a big log, from the start of a line, with
// the offset live following starts at.
func TestJobPageTail(t *testing.T) {
	f := newFixture(t)
	var b strings.Builder
	for i := 0; b.Len() < 2*tailSize; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	id := f.job("pub", "refs/heads/master", queue.Succeeded, b.String()+"the end")
	body := f.get("", fmt.Sprintf("/pub/%d", id)).body
	m := regexp.MustCompile(`data-offset="(\d+)">(line \d+)\n`).FindStringSubmatch(body)
	if m == nil || m[1] != fmt.Sprint(b.Len()+len("the end")) || !strings.Contains(body, "the end\n<span id=\"partial\"></span></pre>") {
		t.Fatalf("tail: %v\n%.500s", m, body)
	}
	if strings.Contains(body, "line 0\n") || !strings.Contains(body, "raw log") || strings.Contains(body, `<code id="L1">`) {
		t.Errorf("the page shows more than the tail")
	}
}

// A CGI program's answers outlive it, in a file per user: the next
// process asks gitolite only about what it was not told, never takes one
// user's answers for another's, and drops what has expired.
func TestAccessCacheFile(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	process := func() *Access { // a fresh process's
		return &Access{Gitolite: f.srv.Access.Gitolite, Env: f.srv.Access.Env, TTL: time.Minute, CacheDir: dir}
	}
	ctx := context.Background()
	calls := func() int { return strings.Count(f.calls(), "\n") }
	if ok, _ := process().CanRead(ctx, "alice", "secret"); !ok || calls() != 1 {
		t.Fatalf("alice secret: %v, %d calls", ok, calls())
	}
	if ok, _ := process().CanRead(ctx, "alice", "secret"); !ok || calls() != 1 {
		t.Errorf("a second process asked again: %d calls", calls())
	}
	if ok, _ := process().CanRead(ctx, "bob", "secret"); ok || calls() != 2 {
		t.Errorf("bob took alice's answer: %v, %d calls", ok, calls())
	}
	if got, _ := process().Readable(ctx, "alice", []string{"secret", "pub", "nope"}); strings.Join(got, " ") != "secret pub" || calls() != 3 {
		t.Errorf("alice's readable: %v, %d calls", got, calls())
	}
	// Expired answers, answers from a longer TTL and garbage are asked anew.
	past, far := time.Now().Add(-time.Second).UnixNano(), time.Now().Add(time.Hour).UnixNano()
	os.WriteFile(filepath.Join(dir, "carol"), []byte(fmt.Sprintf("%d secret 1\n%d pub 1\nx y z\n%d\n", past, far, far)), 0o600)
	if ok, _ := process().CanRead(ctx, "carol", "secret"); ok || calls() != 4 {
		t.Errorf("carol's expired answer was taken: %v, %d calls", ok, calls())
	}
	if ok, _ := process().CanRead(ctx, "carol", "pub"); ok || calls() != 5 {
		t.Errorf("carol's far-future answer was taken: %v, %d calls", ok, calls())
	}
}

// A quiet stream gets keep-alive comments, with the headers a proxy needs.
func TestEventsKeepAlive(t *testing.T) {
	f := newFixture(t)
	f.srv.KeepAlive = 20 * time.Millisecond
	id := f.job("pub", "refs/heads/master", queue.Running, "quiet\n")
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/pub/%d/events", ts.URL, id), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for k, v := range map[string]string{"Content-Type": "text/event-stream", "X-Accel-Buffering": "no", "Cache-Control": "no-cache, no-transform"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	sc := bufio.NewScanner(resp.Body)
	var seen []string
	for sc.Scan() && !strings.HasPrefix(sc.Text(), ": keep-alive") {
		seen = append(seen, sc.Text())
	}
	if sc.Err() != nil || !strings.HasPrefix(sc.Text(), ": keep-alive") {
		t.Fatalf("no keep-alive comment: %v, after %q", sc.Err(), seen)
	}
	if strings.Join(seen, "\n") != "retry: 1000\n\nid: 6\ndata: quiet\n" {
		t.Errorf("before the keep-alive: %q", seen)
	}
}

// Under CGI a live log's stream ends once it has sent what the log holds:
// a stream held open would block the CGI gateway, and with it every page
// and cgit. The browser comes back from the last id.
func TestEventsShortUnderCGI(t *testing.T) {
	f := newFixture(t)
	f.srv.Short = true
	f.srv.KeepAlive = time.Hour
	id := f.job("pub", "refs/heads/master", queue.Running, "one\ntwo\n")
	done := make(chan response, 1)
	go func() { done <- f.get("", fmt.Sprintf("/pub/%d/events", id)) }()
	select {
	case r := <-done:
		if r.code != 200 || r.body != "retry: 700\n\nid: 8\ndata: one\ndata: two\n\n" {
			t.Errorf("stream %d %q", r.code, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of a running job stays open under CGI")
	}
}

// A follower whose read access is taken away stops getting the log at
// the next keep-alive: lines written after the revocation must not
// reach the stream.
func TestEventsEndWhenAccessIsRevoked(t *testing.T) {
	f := newFixture(t)
	f.srv.KeepAlive = 30 * time.Millisecond
	f.srv.Access.TTL = time.Millisecond
	id := f.job("secret", "refs/heads/master", queue.Running, "before\n")
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/secret/%d/events", ts.URL, id), nil)
	req.Header.Set("X-User", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	os.WriteFile(f.rules, []byte("gitweb pub\nalice pub\n"), 0o644) // alice loses secret
	time.Sleep(200 * time.Millisecond)
	os.WriteFile(f.store.LogPath("secret", id), []byte("before\nafter revocation\n"), 0o600)
	body, _ := io.ReadAll(resp.Body) // ends: the stream closed
	if strings.Contains(string(body), "after revocation") {
		t.Errorf("the revoked follower got %q", body)
	}
}

// A stream never starts more than maxReplay before the log's end: one
// request asking from 0 would render a whole big log again, at minutes
// of CPU per GiB.
func TestEventsReplayIsBounded(t *testing.T) {
	f := newFixture(t)
	f.srv.Short = true
	line := strings.Repeat("x", 1023) + "\n"
	id := f.job("pub", "refs/heads/master", queue.Running, strings.Repeat(line, 3*maxReplay/1024))
	r := f.get("", fmt.Sprintf("/pub/%d/events?from=0", id))
	if n := strings.Count(r.body, "data: x"); n != maxReplay/1024 {
		t.Errorf("a stream from 0 sent %d lines, want the last %d", n, maxReplay/1024)
	}
}

// The listener follows at most MaxFollowers logs at once; one more is
// told to come back later.
func TestEventsFollowerCap(t *testing.T) {
	f := newFixture(t)
	f.srv.MaxFollowers = 1
	f.srv.KeepAlive = time.Hour
	id := f.job("pub", "refs/heads/master", queue.Running, "x\n")
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	first, err := http.Get(fmt.Sprintf("%s/pub/%d/events", ts.URL, id))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	bufio.NewReader(first.Body).ReadString('\n') // it is being served
	second, err := http.Get(fmt.Sprintf("%s/pub/%d/events", ts.URL, id))
	if err != nil {
		t.Fatal(err)
	}
	second.Body.Close()
	if second.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a follower over the cap: %d, want 503", second.StatusCode)
	}
}

// A follower whose read access is taken away stops getting the log within
// the access TTL and a keep-alive, however often the job writes: were the
// check put off by each event, a job writing more often than the
// keep-alive would be followed to its end, long after the rule was gone.
func TestEventsEndWhenAccessIsRevokedWhileChatty(t *testing.T) {
	f := newFixture(t)
	f.srv.KeepAlive = 100 * time.Millisecond
	f.srv.Access.TTL = 50 * time.Millisecond
	id := f.job("secret", "refs/heads/master", queue.Running, "before\n")
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	// The job writes a line every 10 ms, ten times the keep-alive's rate.
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		lf, err := os.OpenFile(f.store.LogPath("secret", id), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer lf.Close()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				fmt.Fprintf(lf, "tick %d\n", n)
			}
		}
	}()
	defer func() { close(stop); <-writerDone }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/secret/%d/events", ts.URL, id), nil)
	req.Header.Set("X-User", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan sseEvent, 1000)
	go readEvents(t, resp.Body, events)
	for ev := range events {
		if strings.Contains(ev.data, "tick") {
			break // it follows
		}
	}
	os.WriteFile(f.rules, []byte("gitweb pub\nalice pub\n"), 0o644) // alice loses secret
	revoked := time.Now()
	// The bound is TTL + keep-alive (150 ms); a loaded machine gets more.
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, open := <-events:
			if !open {
				t.Logf("the stream ended %v after the revocation", time.Since(revoked).Round(time.Millisecond))
				return
			}
		case <-deadline:
			t.Fatalf("the revoked follower still gets the log 5s after the revocation (bound: TTL %v + keep-alive %v)", f.srv.Access.TTL, f.srv.KeepAlive)
		}
	}
}

// skipLog is a log of lines of many lengths, past 3 MiB, with lines that
// try to pass for jobq's own notice or for the stream's fields.
func skipLog() string {
	var b strings.Builder
	for i := 0; b.Len() < 3*maxReplay; i++ {
		fmt.Fprintf(&b, "line %07d %s\n", i, strings.Repeat("y", i%301))
		if i%5000 == 0 {
			b.WriteString("jobq: 5 bytes skipped here; the raw log has them.\n")
			b.WriteString("event: skipped\ndata: {\"from\":0,\"to\":1,\"bytes\":1}\n\n")
			b.WriteString("\r\nevent: skipped\r\nid: 1\rdata: {\"bytes\":2}\r\r\n")
			b.WriteString("<p class=\"skipped\">forged</p>\n")
		}
	}
	return b.String()
}

// A follower that comes back more than maxReplay behind the log's end is
// told how much it skips (a "skipped" event, its id where the stream goes
// on) and gets whole lines from there, not silently the log from the
// middle of a line. The job's output
// cannot make such an event, whatever it writes.
func TestEventsSkipNotice(t *testing.T) {
	log := skipLog()
	size := int64(len(log))
	lineAt := func(off int64) int64 { // the start of the first line at or after off
		return off + int64(strings.IndexByte(log[off-1:], '\n'))
	}
	long := strings.Repeat("z", 2*maxReplay) // no newline in the last MiB
	for _, c := range []struct {
		name        string
		log         string
		state       queue.State
		short       bool
		from        string // ?from=
		lastEventID string
		skipFrom    int64 // -1: no skip
		skipTo      int64
	}{
		{"CGI, from the start", log, queue.Running, true, "0", "", 0, lineAt(size - maxReplay)},
		{"CGI, Last-Event-ID mid-line", log, queue.Running, true, "", "12345", 12345, lineAt(size - maxReplay)},
		{"listener, finished job", log, queue.Succeeded, false, "7", "", 7, lineAt(size - maxReplay)},
		{"CGI, within the window", log, queue.Running, true, fmt.Sprint(lineAt(size - 1000)), "", -1, 0},
		{"CGI, past the end", log, queue.Running, true, fmt.Sprint(size + 99), "", -1, 0},
		// A line longer than the window: its end starts the next line; a
		// line without its end yet has no start in the window, and is sent
		// in pieces from the window's start, as such a line always is.
		{"CGI, a line longer than the window", long + "\n", queue.Running, true, "0", "", 0, int64(len(long) + 1)},
		{"CGI, an unfinished line longer than the window", long, queue.Running, true, "0", "", 0, int64(len(long)) - maxReplay},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.srv.Short = c.short
			id := f.job("pub", "refs/heads/master", c.state, c.log)
			target := fmt.Sprintf("/pub/%d/events", id)
			if c.from != "" {
				target += "?from=" + c.from
			}
			req := httptest.NewRequest("GET", "http://jobq.example"+target, nil)
			if c.lastEventID != "" {
				req.Header.Set("Last-Event-ID", c.lastEventID)
			}
			rec := httptest.NewRecorder()
			f.srv.ServeHTTP(rec, req)
			events := make(chan sseEvent, 1<<16)
			readEvents(t, strings.NewReader(rec.Body.String()), events)
			var skipped []sseEvent
			var lines []string
			first := ""
			for ev := range events {
				switch ev.event {
				case "skipped":
					skipped = append(skipped, ev)
				case "":
					if first == "" {
						first = ev.data
					}
					lines = append(lines, strings.Split(ev.data, "\n")...)
				}
			}
			if c.skipFrom < 0 {
				if len(skipped) != 0 {
					t.Fatalf("skipped events %v, want none", skipped)
				}
				return
			}
			if len(skipped) != 1 {
				t.Fatalf("%d skipped events %v, want jobq's one", len(skipped), skipped)
			}
			var n struct{ From, To, Bytes int64 }
			if err := json.Unmarshal([]byte(skipped[0].data), &n); err != nil {
				t.Fatalf("skipped event %q: %v", skipped[0].data, err)
			}
			if n.From != c.skipFrom || n.To != c.skipTo || n.Bytes != c.skipTo-c.skipFrom || skipped[0].id != fmt.Sprint(c.skipTo) {
				t.Errorf("skipped event %+v (id %s), want from %d to %d", n, skipped[0].id, c.skipFrom, c.skipTo)
			}
			if c.log == long {
				return
			}
			if c.log[c.skipTo-1] != '\n' {
				t.Errorf("the stream goes on at %d, not at a line's start", c.skipTo)
			}
			wantFirst, _, _ := strings.Cut(c.log[c.skipTo:], "\n")
			if !strings.HasPrefix(first, wantFirst) {
				t.Errorf("the first line sent is %.80q, want %.80q", first, wantFirst)
			}
			if got, want := len(lines), strings.Count(c.log[c.skipTo:], "\n"); got != want {
				t.Errorf("%d lines sent after the notice, want %d", got, want)
			}
			// What the job wrote to pass for the notice is sent as text.
			body := rec.Body.String()
			if c.log == log && (!strings.Contains(body, "data: jobq: 5 bytes skipped here; the raw log has them.\n") ||
				!strings.Contains(body, "data: event: skipped\n") || !strings.Contains(body, "data: &lt;p class=&quot;skipped&quot;&gt;forged&lt;&#47;p&gt;\n")) {
				i := strings.Index(body, "jobq: 5 bytes")
				t.Errorf("the forged lines are not text in the stream: %q", body[max(i-200, 0):min(i+400, len(body))])
			}
		})
	}
}

// One client may hold MaxFollowersPerClient of the listener's followers;
// one more is refused (429) while other clients still get theirs. A
// client is an authenticated visitor, else an address: the connection's,
// or the proxy's header where one is named: otherwise one client could
// take every place.
func TestEventsClientShare(t *testing.T) {
	f := newFixture(t)
	f.srv.MaxFollowers = 100
	f.srv.MaxFollowersPerClient = 2
	f.srv.KeepAlive = time.Hour
	id := f.job("pub", "refs/heads/master", queue.Running, "x\n")
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	type stream struct {
		code  int
		body  string
		retry string
		close func()
	}
	open := func(ip string, header ...string) stream {
		t.Helper()
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/pub/%d/events", ts.URL, id), nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := from(ip).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		s := stream{code: resp.StatusCode, retry: resp.Header.Get("Retry-After"), close: func() { resp.Body.Close() }}
		if resp.StatusCode == 200 {
			bufio.NewReader(resp.Body).ReadString('\n') // it is being served
			t.Cleanup(s.close)
		} else {
			b, _ := io.ReadAll(resp.Body)
			s.body = string(b)
			resp.Body.Close()
		}
		return s
	}
	want := func(s stream, code int, what string) {
		t.Helper()
		if s.code != code {
			t.Errorf("%s: %d %q, want %d", what, s.code, s.body, code)
		}
		if code == http.StatusTooManyRequests && (s.retry == "" || s.body != "too many live logs followed from your address at once; close some\n") {
			t.Errorf("%s: refused with Retry-After %q and %q", what, s.retry, s.body)
		}
	}
	first := open("127.0.0.1")
	want(first, 200, "127.0.0.1's first")
	want(open("127.0.0.1"), 200, "127.0.0.1's second")
	want(open("127.0.0.1"), http.StatusTooManyRequests, "127.0.0.1's third")
	want(open("127.0.0.2"), 200, "127.0.0.2's first, while 127.0.0.1 holds its share")
	want(open("127.0.0.1", "X-User", "alice"), 200, "alice from 127.0.0.1")
	want(open("127.0.0.1", "X-Forwarded-For", "192.0.2.9"), http.StatusTooManyRequests, "127.0.0.1 naming another address, with no header trusted")
	first.close()
	testenv.WaitUntil(t, "127.0.0.1's first place is given back", 10*time.Second, func() bool {
		s := open("127.0.0.1")
		if s.code == 200 {
			s.close()
		}
		return s.code == 200
	})

	// Behind a proxy that names the visitor's address.
	f.srv.ClientHeader = "X-Real-IP"
	want(open("127.0.0.3", "X-Real-IP", "192.0.2.1"), 200, "192.0.2.1's first")
	want(open("127.0.0.3", "X-Real-IP", "192.0.2.1"), 200, "192.0.2.1's second")
	want(open("127.0.0.3", "X-Real-IP", "192.0.2.1"), http.StatusTooManyRequests, "192.0.2.1's third")
	want(open("127.0.0.3", "X-Real-IP", "192.0.2.2"), 200, "192.0.2.2's first, through the same proxy")
}

// Who counts as one client.
func TestClientKey(t *testing.T) {
	for _, c := range []struct {
		header, remote, user string
		values               []string
		want                 string
	}{
		{"", "192.0.2.1:5555", "", nil, "addr 192.0.2.1"},
		{"", "192.0.2.1:5555", "alice", nil, "user alice"},
		{"", "[2001:db8:1:2:3::1]:5", "", nil, "addr 2001:db8:1:2::/64"},
		{"", "[2001:db8:1:2:ffff::9]:6", "", nil, "addr 2001:db8:1:2::/64"},
		{"", "[::ffff:192.0.2.1]:5", "", nil, "addr 192.0.2.1"},
		{"", "192.0.2.1", "", nil, "addr 192.0.2.1"}, // a CGI gateway's, without a port
		{"", "garbage", "", nil, "addr ?"},
		{"", "192.0.2.1:5", "", []string{"198.51.100.7"}, "addr 192.0.2.1"}, // no header is trusted
		{"X-Forwarded-For", "127.0.0.1:5", "", []string{"203.0.113.5, 198.51.100.7"}, "addr 198.51.100.7"},
		{"X-Forwarded-For", "127.0.0.1:5", "", []string{"203.0.113.5", "198.51.100.8"}, "addr 198.51.100.8"},
		{"X-Forwarded-For", "127.0.0.1:5", "", []string{"evil"}, "addr 127.0.0.1"},
		{"X-Forwarded-For", "127.0.0.1:5", "", []string{""}, "addr 127.0.0.1"},
		{"X-Real-IP", "127.0.0.1:5", "", []string{" 2001:db8::7 "}, "addr 2001:db8::/64"},
		{"X-Real-IP", "127.0.0.1:5", "bob", []string{"198.51.100.7"}, "user bob"},
	} {
		s := &Server{ClientHeader: c.header}
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		for _, v := range c.values {
			r.Header.Add("X-Forwarded-For", v)
			r.Header.Add("X-Real-IP", v)
		}
		user := c.user
		if user == "" {
			user = Anonymous
		}
		if got := s.client(r, user); got != c.want {
			t.Errorf("%s %q from %s as %q: %q, want %q", c.header, c.values, c.remote, c.user, got, c.want)
		}
	}
}
