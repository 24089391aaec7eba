package web

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	terminal "github.com/buildkite/terminal-to-html/v3"
	"github.com/jobq/jobq/internal/termsafe"
	"github.com/jobq/jobq/queue"
)

// lineRenderer turns a log's bytes into HTML lines, colours and `\r`
// progress lines rendered (terminal-to-html), keeping the terminal's state
// (the colour in effect) from one line to the next. It is given whole
// lines: a line is HTML once its newline is written.
//
// The screen is one line high and is given one line at a time, without
// its newline, then cleared: what it shows is that line. (A newline would
// leave the line on the screen until the next one begins.)
type lineRenderer struct {
	screen  *terminal.Screen
	wrapped strings.Builder // the parts of a line wider than the screen
	// plain: no colour is in effect, so a line of plain text renders as
	// its escaped self, without the screen (see plainText).
	plain bool
	// strip removes control strings before the screen sees them
	// (strip.go); stripped is its output, reused.
	strip    stripper
	stripped []byte

	// own, if set, is the record of jobq's lines in the log (queue.Own):
	// off is the log's offset of the next byte rendered, lineStart
	// whether it starts a line. A line the record names is rendered as
	// jobq's (class "jobq"), which job output, escaped, cannot produce;
	// a job's line that shows "jobq:" first gets termsafe.Marker.
	own       *queue.Own
	off       int64
	lineStart bool

	// preview renders unfinished lines (Partial), made when first needed.
	preview *lineRenderer
}

// maxCols is the width a line wraps at; wider lines go on as new lines.
const maxCols = 4096

// clearLine returns to the start of the line and erases it. The cursor
// goes up first: a CSI H moves it to a second row, from which the line
// would scroll out into the next one's HTML.
var clearLine = []byte("\x1b[A\r\x1b[2K")

func newLineRenderer() *lineRenderer { return &lineRenderer{plain: true, lineStart: true} }

// withOwn has r tell jobq's lines from the job's with own, the log's bytes
// rendered from offset off (the start of a line).
func (r *lineRenderer) withOwn(own *queue.Own, off int64) *lineRenderer {
	r.own, r.off, r.lineStart = own, off, true
	return r
}

// screenOf makes the screen when a line first needs it: plain text never
// does, and a follower of a plain log holds none.
func (r *lineRenderer) screenOf() *terminal.Screen {
	if r.screen == nil {
		s, err := terminal.NewScreen(terminal.WithSize(maxCols, 1), terminal.WithMaxSize(maxCols, 1))
		if err != nil {
			panic(err) // constant sizes: cannot happen
		}
		s.Timestamps = false
		s.ScrollOutFunc = func(line string) { r.wrapped.WriteString(line) }
		r.screen = s
	}
	return r.screen
}

// Render renders b, which ends in a newline, and returns its lines as HTML,
// one per line, each ending in "\n".
func (r *lineRenderer) Render(b []byte) string {
	var out bytes.Buffer
	r.Append(&out, b)
	return out.String()
}

// Append renders b as Render does, onto out: a follower reuses one buffer.
// b is the log's next bytes; its last line may lack its newline (sent
// unfinished, continued by the next b).
func (r *lineRenderer) Append(out *bytes.Buffer, b []byte) {
	if r.own != nil {
		r.own.Refresh() // after the log's bytes were read: their lines are recorded
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		n := i + 1
		if i < 0 {
			i, n = len(b), len(b)
		}
		if r.own == nil {
			r.line(out, b[:i])
		} else {
			r.judged(out, b[:i], i < len(b))
		}
		if i < len(b) {
			r.strip.endLine()
		}
		b = b[n:]
	}
}

// judged renders one line as line does, telling jobq's from the job's by
// the record; whole: the line's newline is there.
func (r *lineRenderer) judged(out *bytes.Buffer, b []byte, whole bool) {
	off, start := r.off, r.lineStart
	r.off += int64(len(b))
	if whole {
		r.off++
	}
	r.lineStart = whole
	lines, legacy := r.own.At(off)
	if start && whole {
		for _, l := range lines {
			if len(l) == len(b)+1 && l[:len(b)] == string(b) {
				out.WriteString(`<span class="jobq">`)
				writeEscaped(out, []byte(termsafe.Line(string(b))))
				out.WriteString("</span>\n")
				return
			}
		}
	}
	from := out.Len()
	r.line(out, b)
	if legacy {
		return
	}
	// Each line the page shows (a wide line wraps into several) that
	// shows "jobq:" first is marked.
	html := out.Bytes()[from:]
	marked := false
	if bytes.IndexByte(html[:len(html)-1], '\n') < 0 {
		marked = imitatesHTML(html) // one line, as most are
	} else {
		for l := range bytes.Lines(html) {
			marked = marked || imitatesHTML(l)
		}
	}
	if !marked {
		return
	}
	rendered := append([]byte(nil), html...)
	out.Truncate(from)
	for l := range bytes.Lines(rendered) {
		if imitatesHTML(l) {
			out.WriteString(markerHTML)
		}
		out.Write(l)
	}
}

