// Package termsafe shows untrusted output, such as a job's log, on a
// terminal without letting it act on the terminal. Control characters are
// made visible (ESC as ^[, BEL as ^G, a C1 control as \u009b, a byte that
// is not UTF-8 as \x9b), so that output cannot set the window title, move
// the cursor, clear the screen or switch character sets. Newline, tab and
// colour (SGR: ESC [ params m) pass, so coloured output stays coloured.
//
// Colour can still hide text (SGR 8, black on black). The one rule that
// keeps jobq's own lines visible: attributes are reset (ESC[0m) before
// every line that starts with "jobq:" and at the end of the stream, when
// a colour passed since the last reset.
package termsafe

import (
	"fmt"
	"io"
	"unicode/utf8"
)

// reset sets the terminal's attributes back to their defaults.
const reset = "\x1b[0m"

// ownPrefix starts the lines jobq writes itself.
const ownPrefix = "jobq:"

// maxParams bounds the parameters of an SGR sequence held while it is
// incomplete; longer is shown, not passed. A 24-bit foreground and
// background colour with attributes takes about 40 bytes.
const maxParams = 64

// chunk is how much output is gathered before it is written on.
const chunk = 32 << 10

type state uint8

const (
	ground state = iota
	escape       // after ESC
	csi          // after ESC [, params in pending
	cr           // after a carriage return
	utf          // inside a multi-byte UTF-8 character, its bytes in pending
)

// Writer filters what is written to it and writes the result on. It keeps
// state between writes, since a sequence may be split across them: call
// Close at the end to write what is still held. It is not safe for
// concurrent use.
type Writer struct {
	w         io.Writer
	state     state
	pending   []byte // an incomplete SGR sequence's params or UTF-8 character
	lineStart bool   // at the start of a line
	prefix    int    // bytes of ownPrefix held at the start of this line
	coloured  bool   // an SGR passed since the last reset
	out       []byte
	err       error
}

// NewWriter returns a Writer that writes filtered output to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, lineStart: true}
}

// Write filters p. It returns len(p) unless writing on failed.
func (t *Writer) Write(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	for i, c := range p {
		t.byte(c)
		if len(t.out) >= chunk {
			if err := t.flush(); err != nil {
				return i + 1, err
			}
		}
	}
	return len(p), t.flush()
}

// Close writes what is held (an incomplete sequence is shown, not passed)
// and resets the attributes if a colour passed. It does not close the
// underlying writer, and the Writer may not be used afterwards.
func (t *Writer) Close() error {
	if t.err != nil {
		return t.err
	}
	t.end()
	if t.coloured {
		t.out = append(t.out, reset...)
		t.coloured = false
	}
	return t.flush()
}

func (t *Writer) flush() error {
	if len(t.out) == 0 {
		return nil
	}
	_, err := t.w.Write(t.out)
	t.out = t.out[:0]
	if err != nil {
		t.err = err
	}
	return err
}

// end shows what is held: the stream ends, or the next byte does not
// continue it.
func (t *Writer) end() {
	t.out = append(t.out, ownPrefix[:t.prefix]...)
	t.prefix = 0
	switch t.state {
	case escape:
		t.out = append(t.out, "^["...)
	case csi:
		t.out = append(t.out, "^[["...)
		t.out = append(t.out, t.pending...)
	case cr:
		t.out = append(t.out, "^M"...)
	case utf:
		for _, b := range t.pending {
			t.out = fmt.Appendf(t.out, `\x%02x`, b)
		}
	}
	if t.state != ground {
		t.lineStart = false // something was shown
	}
	t.state, t.pending = ground, t.pending[:0]
}

