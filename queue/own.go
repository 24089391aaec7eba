package queue

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A job writes any bytes it likes into its log, "jobq: succeeded" lines
// included, so nothing in the log itself can mark jobq's own lines (the
// header, the waiting lines, the adoption notice, the result line). They
// are recorded beside it instead, in repos/NAME/ID/own: one line per line
// of jobq's, "OFFSET QUOTED", its offset in the log and its text (with
// its newline, Go-quoted). Readers show a line of the log as jobq's only
// if the record has that very text at that very offset.
//
// The record is written before the line: a reader that has read a line
// from the log finds its record. A crash between the two leaves a record
// of a line the log lacks; whatever comes at that offset later (the next
// worker's notice, the job's output) is shown as jobq's only if it is the
// recorded text, which is jobq's word. So a crash can make a line of
// jobq's look like the job's (shown marked), never the job's like jobq's.
//
// A log that began before records were kept (an old job) has none, or,
// if a worker that keeps them adopted it, a first line "from OFFSET":
// before that offset its lines are judged as they were, by their prefix.

// ownName is the record's name in the job's directory, beside log.
const ownName = "own"

// WriteOwn appends text, lines of jobq's each ending in a newline, to the
// job's log on a line of its own (after a newline if the log ends within
// a line), each recorded first (see above). It returns the bytes it wrote
// to the log; a line whose record cannot be written (no inode left for
// the record's file, say) is written all the same, shown as the job's
// rather than lost, and the error says so. Only one process may write jobq's lines to a log at a time
// (the job's worker); the job may write at the same time (a line it
// writes in between leaves the rest unrecognised, shown as the job's).
func WriteOwn(log *os.File, text string) (int, error) {
	fi, err := log.Stat()
	if err != nil {
		return 0, fmt.Errorf("log: %w", err)
	}
	off := fi.Size()
	pos, lead := off, ""
	if off > 0 {
		b := make([]byte, 1)
		if _, err := log.ReadAt(b, off-1); err == nil && b[0] != '\n' {
			pos, lead = off+1, "\n" // ends the job's line: not a line of jobq's
		}
	}
	path := filepath.Join(filepath.Dir(log.Name()), ownName)
	var rec []byte
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) && off > 0 {
		rec = fmt.Appendf(rec, "from %d\n", off)
	}
	for rest := text; rest != ""; {
		line := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rec = strconv.AppendInt(rec, pos, 10)
		rec = append(rec, ' ')
		rec = strconv.AppendQuote(rec, line)
		rec = append(rec, '\n')
		pos += int64(len(line))
		rest = rest[len(line):]
	}
	recErr := appendRecord(path, rec)
	n, err := io.WriteString(log, lead+text)
	if err == nil && recErr != nil {
		err = fmt.Errorf("record of jobq's lines: %w", recErr)
	}
	return n, err
}

func appendRecord(path string, rec []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(rec)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Own reads a log's record of jobq's lines (see WriteOwn), as the log is
// read: Refresh after each read of the log, then At for each line's
// offset. Not safe for concurrent use.
type Own struct {
	path  string
	f     *os.File
	read  int64  // bytes of the record taken in
	rest  []byte // the start of a record line still being written
	lines map[int64][]string
	from  int64 // no record of the lines before this offset
	buf   []byte
}

// OpenOwn prepares to read the record of the log at logPath; it reads
// nothing until Refresh.
func OpenOwn(logPath string) *Own {
	return &Own{path: filepath.Join(filepath.Dir(logPath), ownName), from: -1}
}

// Close lets the record's file go.
func (o *Own) Close() error {
	if o.f == nil {
		return nil
	}
	return o.f.Close()
}

// Refresh takes in what was recorded since the last call: one read of
// the end of a small file. Lines jobq wrote before the log's bytes that
// were read are recorded by then.
func (o *Own) Refresh() {
	if o.f == nil {
		f, err := os.Open(o.path)
		if err != nil {
			return // none yet: an old job's log, or no line of jobq's yet
		}
		o.f, o.lines = f, map[int64][]string{}
		o.from = 0
	}
	if o.buf == nil {
		o.buf = make([]byte, 4096)
	}
	for {
		n, err := o.f.ReadAt(o.buf, o.read)
		o.read += int64(n)
		o.take(o.buf[:n])
		if n < len(o.buf) || err != nil {
			return
		}
	}
}

// take parses record bytes; a record line without its newline yet is kept
// for the next read.
func (o *Own) take(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			o.rest = append(o.rest, b...)
			return
		}
		line := b[:i]
		if len(o.rest) > 0 {
			line = append(o.rest, line...)
			o.rest = o.rest[:0]
		}
		b = b[i+1:]
		if n, ok := bytes.CutPrefix(line, []byte("from ")); ok {
			if v, err := strconv.ParseInt(string(n), 10, 64); err == nil {
				o.from = v
			}
			continue
		}
		num, text, ok := bytes.Cut(line, []byte(" "))
		off, err := strconv.ParseInt(string(num), 10, 64)
		if !ok || err != nil {
			continue // not a record line: never one of jobq's
		}
		if s, err := strconv.Unquote(string(text)); err == nil {
			o.lines[off] = append(o.lines[off], s)
		}
	}
}

// At says what jobq wrote at offset off of the log: the lines recorded
// there (each with its newline; a line of the log is jobq's if it is one
// of them), or legacy when the log has no record of that part (an old
// job's log): its lines are judged by their prefix, as before records.
func (o *Own) At(off int64) (lines []string, legacy bool) {
	if o.from < 0 || off < o.from {
		return nil, true
	}
	return o.lines[off], false
}
