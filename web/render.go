package web

import (
	"bytes"
	"io"
	"os"
	"strings"

	terminal "github.com/buildkite/terminal-to-html/v3"
)

// lineRenderer turns a log's bytes into HTML lines, colours and `\r`
// progress lines rendered (terminal-to-html), keeping the terminal's state
// (the colour in effect) from one piece to the next. It is given whole
// lines: a line is HTML once its newline is written.
type lineRenderer struct {
	screen *terminal.Screen
	out    strings.Builder
	// held: the screen still holds the last line written, already given
	// out; its scroll-out, when the next line begins, is dropped.
	held bool
}

// maxCols is the width a line wraps at; wider lines go on as new lines.
const maxCols = 4096

func newLineRenderer() *lineRenderer {
	r := &lineRenderer{}
	// One line of screen: each newline scrolls the line it ends out to
	// the callback, so what is written comes out as it completes.
	s, err := terminal.NewScreen(terminal.WithSize(maxCols, 1), terminal.WithMaxSize(maxCols, 1))
	if err != nil {
		panic(err) // constant sizes: cannot happen
	}
	s.Timestamps = false
	s.ScrollOutFunc = func(line string) {
		if r.held {
			r.held = false
			return
		}
		r.out.WriteString(line)
	}
	r.screen = s
	return r
}

// Render renders b, which ends in a newline, and returns its lines as HTML,
// one per line, each ending in "\n".
func (r *lineRenderer) Render(b []byte) string {
	r.out.Reset()
	if len(b) == 0 {
		return ""
	}
	r.screen.Write(b)
	// The last line stays on the screen until the next one begins: give
	// it out now, and drop it when it scrolls out.
	r.out.WriteString(r.screen.AsHTMLWithTimestamps(false))
	r.out.WriteByte('\n')
	r.held = true
	return r.out.String()
}

// RenderEnd renders the rest of a finished log (which may lack its final
// newline).
func (r *lineRenderer) RenderEnd(b []byte) string {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b[:len(b):len(b)], '\n')
	}
	return r.Render(b)
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
}

// readTail renders the tail of the log at path. Of a running job's log
// only whole lines are rendered, the rest follows live; of a finished
// job's, everything to the end.
func readTail(path string, finished bool) (logTail, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return logTail{}, nil // not started yet
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
	r := newLineRenderer()
	var html string
	if finished {
		html = r.RenderEnd(buf)
	} else {
		i := bytes.LastIndexByte(buf, '\n')
		end = start + int64(i+1)
		html = r.Render(buf[:i+1])
	}
	return logTail{HTML: html, Start: start, End: end, Size: size}, nil
}
