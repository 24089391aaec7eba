package deliver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jobq/jobq/internal/jobview"
	"github.com/jobq/jobq/internal/termsafe"
	"github.com/jobq/jobq/notify"
	"github.com/jobq/jobq/queue"
)

// Payload is what a webhook receives and an exec destination reads on its
// standard input: the job as jobq REPO ID --json shows it (package
// jobview: nothing of the host), plus its repository, what the
// notification tells, the idempotency key and the web view's link.
type Payload struct {
	jobview.Job
	Repository string `json:"repository"`
	Event      string `json:"event"` // the state, "broken" or "fixed"
	Key        string `json:"idempotency_key"`
	Link       string `json:"link,omitempty"`
}

// payload is job j's notification r as JSON. It is made from the job's
// final record alone, so every try sends the same bytes.
func payload(j *queue.Job, r *notify.Record) ([]byte, error) {
	p := Payload{Job: jobview.Of(j.ID, j, nil, "", j.FinishedAt), Repository: j.Repo, Event: r.Event, Key: r.Key, Link: link(j)}
	return json.Marshal(p)
}

// link is the job's page in the web view, if JOBQ_WEB_URL names it.
func link(j *queue.Job) string {
	if j.Options.WebURL == "" {
		return ""
	}
	return fmt.Sprintf("%s/%s/%d", strings.TrimSuffix(j.Options.WebURL, "/"), j.Repo, j.ID)
}

// tailLines is how many of the log's last lines a mail shows, and
// tailBytes how much of the log's end is read for them.
const (
	tailLines = 50
	tailBytes = 64 << 10
	lineRunes = 500 // a longer line is cut: mail is read, not parsed
)

// headerText makes s safe as (part of) a header's value: control
// characters, CR and LF among them, made visible (a ref or repository
// cannot add a header), at most n runes, non-ASCII as RFC 2047 words.
func headerText(s string, n int) string {
	return mime.QEncoding.Encode("utf-8", cut(termsafe.Line(s), n))
}

// cut shortens s to n runes, the last "…" if it cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) > n {
		return string([]rune(s)[:n-1]) + "…"
	}
	return s
}

// mailMessage is job j's notification r as a message for sendmail -t to
// the addresses of dest (mailto:A,B): header fields, then the job's
// fields, the link, and the last lines of its log (already masked; its
// terminal sequences removed).
func mailMessage(s *queue.Store, j *queue.Job, r *notify.Record, dest string, now time.Time) []byte {
	_, addrs, _ := strings.Cut(dest, ":")
	var b bytes.Buffer
	state := string(j.State)
	if r.Event != state {
		state = r.Event + " (" + state + ")"
	}
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(strings.Split(addrs, ","), ", "))
	// A long ref is cut, not the job and state after it.
	fmt.Fprintf(&b, "Subject: %s\r\n", headerText(fmt.Sprintf("[jobq] %s %s job %d %s", j.Repo, cut(termsafe.Line(j.Ref), 100), j.ID, state), 250))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <jobq.%s@%s>\r\n", messageID(r.Key), hostname())
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n")
	b.WriteString("Auto-Submitted: auto-generated\r\n")
	fmt.Fprintf(&b, "X-Jobq-Idempotency-Key: %s\r\n", headerText(r.Key, 200))
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	io.WriteString(qp, mailBody(s, j, r))
	qp.Close()
	return b.Bytes()
}