// markerHTML is termsafe.Marker on the page.
const markerHTML = `<span class="mark">` + termsafe.Marker + `</span>`

// imitatesHTML reports whether a rendered line of a job's could pass for
// one of jobq's: whether its first visible characters are "jobq:". As
// termsafe.Imitates does, it looks past what may show as nothing: tags,
// spaces, character references, any non-ASCII character.
func imitatesHTML(b []byte) bool {
	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c == '<':
			j := bytes.IndexByte(b[i:], '>')
			if j < 0 {
				return false
			}
			i += j + 1
		case c == '&':
			j := bytes.IndexByte(b[i:], ';')
			if j < 0 {
				return false
			}
			i += j + 1
		case c <= ' ' || c >= 0x7f:
			i++
		default:
			return bytes.HasPrefix(b[i:], []byte("jobq:"))
		}
	}
	return false
}

// line renders one line, without its newline.
func (r *lineRenderer) line(out *bytes.Buffer, b []byte) {
	if r.plain && !r.strip.active() && len(b) <= maxCols && plainText(b) {
		writePlainLine(out, b)
		return
	}
	if r.strip.active() || bytes.IndexByte(b, 0x1b) >= 0 {
		r.stripped = r.strip.strip(r.stripped[:0], b)
		b = r.stripped
	}
	if bytes.IndexByte(b, 0x1b) >= 0 || bytes.Contains(b, []byte("\u009b")) {
		r.plain = endsPlain(b, r.plain)
	}
	if hasTruecolour(b) {
		b = quantiseTruecolour(b)
	}
	r.wrapped.Reset()
	screen := r.screenOf()
	screen.Write(b)
	html := screen.AsHTMLWithTimestamps(false)
	screen.Write(clearLine)
	if html == "" {
		html = "&nbsp;" // as the screen shows an empty line
	}
	out.WriteString(r.wrapped.String())
	out.WriteString(html)
	out.WriteByte('\n')
}

// resetState ends any colour in effect, and the line.
var resetState = []byte("\x1b[0m\x1b[A\r\x1b[2K")

// Partial renders b, the start of a line whose newline is not written
// yet (a progress line that a job rewrites with "\r"), onto out, as the
// line shows now: a preview that changes nothing of what r renders next.
// It is the job's (jobq writes whole lines), so it is marked when it
// shows "jobq:" first. The caller bounds b (maxPartial). A colour in
// effect from the lines before is not carried into the preview: the line,
// once whole, is rendered with it.
func (r *lineRenderer) Partial(out *bytes.Buffer, b []byte) {
	if r.preview == nil {
		r.preview = newLineRenderer()
	}
	p := r.preview
	// b goes on from where r is: inside a control string, if r is.
	p.strip.state, p.strip.csi = r.strip.state, r.strip.csi
	p.strip.held = append(p.strip.held[:0], r.strip.held...)
	from := out.Len()
	p.line(out, b)
	p.strip.endLine()
	if p.screen != nil {
		p.screen.Write(resetState)
	}
	p.plain = true
	rendered := append([]byte(nil), out.Bytes()[from:]...)
	out.Truncate(from)
	for l := range bytes.Lines(rendered) {
		if imitatesHTML(l) {
			out.WriteString(markerHTML)
		}
		out.Write(l)
	}
}

// RenderEnd renders the rest of a finished log (which may lack its final
// newline).
func (r *lineRenderer) RenderEnd(b []byte) string {
	var out bytes.Buffer
	r.AppendEnd(&out, b)
	return out.String()
}

// AppendEnd renders as RenderEnd does, onto out.
func (r *lineRenderer) AppendEnd(out *bytes.Buffer, b []byte) {
	if r.own != nil {
		r.Append(out, b) // a last line without its newline is the job's
		return
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b[:len(b):len(b)], '\n')
	}
	r.Append(out, b)
}

// The fast path: terminal-to-html costs about 60 ns a byte (16 MB/s),
// which a hundred followers of a busy job cannot afford; most of a log is
// plain text, which it renders as the text, escaped. So text with no
// escape sequence, no control character but newline, no C1 control and
// valid UTF-8 is escaped directly, while no colour is in effect.
// The tests check that both paths agree.

