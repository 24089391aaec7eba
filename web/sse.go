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
	"time"

	"github.com/jobq/jobq/queue"
)

// maxEvent bounds the log bytes one event carries, and so what each
// follower holds (a hundred followers share one listener); maxPartial is
// how long a line without its newline may grow before it is sent
// unfinished.
const (
	maxEvent   = 32 << 10
	maxPartial = maxEvent / 2
)

// maxReplay is the most of a log a stream sends from before its end.
const maxReplay = 1 << 20

// follow takes one of MaxFollowers places; false: none is free.
func (s *Server) follow() bool {
	s.followersOnce.Do(func() {
		n := s.MaxFollowers
		if n <= 0 {
			n = 256
		}
		s.followers = make(chan struct{}, n)
	})
	select {
	case s.followers <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *Server) unfollow() { <-s.followers }

// pollEvery is how often a follower looks where inotify is unavailable.
const pollEvery = 500 * time.Millisecond

// events streams a job's log as Server-Sent Events: each event is whole
// lines as HTML, its id the log offset after them, so that a browser that
// reconnects (Last-Event-ID) resumes exactly there. A "partial" event
// carries the line being written, not yet ended, as it shows now. An "end" event carries
// the job's fields when it has ended; a "skipped" event, first, says what
// of the log the stream does not send (more than maxReplay behind). The
// stream wakes on the job directory's changes (one shared inotify watch),
// not by polling.
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
	if !s.Short {
		// A client's share first: one client holding every place would
		// leave none for the others.
		client := s.client(r, user)
		if !s.shares.take(client, s.perClient()) {
			w.Header().Set("Retry-After", "10")
			http.Error(w, "too many live logs followed from your address at once; close some", http.StatusTooManyRequests)
			return nil
		}
		defer s.shares.give(client)
		if !s.follow() {
			w.Header().Set("Retry-After", "10")
			http.Error(w, "too many live logs followed at once; try again later", http.StatusServiceUnavailable)
			return nil
		}
		defer s.unfollow()
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
	retry := "retry: 1000\n\n"
	if s.Short {
		retry = "retry: 700\n\n" // each visit is a short request: come back soon
	}
	if _, err := io.WriteString(w, retry); err != nil {
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
	// Access is asked again on a clock of its own, which no event resets:
	// a job that writes more often than the keep-alive would otherwise be
	// followed to its end by a visitor whose read access was taken away.
	// gitolite's answers are kept for the access TTL, so the follower stops
	// at most TTL + keepAlive after the change.
	recheck := time.NewTicker(keepAlive)
	defer recheck.Stop()
	mayRead := func() bool {
		_, err := s.job(ctx, user, repo, id)
		return err == nil
	}

	own := queue.OpenOwn(path)
	defer own.Close()
	render := newLineRenderer().withOwn(own, offset)
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var pending []byte // read, not yet sent: the start of a line
	var shown []byte   // the unfinished line last sent as a preview
	buf := make([]byte, maxEvent)
	var html, ev bytes.Buffer // reused: a hundred followers make little garbage
	// The record is read again only when it was replaced (queue/doc.go:
	// repos/NAME/ID/job.json, replaced atomically), not at every line.
	record := filepath.Join(filepath.Dir(path), "job.json")
	var j *queue.Job
	var seen os.FileInfo
	for {
		// The record first: once it is final, the log is whole (the
		// worker writes the result line before the final state).
		fi, err := os.Stat(record)
		if err != nil {
			return nil // removed meanwhile: the stream ends
		}
		if seen == nil || !os.SameFile(fi, seen) || !fi.ModTime().Equal(seen.ModTime()) || fi.Size() != seen.Size() {
			if j, err = s.Store.Job(repo, id); err != nil {
				return nil
			}
			seen = fi
		}
		final := j.State.Final()
		if f == nil {
			if f, err = os.Open(path); err == nil {
				if fi, err := f.Stat(); err == nil {
					size := fi.Size()
					offset = min(offset, size)
					// A stream starts at most maxReplay before the log's
					// end: rendering a whole big log again costs minutes of
					// CPU per GiB, and the raw log has it all. The follower
					// is told what it misses, and lines start whole.
					if from := size - maxReplay; offset < from {
						start := lineStart(f, from, size, buf)
						if err := sendSkipped(w, &ev, offset, start); err != nil {
							return nil
						}
						offset = start
					}
					render.withOwn(own, offset)
				}
			} else {
				f = nil
			}
		}
		for f != nil {
			n, err := f.ReadAt(buf[:maxEvent-min(len(pending), maxEvent/2)], offset+int64(len(pending)))
			pending = append(pending, buf[:n]...)
			var sent int
			if i := bytes.LastIndexByte(pending, '\n'); i >= 0 {
				sent = i + 1
			} else if len(pending) >= maxPartial {
				sent = len(pending)
			}
			if sent > 0 {
				html.Reset()
				render.Append(&html, pending[:sent])
				if err := sendLines(w, &ev, offset+int64(sent), html.Bytes()); err != nil {
					return nil // the visitor left
				}
				offset += int64(sent)
				pending = append(pending[:0], pending[sent:]...)
				shown = shown[:0] // the page cleared its unfinished line
				ka.Reset(keepAlive)
			}
			// A log written faster than it is sent keeps this loop going:
			// access is asked here too when its time has come.
			select {
			case <-recheck.C:
				if !mayRead() {
					return nil
				}
			default:
			}
			if n == 0 || err != nil {
				break
			}
		}
		if !final && len(pending) > 0 && !bytes.Equal(pending, shown) {
			// The line being written, as it shows now: a progress line
			// ("\r" and no newline) would otherwise not show until done.
			html.Reset()
			render.Partial(&html, pending)
			if err := sendPartial(w, &ev, html.Bytes()); err != nil {
				return nil
			}
			shown = append(shown[:0], pending...)
			ka.Reset(keepAlive)
		}
		if final {
			if len(pending) > 0 {
				html.Reset()
				render.AppendEnd(&html, pending)
				if err := sendLines(w, &ev, offset+int64(len(pending)), html.Bytes()); err != nil {
					return nil
				}
			}
			data, _ := json.Marshal(row{Repo: repo, ID: id, Job: j}.view(time.Now()))
			fmt.Fprintf(w, "event: end\ndata: %s\n\n", data)
			flush()
			return nil
		}
		flush()
		if s.Short {
			return nil // all there is, for now: the browser comes back
		}
		var poll <-chan time.Time
		if !watching {
			poll = time.After(pollEvery)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll:
		case <-recheck.C:
			if !mayRead() {
				return nil
			}
		case <-ka.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			flush()
			ka.Reset(keepAlive)
		}
	}
}

// lineStart returns where the first line that starts at or after off
// starts, looking no further than end; buf is the caller's. A line longer
// than what is looked through has no start there: off is returned, and the
// line is sent in pieces, as such a line always is (maxPartial).
func lineStart(f *os.File, off, end int64, buf []byte) int64 {
	// off starts a line when the byte before it is a newline.
	for pos := off - 1; pos < end; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), end-pos)], pos)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return pos + int64(i) + 1
		}
		pos += int64(n)
		if n == 0 || err != nil {
			break
		}
	}
	return off
}

