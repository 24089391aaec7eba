package termsafe

import (
	"bytes"
	"io"
	"unicode/utf8"
)

// Record tells jobq's own lines in a job's log from the job's output
// (queue.Own): a job can write any bytes, "jobq: succeeded" lines too, so
// only a record kept beside the log can say which lines jobq wrote.
type Record interface {
	// Refresh takes in what was recorded since; called after each read
	// of the log.
	Refresh()
	// At returns the lines, each with its newline, that jobq wrote at
	// offset off of the log; legacy: no record covers off (an old job's
	// log), and its lines are shown as they were before records.
	At(off int64) (lines []string, legacy bool)
}

// LogWriter shows a job's log on a terminal as Writer does, the log's
// bytes written to it in order from its start, and tells jobq's lines from
// the job's: a line the record says is jobq's is shown as it is; a line of
// the job's that could pass for one of jobq's (Imitates) starts with
// Marker. So every line shown starting with "jobq:" is jobq's. Lines the
// record does not cover (legacy) are shown as Writer shows them.
type LogWriter struct {
	t         *Writer
	rec       Record
	off       int64 // the log's offset of the next byte written
	lineStart bool
	// hold: the start of a line not yet shown, its offset off-len(hold):
	// a line the record names (want), to compare whole, or the start of
	// a job's line, until Imitates can tell.
	hold []byte
	want []string
	job  bool // hold is a job's line start in a log with a record
	// inJob: the rest of the current line is the job's, in a log with a
	// record; carry: its last bytes, held while they could begin "jobq:".
	inJob bool
	carry []byte
}

// maxHold bounds how much of a job's line start is held to tell whether
// it imitates a line of jobq's; a longer start is shown marked.
const maxHold = 4096

// NewLogWriter returns a LogWriter that writes to w.
func NewLogWriter(w io.Writer, rec Record) *LogWriter {
	return &LogWriter{t: NewWriter(w), rec: rec, lineStart: true}
}

// SetOffset says that the next bytes written are the log's from off (a
// follower that read past a cut log goes back to its last line). What is
// held is shown first.
func (l *LogWriter) SetOffset(off int64) {
	l.settle()
	l.off, l.lineStart = off, true
}

// Note writes a line of jobq's own that is not in the log (a reader's
// remark), on a line of its own.
func (l *LogWriter) Note(line string) error {
	l.settle()
	if !l.lineStart {
		l.t.byte('\n')
	}
	l.t.writeOwn([]byte(line))
	l.lineStart = true
	return l.t.flush()
}

// Write shows p, the log's next bytes.
func (l *LogWriter) Write(p []byte) (int, error) {
	if l.t.err != nil {
		return 0, l.t.err
	}
	n := len(p)
	l.rec.Refresh()
	for len(p) > 0 {
		if l.hold != nil {
			p = l.feed(p)
			continue
		}
		if l.lineStart {
			lines, legacy := l.rec.At(l.off)
			switch {
			case len(lines) > 0:
				l.hold, l.want = []byte{}, lines
				continue
			case !legacy:
				l.hold, l.job = []byte{}, true
				continue
			}
		}
		i := bytes.IndexByte(p, '\n')
		end := len(p)
		if i >= 0 {
			end = i + 1
		}
		if l.inJob {
			l.writeJob(p[:end], -1)
		} else {
			l.t.Write(p[:end])
		}
		l.off += int64(end)
		l.lineStart = i >= 0
		l.inJob = l.inJob && i < 0
		p = p[end:]
	}
	return n, l.t.flush()
}

// feed adds to the held line start what it takes of p, shows it once it
// can tell whose it is, and returns the rest of p.
func (l *LogWriter) feed(p []byte) []byte {
	if l.job {
		// Up to the line's end: Imitates needs no more.
		i := bytes.IndexByte(p, '\n')
		end := len(p)
		if i >= 0 {
			end = i + 1
		}
		end = min(end, maxHold-len(l.hold))
		l.hold = append(l.hold, p[:end]...)
		l.off += int64(end)
		if mark, sure := Imitates(l.hold); sure || len(l.hold) >= maxHold || l.hold[len(l.hold)-1] == '\n' {
			l.release(mark || !sure)
		}
		return p[end:]
	}
	longest := 0
	for _, w := range l.want {
		longest = max(longest, len(w))
	}
	i := bytes.IndexByte(p, '\n')
	end := len(p)
	if i >= 0 {
		end = i + 1
	}
	end = min(end, longest-len(l.hold))
	l.hold = append(l.hold, p[:end]...)
	l.off += int64(end)
	if l.hold[len(l.hold)-1] == '\n' || len(l.hold) >= longest {
		for _, w := range l.want {
			if string(l.hold) == w {
				l.t.writeOwn(l.hold[:len(l.hold)-1])
				l.hold, l.want = nil, nil
				l.lineStart = true
				return p[end:]
			}
		}
		// Not the recorded line: the job's, judged as a job's line start.
		l.want, l.job = nil, true
		if mark, sure := Imitates(l.hold); sure || len(l.hold) >= maxHold || l.hold[len(l.hold)-1] == '\n' {
			l.release(mark || !sure)
		}
	}
	return p[end:]
}

