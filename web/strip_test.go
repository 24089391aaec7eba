package web

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobq/jobq/queue"
)

// hostileStrings are control strings a job can write to make the page
// show links, images or the renderer's error text. Each hides the word
// "private" (a URL the job picks), which must never reach the page.
var hostileStrings = []struct{ name, in, text string }{
	{"osc8 data link", "\x1b]8;;data:text/html,<script>private</script>\x1b\\click\x1b]8;;\x1b\\", "click"},
	{"osc8 phishing link", "\x1b]8;;https://evil.example/private\x1b\\jobq: sign in again\x1b]8;;\x1b\\", "jobq: sign in again"},
	{"osc8 bel", "\x1b]8;id=1;https://evil.example/private\x07link\x1b]8;;\x07 after", "link after"},
	{"osc1338 image", "\x1b]1338;url=/private/0/log;alt=x\x07", ""},
	{"osc1337 image", "\x1b]1337;File=name=cHJpdmF0ZS5wbmc=;inline=1:cHJpdmF0ZQ==\x07", ""},
	{"osc1337 error", "\x1b]1337;File=name=private;inline=1:eA==\x07", ""},
	{"osc1339 link", "\x1b]1339;url=https://evil.example/private;content=docs\x07", ""},
	{"apc", "\x1b_bk;t=private\x07text", "text"},
	{"apc error", "\x1b_bk;t=private\x1b\\text", "text"},
	{"dcs", "\x1bPqprivate\x1b\\text", "text"},
	{"pm and sos", "\x1b^private\x1b\\\x1bXprivate\x07text", "text"},
	{"unterminated", "text\x1b]1338;url=/private/0/log;alt=x", "text"},
	{"esc inside", "\x1b]8;;https://evil.example/\x1b[31mprivate\x1b\\text", "text"},
}

// assertText fails unless html is text: no element but the colour spans,
// nothing of a control string, no error of the renderer's.
func assertText(t *testing.T, what, html string) {
	t.Helper()
	for _, bad := range []string{"<a", "<img", "href", "src=", "private", "Error parsing", "\x1b"} {
		if strings.Contains(html, bad) {
			t.Errorf("%s: %q in %q", what, bad, html)
		}
	}
}

// renderers returns the two ways lines are rendered: without a record of
// jobq's lines, and with one (the job page and its stream), both fresh.
func renderers(t *testing.T) map[string]func() *lineRenderer {
	path := filepath.Join(t.TempDir(), "log")
	return map[string]func() *lineRenderer{
		"plain": newLineRenderer,
		"judged": func() *lineRenderer {
			own := queue.OpenOwn(path)
			t.Cleanup(func() { own.Close() })
			return newLineRenderer().withOwn(own, 0)
		},
	}
}

// A job's control strings show as nothing on the page (their text
// around, a link's text too, stays), whole, in a preview, and split
// anywhere across the reads of a stream; nothing of them comes back on a
// later line.
func TestLogControlStringsAreRemoved(t *testing.T) {
	for rname, newR := range renderers(t) {
		for _, c := range hostileStrings {
			t.Run(rname+"/"+c.name, func(t *testing.T) {
				r := newR()
				got := r.Render([]byte(c.in + "\nnext\n"))
				assertText(t, "line", got)
				if want := strings.TrimSpace(c.text); want != "" && !strings.Contains(got, want) {
					t.Errorf("line %q lacks its text %q", got, want)
				}
				if !strings.HasSuffix(got, "\nnext\n") || strings.Count(got, "\n") != 2 {
					t.Errorf("the next line is not itself: %q", got)
				}
				var out bytes.Buffer
				r.Partial(&out, []byte(c.in))
				assertText(t, "partial", out.String())
				// Split: the first part sent as a piece of a long line,
				// the rest previewed, then ended; then the next line.
				for i := 1; i < len(c.in); i++ {
					r := newR()
					var html bytes.Buffer
					r.Append(&html, []byte(c.in[:i]))
					r.Partial(&html, []byte(c.in[i:]))
					r.Append(&html, []byte(c.in[i:]+"\n"))
					after := html.Len()
					r.Append(&html, []byte("next\n"))
					assertText(t, fmt.Sprintf("split at %d", i), html.String())
					if got := html.String()[after:]; got != "next\n" {
						t.Errorf("split at %d: the next line is %q", i, got)
					}
				}
			})
		}
	}
}

// Colours and "\r" work as before around a removed control string, and a
// cursor move to another row brings nothing back on the next line.
func TestLogKeepsColoursWithoutStrings(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"colour after string", "\x1b]8;;https://x.example/\x07\x1b[31mred\x1b[0m\n", `<span class="term-fg31">red</span>` + "\n"},
		{"colour inside link", "\x1b]8;;https://x.example/\x1b\\\x1b[32mgreen\x1b]8;;\x1b\\\x1b[0m\n", `<span class="term-fg32">green</span>` + "\n"},
		{"carriage return", "10%\r\x1b]0;title\x07100%\n", "100%\n"},
		{"title", "\x1b]0;private title\x07build\n", "build\n"},
		{"truecolour", "\x1b]8;;u\x07\x1b[38;2;255;0;0mred\x1b[0m\n", `<span class="term-fgx196">red</span>` + "\n"},
		{"cursor home", "\x1b[31mabc\x1b[H\ndef\n", `<span class="term-fg31">abc</span>` + "\n" + `<span class="term-fg31">def</span>` + "\n"},
		{"cursor home then text", "abc\x1b[Hxyz\ndef\n", "abc\nxyz\ndef\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := newLineRenderer().Render([]byte(c.in)); got != c.want {
				t.Errorf("%q: got %q, want %q", c.in, got, c.want)
			}
		})
	}
}

