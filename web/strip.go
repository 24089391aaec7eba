package web

// A job's output on the page is text with colours, never links or images.
// terminal-to-html turns control strings into elements: OSC 8 and 1339
// into links (its URL check denies only javascript:), OSC 1337 and 1338
// into images (a same-origin src, which the CSP allows, is a credentialed
// request every visitor's browser makes to a URL the job picks), and an
// APC or a malformed OSC into "*** Error parsing ..." text. So every
// control string (OSC, APC, DCS, PM, SOS) is removed before the screen
// sees it, as termsafe lets none reach a terminal; the text around it,
// a link's text too, stays. CSI sequences (colours, cursor moves within
// the line) pass, each whole within one write, so that the screen's
// parser ends every write outside any sequence: nothing it holds can
// swallow what the renderer writes next (clearLine) or a later line.

// stripState is where the filter is in the stream of one line.
type stripState uint8

const (
	stripGround    stripState = iota
	stripEsc                  // after ESC (held)
	stripSeq                  // ESC and intermediates, or a CSI: held until its final byte
	stripString               // inside a control string: dropped
	stripStringEsc            // inside a control string, after ESC
	stripLong                 // a sequence longer than maxSeq: dropped
)

// maxSeq bounds a sequence held while incomplete (termsafe's maxParams,
// with room for ESC [ and intermediates); a longer one is not a sequence
// the screen would act on, and it is dropped.
const maxSeq = 80

// stripper removes control strings from a line's bytes. Its state carries
// from one write to the next, as a line may come in pieces (a long line is
// sent before its newline); endLine resets it at the line's end, so that
// a control string never outlives its line and memory stays bounded: a
// string's bytes are dropped as they come, only a short sequence is held.
type stripper struct {
	state stripState
	csi   bool   // the held sequence is a CSI (ESC [)
	held  []byte // the incomplete sequence, from its ESC
}

// active reports whether b would not pass unchanged: a sequence is held
// or under way.
func (s *stripper) active() bool { return s.state != stripGround }

// strip appends to out what of b the screen may see, and returns it.
func (s *stripper) strip(out, b []byte) []byte {
	for _, c := range b {
		switch s.state {
		case stripGround:
			if c == 0x1b {
				s.state, s.held = stripEsc, append(s.held[:0], c)
				continue
			}
			out = append(out, c)
		case stripEsc:
			switch {
			case c == ']' || c == '_' || c == 'P' || c == '^' || c == 'X':
				// OSC, APC, DCS, PM, SOS: a control string.
				s.state, s.held = stripString, s.held[:0]
			case c == '[':
				s.state, s.csi, s.held = stripSeq, true, append(s.held, c)
			case c >= 0x20 && c <= 0x2f:
				// An intermediate (ESC ( B): held with its final byte.
				s.state, s.csi, s.held = stripSeq, false, append(s.held, c)
			case c == 0x1b:
				// A new one: the screen drops the lone ESC before it.
			default:
				out = append(out, s.held...)
				out = append(out, c)
				s.state, s.held = stripGround, s.held[:0]
			}
		case stripSeq:
			switch {
			case s.csi && c >= 0x30 && c <= 0x3f, c >= 0x20 && c <= 0x2f:
				if len(s.held) >= maxSeq {
					s.state, s.held = stripLong, s.held[:0]
					continue
				}
				s.held = append(s.held, c)
			case c >= 0x40 && c <= 0x7e || !s.csi && c >= 0x30 && c <= 0x3f:
				out = append(out, s.held...)
				out = append(out, c)
				s.state, s.held = stripGround, s.held[:0]
			default:
				// Broken off: the screen would show what follows its ESC
				// as text; this shows that, whole, and goes on with c.
				out = append(out, s.held[1:]...)
				s.state, s.held = stripGround, s.held[:0]
				out = s.strip(out, []byte{c})
			}
		case stripLong:
			if c >= 0x20 && c <= 0x3f {
				continue
			}
			s.state = stripGround
			if c > 0x7e || c < 0x40 {
				out = s.strip(out, []byte{c})
			}
		case stripString:
			switch c {
			case 0x07: // BEL ends it, as xterm and terminal-to-html take it
				s.state = stripGround
			case 0x1b:
				s.state = stripStringEsc
			}
		case stripStringEsc:
			// ESC \ (ST) ends it; any other ESC is part of it, as
			// terminal-to-html reads it.
			s.state = stripString
			if c == '\\' {
				s.state = stripGround
			}
		}
	}
	return out
}

// endLine ends the line: what is held or under way is dropped, as the
// screen would show none of it.
func (s *stripper) endLine() { s.state, s.held = stripGround, s.held[:0] }
