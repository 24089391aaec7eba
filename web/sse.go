package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// maxEvent bounds the log bytes one event carries, and so what each
// follower holds (a hundred followers share one listener); maxPartial is
// how long a line without its newline may grow before it is sent
// unfinished.
const (
	maxEvent   = 32 << 10
	maxPartial = maxEvent / 2
)

// pollEvery is how often a follower looks where inotify is unavailable.
const pollEvery = 500 * time.Millisecond

// events streams a job's log as Server-Sent Events: each event is whole
// lines as HTML, its id the log offset after them, so that a browser that
// reconnects (Last-Event-ID) resumes exactly there. An "end" event carries
// the job's fields when it has ended. The stream wakes on the job
// directory's changes (one shared inotify watch), not by polling.
func (s *Server) events(w http.ResponseWriter, r *http.Request, repo string, id int64) error {
	ctx, user := r.Context(), s.user(r)
	if _, err := s.job(ctx, user, repo, id); err != nil {
		return err
	}
	offset := int64(0)
	from := r.Header.Get("Last-Event-ID")
	if from == "" {
		from = r.URL.Query().Get("from")
	}
	if n, ok := parseID(from); ok {
		offset = n
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no") // nginx: no buffering of the stream
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := io.WriteString(w, "retry: 1000\n\n"); err != nil {
		return nil
	}
	flush()

	path := s.Store.LogPath(repo, id)
	wake, stop, watching := s.Watcher.Subscribe(filepath.Dir(path))
	defer stop()
	keepAlive := s.KeepAlive
	if keepAlive <= 0 {
		keepAlive = 15 * time.Second
	}
	ka := time.NewTimer(keepAlive)
	defer ka.Stop()

	render := newLineRenderer()
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var pending []byte // read, not yet sent: the start of a line
	buf := make([]byte, maxEvent)
	for {
		// The record first: once it is final, the log is whole (the
		// worker writes the result line before the final state).
		j, err := s.Store.Job(repo, id)
		if err != nil {
			return nil // removed meanwhile: the stream ends
		}
		final := j.State.Final()
		if f == nil {
			if f, err = os.Open(path); err == nil {
				if fi, err := f.Stat(); err == nil && offset > fi.Size() {
					offset = fi.Size()
				}
			} else {
				f = nil
			}
		}
		for f != nil {
			n, err := f.ReadAt(buf[:maxEvent-min(len(pending), maxEvent/2)], offset+int64(len(pending)))
			pending = append(pending, buf[:n]...)
			var html string
			var sent int
			if i := bytes.LastIndexByte(pending, '\n'); i >= 0 {
				sent = i + 1
			} else if len(pending) >= maxPartial {
				sent = len(pending)
			}
			if sent > 0 {
				html = render.Render(pending[:sent])
				if err := sendLines(w, offset+int64(sent), html); err != nil {
					return nil // the visitor left
				}
				offset += int64(sent)
				pending = append(pending[:0], pending[sent:]...)
				ka.Reset(keepAlive)
			}
			if n == 0 || err != nil {
				break
			}
		}
		if final {
			if len(pending) > 0 {
				if err := sendLines(w, offset+int64(len(pending)), render.RenderEnd(pending)); err != nil {
					return nil
				}
			}
			data, _ := json.Marshal(row{Repo: repo, ID: id, Job: j}.view(time.Now()))
			fmt.Fprintf(w, "event: end\ndata: %s\n\n", data)
			flush()
			return nil
		}
		flush()
		var poll <-chan time.Time
		if !watching {
			poll = time.After(pollEvery)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll:
		case <-ka.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			flush()
			ka.Reset(keepAlive)
		}
	}
}

// sendLines writes one event: the lines as data, the offset as its id.
func sendLines(w io.Writer, offset int64, html string) error {
	var b strings.Builder
	b.WriteString("id: ")
	b.WriteString(strconv.FormatInt(offset, 10))
	b.WriteByte('\n')
	for line := range strings.Lines(strings.TrimSuffix(html, "\n")) {
		b.WriteString("data: ")
		// A carriage return would end the data line early.
		b.WriteString(strings.ReplaceAll(strings.TrimSuffix(line, "\n"), "\r", ""))
		b.WriteByte('\n')
	}
	if html == "" || html == "\n" {
		b.WriteString("data: \n")
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}