// The filter's output, piece by piece: a CSI split across pieces is held
// and passed whole; a control string is dropped across pieces and ends at
// the line's end; held sequences are bounded.
func TestStripper(t *testing.T) {
	long := "\x1b[" + strings.Repeat("1;", maxSeq) + "m"
	for _, c := range []struct {
		name   string
		pieces []string
		want   []string
	}{
		{"plain", []string{"abc"}, []string{"abc"}},
		{"sgr split", []string{"a\x1b[3", "1mb"}, []string{"a", "\x1b[31mb"}},
		{"esc split", []string{"a\x1b", "[0mb"}, []string{"a", "\x1b[0mb"}},
		{"osc split", []string{"a\x1b]8;;htt", "p://x\x1b", "\\b"}, []string{"a", "", "b"}},
		{"st split", []string{"\x1b]0;t\x1b", "x\x07b"}, []string{"", "b"}},
		{"charset", []string{"\x1b(", "Bx"}, []string{"", "\x1b(Bx"}},
		{"broken csi", []string{"\x1b[1\x07x"}, []string{"[1\x07x"}},
		{"esc esc", []string{"\x1b\x1b[31mx"}, []string{"\x1b[31mx"}},
		{"overlong", []string{long + "x"}, []string{"x"}},
		{"overlong split", []string{long[:maxSeq+5], long[maxSeq+5:] + "x"}, []string{"", "x"}},
		{"lone esc", []string{"a\x1bb"}, []string{"a\x1bb"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var s stripper
			for i, p := range c.pieces {
				if got := string(s.strip(nil, []byte(p))); got != c.want[i] {
					t.Errorf("piece %d %q: got %q, want %q", i, p, got, c.want[i])
				}
			}
			s.endLine()
			if s.active() || len(s.held) != 0 {
				t.Errorf("state left after the line: %+v", s)
			}
		})
	}
	// A control string's bytes are dropped as they come: nothing held.
	var s stripper
	s.strip(nil, []byte("\x1b]1337;File=name=eA==;inline=1:"+strings.Repeat("A", 1<<20)))
	if cap(s.held) > maxSeq+2 {
		t.Errorf("held %d bytes of a control string", cap(s.held))
	}
}

// The job page shows a hostile log's control strings as nothing, and its
// live stream too, with the sequence split where the stream cuts a long
// line.
func TestJobPageShowsNoLinksOrImages(t *testing.T) {
	f := newFixture(t)
	f.srv.Short = true
	var log strings.Builder
	for _, c := range hostileStrings {
		log.WriteString(c.in + "\n")
	}
	id := f.job("pub", "refs/heads/master", queue.Succeeded, log.String())
	page := f.get("", fmt.Sprintf("/pub/%d", id)).body
	from, to := strings.Index(page, `<pre class="log"`), strings.LastIndex(page, "</pre>")
	if from < 0 || to < from {
		t.Fatalf("no log on the page")
	}
	pre := page[from:to]
	pre = pre[strings.IndexByte(pre, '>'):]
	assertText(t, "job page", pre)
	for _, c := range hostileStrings {
		if c.text != "" && !strings.Contains(pre, c.text) {
			t.Errorf("the page lacks %q", c.text)
		}
	}
	assertText(t, "stream", f.get("", fmt.Sprintf("/pub/%d/events", id)).body)
	for _, cut := range []int{2, 9, 14, 28} {
		img := "\x1b]1338;url=/private/0/log;alt=x\x07"
		long := strings.Repeat("x", maxEvent-cut) + img + "after"
		running := f.job("pub", "refs/heads/master", queue.Running, long)
		body := f.get("", fmt.Sprintf("/pub/%d/events", running)).body
		assertText(t, fmt.Sprintf("stream cut at %d", cut), body)
		if !strings.Contains(body, "event: partial\ndata: after\n") {
			t.Errorf("cut at %d: the preview is not the line's rest: %q", cut, body[max(len(body)-200, 0):])
		}
		finished := f.job("pub", "refs/heads/master", queue.Failed, long+"\nnext\n")
		body = f.get("", fmt.Sprintf("/pub/%d/events", finished)).body
		assertText(t, fmt.Sprintf("finished stream cut at %d", cut), body)
		if !strings.Contains(body, "data: after\ndata: next\n") {
			t.Errorf("cut at %d: %q", cut, body[max(len(body)-200, 0):])
		}
	}
}