// plainText reports whether b renders as its escaped text.
func plainText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for i, c := range b {
		switch {
		case c < 0x20 && c != '\n', c == 0x7f:
			return false
		case c == 0xc2 && i+1 < len(b) && b[i+1] >= 0x80 && b[i+1] <= 0x9f:
			return false // U+0080 to U+009F: C1 controls
		}
	}
	return true
}

// sgr matches a colour sequence.
var sgr = regexp.MustCompile(`\x1b\[([0-9;:]*)m`)

// endsPlain reports whether b, written when plain was the state, leaves
// no colour in effect: its last colour sequence, if any, is a reset (b is
// stripped: no link is ever in effect). Anything it cannot tell (a C1
// control) counts as not plain.
func endsPlain(b []byte, plain bool) bool {
	if bytes.Contains(b, []byte("\u009b")) {
		return false
	}
	if m := sgr.FindAllSubmatch(b, -1); len(m) > 0 {
		p := string(m[len(m)-1][1])
		plain = p == "" || strings.Trim(p, "0") == ""
	}
	return plain
}

// writePlainLine writes a line of plain text as the screen renders it:
// escaped, trailing spaces dropped, an empty line a no-break space.
func writePlainLine(w *bytes.Buffer, b []byte) {
	b = bytes.TrimRight(b, " ")
	if len(b) == 0 {
		w.WriteString("&nbsp;\n")
		return
	}
	writeEscaped(w, b)
	w.WriteByte('\n')
}

// writeEscaped writes b escaped as terminal-to-html escapes text.
func writeEscaped(w *bytes.Buffer, b []byte) {
	start := 0
	for i, c := range b {
		var esc string
		switch c {
		case '&':
			esc = "&amp;"
		case '\'':
			esc = "&#39;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '"':
			esc = "&quot;"
		case '/':
			esc = "&#47;"
		default:
			continue
		}
		w.Write(b[start:i])
		w.WriteString(esc)
		start = i + 1
	}
	w.Write(b[start:])
}

// tailSize is how much of a log the job page renders: a 1 GiB log is never
// read whole, its tail is shown with a link to the raw log.
const tailSize = 256 << 10

// logTail is the part of a log a page shows: from Start (the start of a
// line) to End (after the last whole line, or the end of a finished log).
type logTail struct {
	HTML       string
	Start, End int64
	Size       int64 // the log's size when read
	// Numbered: the page shows the log from its start, each line in a
	// <code id="LN"> (an anchor, #L120); NextLine is the next line's N. A
	// tail is not numbered: its first line's number would cost reading
	// the whole log.
	Numbered bool
	NextLine int
}

// numberLines puts each line of html (lines as the renderer writes them)
// in an element of its own whose id is its number, from 1; it returns the
// next number. The elements are <code>, which no rendered output has (its
// text is escaped), so the page's lines are told from what is in them.
func numberLines(html string) (string, int) {
	var b strings.Builder
	b.Grow(len(html) + strings.Count(html, "\n")*24)
	n := 1
	for l := range strings.Lines(html) {
		b.WriteString(`<code id="L`)
		b.WriteString(strconv.Itoa(n))
		b.WriteString(`">`)
		b.WriteString(strings.TrimSuffix(l, "\n"))
		b.WriteString("</code>\n")
		n++
	}
	return b.String(), n
}

// readTail renders the tail of the log at path. Of a running job's log
// only whole lines are rendered, the rest follows live; of a finished
// job's, everything to the end.
func readTail(path string, finished bool) (logTail, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return logTail{Numbered: true, NextLine: 1}, nil // not started yet
	}
	if err != nil {
		return logTail{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return logTail{}, err
	}
	size := fi.Size()
	start := max(size-tailSize, 0)
	buf := make([]byte, size-start)
	n, err := f.ReadAt(buf, start)
	if err != nil && err != io.EOF {
		return logTail{}, err
	}
	buf = buf[:n]
	if start > 0 {
		// Begin at a line: after the first newline of the tail.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			start, buf = start+int64(i)+1, buf[i+1:]
		}
	}
	end := start + int64(len(buf))
	own := queue.OpenOwn(path)
	defer own.Close()
	r := newLineRenderer().withOwn(own, start)
	var html string
	if finished {
		html = r.RenderEnd(buf)
	} else {
		i := bytes.LastIndexByte(buf, '\n')
		end = start + int64(i+1)
		html = r.Render(buf[:i+1])
	}
	t := logTail{HTML: html, Start: start, End: end, Size: size}
	if start == 0 {
		t.HTML, t.NextLine = numberLines(html)
		t.Numbered = true
	}
	return t, nil
}