// sendSkipped writes the event that tells a follower that the log from
// offset from to offset to is not sent: a "skipped" event, which the page
// shows outside the log, where no job's output can be. Its id is where
// the stream goes on, so that a reconnection is not told twice.
func sendSkipped(w io.Writer, ev *bytes.Buffer, from, to int64) error {
	ev.Reset()
	fmt.Fprintf(ev, "event: skipped\nid: %d\ndata: {\"from\":%d,\"to\":%d,\"bytes\":%d}\n\n", to, from, to, to-from)
	_, err := w.Write(ev.Bytes())
	return err
}

// sendPartial writes a "partial" event: the line not yet ended, as HTML
// that replaces the one sent before. It has no id: the stream resumes
// after the last whole lines, and sends it again.
func sendPartial(w io.Writer, ev *bytes.Buffer, html []byte) error {
	ev.Reset()
	ev.WriteString("event: partial\n")
	writeData(ev, html)
	ev.WriteByte('\n')
	_, err := w.Write(ev.Bytes())
	return err
}

// sendLines writes one event: the lines as data, the offset as its id. ev
// is the caller's buffer, reused.
func sendLines(w io.Writer, ev *bytes.Buffer, offset int64, html []byte) error {
	ev.Reset()
	ev.WriteString("id: ")
	ev.WriteString(strconv.FormatInt(offset, 10))
	ev.WriteByte('\n')
	writeData(ev, html)
	ev.WriteByte('\n')
	_, err := w.Write(ev.Bytes())
	return err
}

// writeData writes html as an event's data lines, one per line.
func writeData(ev *bytes.Buffer, html []byte) {
	html = bytes.TrimSuffix(html, []byte("\n"))
	if len(html) == 0 {
		ev.WriteString("data: \n")
	}
	for len(html) > 0 {
		i := bytes.IndexByte(html, '\n')
		if i < 0 {
			i = len(html)
		}
		ev.WriteString("data: ")
		// A carriage return would end the data line early (the renderer
		// leaves none; this makes sure).
		if line := html[:i]; bytes.IndexByte(line, '\r') < 0 {
			ev.Write(line)
		} else {
			ev.Write(bytes.ReplaceAll(line, []byte("\r"), nil))
		}
		ev.WriteByte('\n')
		html = html[min(i+1, len(html)):]
	}
}