// byte takes the next byte of the stream.
func (t *Writer) byte(c byte) {
	switch t.state {
	case escape:
		if c == '[' {
			t.state = csi
			return
		}
		t.end()
	case csi:
		switch {
		case c == 'm':
			t.out = append(t.out, "\x1b["...)
			t.out = append(t.out, t.pending...)
			t.out = append(t.out, 'm')
			// ESC[m and ESC[0m reset; anything else may set an attribute.
			t.coloured = len(t.pending) > 0 && string(t.pending) != "0"
			t.state, t.pending = ground, t.pending[:0]
			return
		case (c >= '0' && c <= '9' || c == ';' || c == ':') && len(t.pending) < maxParams:
			t.pending = append(t.pending, c)
			return
		}
		t.end()
	case cr:
		t.state = ground
		if c == '\n' {
			break // "\r\n" is a newline
		}
		t.out = append(t.out, "^M"...)
	case utf:
		t.pending = append(t.pending, c)
		t.decode()
		return
	}
	t.ground(c)
}

// ground takes a byte outside any sequence.
func (t *Writer) ground(c byte) {
	if t.lineStart && t.prefix == 0 && c == 0x1b {
		// Still at the line's start if this is an SGR: a job's colour
		// cannot keep a "jobq:" after it from being reset.
		t.state = escape
		return
	}
	if t.lineStart {
		if c == ownPrefix[t.prefix] {
			if t.prefix++; t.prefix < len(ownPrefix) {
				return
			}
			if t.coloured {
				t.out = append(t.out, reset...)
				t.coloured = false
			}
			t.out = append(t.out, ownPrefix...)
			t.prefix, t.lineStart = 0, false
			return
		}
		t.out = append(t.out, ownPrefix[:t.prefix]...)
		t.prefix, t.lineStart = 0, false
	}
	switch {
	case c == '\n':
		t.out = append(t.out, c)
		t.lineStart = true
	case c == '\t':
		t.out = append(t.out, c)
	case c == '\r':
		t.state = cr
	case c == 0x1b:
		t.state = escape
	case c < 0x20:
		t.out = append(t.out, '^', c+'@')
	case c == 0x7f:
		t.out = append(t.out, "^?"...)
	case c < 0x80:
		t.out = append(t.out, c)
	default:
		t.state = utf
		t.pending = append(t.pending[:0], c)
		t.decode()
	}
}

// decode shows the UTF-8 character held in pending once it is whole, and
// a byte that cannot start or continue one at once.
func (t *Writer) decode() {
	if !utf8.FullRune(t.pending) {
		return
	}
	r, size := utf8.DecodeRune(t.pending)
	if r == utf8.RuneError && size == 1 {
		// Not UTF-8: show the first byte, read the rest again.
		rest := append([]byte(nil), t.pending[1:]...)
		t.out = fmt.Appendf(t.out, `\x%02x`, t.pending[0])
		t.state, t.pending = ground, t.pending[:0]
		for _, b := range rest {
			t.byte(b)
		}
		return
	}
	if r >= 0x80 && r <= 0x9f {
		t.out = fmt.Appendf(t.out, `\u%04x`, r)
	} else {
		t.out = append(t.out, t.pending...)
	}
	t.state, t.pending = ground, t.pending[:0]
}

// Line makes s safe to show as one field of a line: every control
// character is made visible, newline, tab and ESC included.
func Line(s string) string {
	var b []byte
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = fmt.Appendf(b, `\x%02x`, s[i])
		case r < 0x20:
			b = append(b, '^', byte(r)+'@')
		case r == 0x7f:
			b = append(b, "^?"...)
		case r >= 0x80 && r <= 0x9f:
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return string(b)
}

// Marker starts, on a terminal and on the web page, a line of a job's
// output that could pass for one of jobq's (see Imitates).
const Marker = "[job] "

// writeMarker writes Marker at the start of a line, after resetting the
// attributes if a colour passed: the job's colour cannot hide it.
func (t *Writer) writeMarker() {
	if t.coloured {
		t.out = append(t.out, reset...)
		t.coloured = false
	}
	t.out = append(t.out, Marker...)
}

// writeOwn writes a line of jobq's own (without its newline) at the start
// of a line: attributes reset first, every control character made
// visible, then a newline.
func (t *Writer) writeOwn(line []byte) {
	if t.coloured {
		t.out = append(t.out, reset...)
		t.coloured = false
	}
	t.out = append(t.out, Line(string(line))...)
	t.out = append(t.out, '\n')
	t.lineStart = true
}