// settle shows what is held when no more of its line comes (the log
// ends, or is read from elsewhere): the job's, even if it began as a
// recorded line does, marked unless it surely imitates nothing.
func (l *LogWriter) settle() {
	if l.hold != nil {
		mark, sure := Imitates(l.hold)
		l.release(mark || !sure)
	}
	if len(l.carry) > 0 {
		l.t.Write(l.carry)
		l.carry = nil
	}
	l.inJob = false
}

// release shows what is held as the job's, marked or not.
func (l *LogWriter) release(mark bool) {
	if l.hold == nil {
		return
	}
	h := l.hold
	l.hold, l.want, l.job = nil, nil, false
	skip := -1
	if mark {
		l.t.writeMarker()
		skip = bytes.Index(h, []byte(ownPrefix)) // the one just marked
	}
	if len(h) > 0 {
		l.writeJob(h, skip)
		l.lineStart = h[len(h)-1] == '\n'
		l.inJob = !l.lineStart
	}
}

// writeJob writes b, a part of a job's line, with Marker before every
// "jobq:" in it but the one at byte skip (-1: none): a terminal wraps a
// long line where the job chooses, and a row of it must not begin as one
// of jobq's lines does. A trailing part of "jobq:" waits in carry for the
// next write; settle writes it.
func (l *LogWriter) writeJob(b []byte, skip int) {
	if len(l.carry) > 0 {
		if skip >= 0 {
			skip += len(l.carry)
		}
		b = append(l.carry, b...)
		l.carry = nil
	}
	for {
		i := bytes.Index(b, []byte(ownPrefix))
		if i < 0 {
			break
		}
		l.t.Write(b[:i])
		if i != skip {
			l.t.writeMarker()
		}
		l.t.Write(b[i : i+len(ownPrefix)])
		b = b[i+len(ownPrefix):]
		if skip >= 0 {
			skip -= i + len(ownPrefix) // below 0 once passed: none left to skip
		}
	}
	k := 0
	for n := min(len(b), len(ownPrefix)-1); n > 0; n-- {
		if string(b[len(b)-n:]) == ownPrefix[:n] {
			k = n
			break
		}
	}
	l.t.Write(b[:len(b)-k])
	l.carry = append([]byte(nil), b[len(b)-k:]...)
}

// Close shows what is held and closes the Writer underneath.
func (l *LogWriter) Close() error {
	l.settle()
	return l.t.Close()
}

// Imitates reports whether a line of a job's output, from its start,
// could pass for one of jobq's once shown: whether its first visible
// characters are "jobq:". Everything that may show as nothing is looked
// past: escape sequences (colour), spaces and controls, and any non-ASCII
// character (zero-width ones, direction marks), and from the first
// visible character on any non-ASCII character matches (a lookalike); so a
// line it marks may look harmless, never the other way round. sure is false while b (the
// line's start so far) is too short to tell.
func Imitates(b []byte) (mark, sure bool) {
	const own = "jobq:"
	i := 0
	for i < len(b) {
		c := b[i]
		switch {
		case c == 0x1b:
			// ESC [ parameters, intermediates, a final byte: CSI; ESC and
			// one byte: anything else.
			if i+1 >= len(b) {
				return false, false
			}
			if b[i+1] != '[' {
				i += 2
				continue
			}
			j := i + 2
			for j < len(b) && b[j] >= 0x20 && b[j] <= 0x3f {
				j++
			}
			if j >= len(b) {
				return false, false
			}
			i = j + 1
		case c == '\n':
			return false, true
		case c <= ' ' || c >= 0x7f:
			i++
		default:
			// From the first visible character on, a non-ASCII character
			// may show as the one wanted ("j\u043ebq:" with a Cyrillic o,
			// a fullwidth colon): it counts as a match.
			rest := b[i:]
			for k := 0; k < len(own); k++ {
				if len(rest) == 0 || !utf8.FullRune(rest) {
					return false, false
				}
				r, size := utf8.DecodeRune(rest)
				if r < utf8.RuneSelf && byte(r) != own[k] {
					return false, true
				}
				rest = rest[size:]
			}
			return true, true
		}
	}
	return false, false
}