func mailBody(s *queue.Store, j *queue.Job, r *notify.Record) string {
	var b strings.Builder
	field := func(name, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-10s %s\n", name+":", termsafe.Line(v))
		}
	}
	state := string(j.State)
	if j.ExitCode != nil {
		state += fmt.Sprintf(", exit code %d", *j.ExitCode)
	}
	if r.Event != string(j.State) {
		state += " (" + r.Event + ")"
	}
	field("Repository", j.Repo)
	field("Job", fmt.Sprint(j.ID))
	field("State", state)
	field("Reason", j.Error)
	field("Ref", j.Ref)
	field("Revision", j.NewRev)
	field("Pushed by", j.User)
	field("Queue", j.Queue)
	field("Host", j.Host)
	field("Queued", j.QueuedAt.Local().Format(queue.TimeFormat))
	if !j.StartedAt.IsZero() {
		field("Started", j.StartedAt.Local().Format(queue.TimeFormat))
		field("Duration", jobview.Duration(j.Duration(j.FinishedAt)))
	}
	field("Link", link(j))
	b.WriteString("\nThe log's last lines:\n\n")
	for _, l := range logTail(s.LogPath(j.Repo, j.ID)) {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// logTail is the last tailLines lines of the log at path, as plain text.
// A job writes any bytes it likes, "jobq: succeeded" lines too: as on a
// terminal and the web page (termsafe.LogWriter), a line of the job's
// that could pass for one of jobq's starts with termsafe.Marker, told
// from jobq's own lines by the record beside the log (queue.Own). A log
// older than records shows its lines as they are.
func logTail(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return []string{"(no log)"}
	}
	defer f.Close()
	own := queue.OpenOwn(path)
	defer own.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	off := max(fi.Size()-tailBytes, 0)
	buf := make([]byte, fi.Size()-off)
	n, _ := f.ReadAt(buf, off)
	// The record of the lines read is written before them: read after.
	own.Refresh()
	text := string(buf[:n])
	if off > 0 {
		// The first line read is likely a part of one.
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			text, off = text[i+1:], off+int64(i+1)
		}
	}
	type line struct {
		off  int64
		text string // with its newline, if it has one
	}
	var lines []line
	for text != "" {
		l := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			l = text[:i+1]
		}
		lines = append(lines, line{off, l})
		off += int64(len(l))
		text = text[len(l):]
	}
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = plain(strings.TrimSuffix(l.text, "\n"))
		if jobs(own, l.off, l.text) {
			if mark, _ := termsafe.Imitates([]byte(out[i] + "\n")); mark {
				out[i] = termsafe.Marker + out[i]
			}
		}
	}
	return out
}

// jobs reports whether the line text at offset off of a log is the job's
// in a log with a record of jobq's lines: not one the record names there.
func jobs(own *queue.Own, off int64, text string) bool {
	recorded, legacy := own.At(off)
	if legacy {
		return false
	}
	return !slices.Contains(recorded, text)
}

// plain is a log's line without its terminal sequences (colour, cursor
// moves, titles) and control characters, a carriage return's overwritten
// text included, valid UTF-8, at most lineRunes runes.
func plain(l string) string {
	if i := strings.LastIndexByte(strings.TrimRight(l, "\r"), '\r'); i >= 0 {
		l = l[i+1:] // what a terminal shows of a progress line
	}
	l = strings.ToValidUTF8(l, "\uFFFD")
	var b strings.Builder
	for i := 0; i < len(l); {
		c := l[i]
		switch {
		case c == 0x1b && i+1 < len(l) && l[i+1] == '[': // CSI: parameters, then a final byte
			i += 2
			for i < len(l) && (l[i] < 0x40 || l[i] > 0x7e) {
				i++
			}
			i++
		case c == 0x1b && i+1 < len(l) && l[i+1] == ']': // OSC: to BEL or ST
			i += 2
			for i < len(l) && l[i] != 0x07 && !(l[i] == 0x1b && i+1 < len(l) && l[i+1] == '\\') {
				i++
			}
			if i < len(l) && l[i] == 0x1b {
				i++
			}
			i++
		case c == 0x1b:
			i += 2 // ESC and the one character it takes
		case c == '\t':
			b.WriteByte(c)
			i++
		case c < 0x20 || c == 0x7f:
			i++
		default:
			r, size := utf8.DecodeRuneInString(l[i:])
			if r < 0x80 || r > 0x9f { // no C1 controls either
				b.WriteRune(r)
			}
			i += size
		}
	}
	s := b.String()
	if utf8.RuneCountInString(s) > lineRunes {
		s = string([]rune(s)[:lineRunes-1]) + "…"
	}
	return s
}

// messageID makes the idempotency key a Message-ID's left part: the same
// for every try, so that a mailbox can drop a second copy.
func messageID(key string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '.'
	}, key)
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return messageID(h)
}
