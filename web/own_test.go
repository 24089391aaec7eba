package web

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/jobq/jobq/queue"
)

// writeOwnLog writes a job's log as the worker does: jobq's lines through
// queue.WriteOwn (recorded), the job's bytes as they are.
func writeOwnLog(t *testing.T, path string, steps ...string) {
	t.Helper()
	os.Remove(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, s := range steps {
		if i%2 == 0 {
			if _, err := queue.WriteOwn(f, s); err != nil {
				t.Fatal(err)
			}
		} else {
			f.WriteString(s)
		}
	}
}

// On the job page and in its live stream, jobq's recorded lines are of
// class "jobq", which the job's output (escaped) cannot make, and a job's
// line that shows "jobq:" first is marked, wrapped parts of a wide line
// too; a stream that resumes mid-log tells them apart the same.
func TestPageTellsJobqLines(t *testing.T) {
	f := newFixture(t)
	f.srv.Short = true
	id := f.job("pub", "refs/heads/master", queue.Failed, "")
	path := f.store.LogPath("pub", id)
	fake := "jobq: succeeded, exit code 0\n"
	wide := strings.Repeat("x", maxCols) + "jobq: succeeded\n"
	writeOwnLog(t, path,
		"jobq: job 0 of pub\n", "one\n"+fake+"\x1b[31mjobq: red\x1b[0m\n\u200bjobq: zw\n"+`<span class="jobq">jobq: tag</span>`+"\n"+wide+"half",
		"jobq: failed, exit code 1, after 1s\n", "")
	const own = `<span class="jobq">`
	mark := markerHTML
	checks := func(where, html string) {
		t.Helper()
		for _, want := range []string{
			own + "jobq: job 0 of pub</span>",
			"one\n" + mark + "jobq: succeeded, exit code 0\n",
			mark + `<span class="term-fg31">jobq: red</span>`,
			mark + "\u200bjobq: zw",
			"&lt;span class=&quot;jobq&quot;&gt;jobq: tag&lt;&#47;span&gt;\n",
			mark + "jobq: succeeded\n",
			"half\n" + own + "jobq: failed, exit code 1, after 1s</span>\n",
		} {
			if !strings.Contains(html, want) {
				t.Errorf("%s lacks %q", where, want)
			}
		}
		if n := strings.Count(html, own); n != 2 {
			t.Errorf("%s: %d lines of jobq's, want 2", where, n)
		}
	}
	page := f.get("", fmt.Sprintf("/pub/%d", id))
	checks("the page", unnumbered(page.body))
	stream := f.get("", fmt.Sprintf("/pub/%d/events?from=0", id))
	checks("the stream", strings.ReplaceAll(stream.body, "data: ", ""))
	// From the result line's offset: it is still jobq's.
	b, _ := os.ReadFile(path)
	from := strings.LastIndex(string(b), "jobq: failed")
	resumed := f.get("", fmt.Sprintf("/pub/%d/events?from=%d", id, from))
	if !strings.Contains(resumed.body, "data: "+own+"jobq: failed") {
		t.Errorf("resumed at the result line: %s", resumed.body)
	}
	// An old job's log, without a record, is shown as it was.
	os.Remove(path[:len(path)-len("log")] + "own")
	if old := unnumbered(f.get("", fmt.Sprintf("/pub/%d", id)).body); strings.Contains(old, own+"jobq") || strings.Contains(old, mark) ||
		!strings.Contains(old, "one\njobq: succeeded, exit code 0\n") {
		t.Errorf("an old log:\n%s", old)
	}
}

// numbered matches what numberLines adds to the page's log.
var numbered = regexp.MustCompile(`<code id="L[0-9]+">|</code>`)

// unnumbered is a page's log without its line numbers' elements.
func unnumbered(html string) string { return numbered.ReplaceAllString(html, "") }
