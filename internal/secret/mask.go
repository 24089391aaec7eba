package secret

import (
	"bytes"
	"io"
	"sort"
)

// Mask is what a Masker writes in place of a value.
const Mask = "***"

// maxWindow bounds the window of the search (the shortest pattern's
// length, below): the shifts must fit a byte, and a longer window skips
// little more.
const maxWindow = 128

// tableSize is the number of hashes of a block: small enough for the
// shift table to stay in the first-level cache, and one hash for each
// block of two ASCII bytes; two blocks with one hash only make the window
// slide less far.
const tableSize = 1 << 14

// Masker is an io.Writer that writes to w what is written to it, with
// every occurrence of a value replaced by Mask (see the package doc for
// which patterns a value gives). It holds back only a possible start of a
// value, at most the longest pattern's length less one byte, until the
// next Write tells whether it is one; Flush writes what it holds. A Masker
// is not safe for concurrent use.
//
// The search is Wu and Manber's multi-pattern search: a window of the
// shortest pattern's length slides over the output, and a table indexed by
// the window's last two bytes says how far it may slide without passing a
// place where some pattern could begin. Output with no value in it is
// mostly skipped over several bytes at a time, and a place is compared
// with patterns only where its window's end is that of one.
type Masker struct {
	w       io.Writer
	pats    [][]byte
	window  int               // the shortest pattern's length, at most maxWindow
	block   int               // 2 bytes, or 1 for a window of 1
	shift   *[tableSize]uint8 // by block's hash: how far the window may slide
	bucket  *[tableSize][]int // by block's hash: the patterns whose window ends with it
	first   [256]bool         // the patterns' first bytes
	pending []byte            // held back: the output from a possible start of a value
	out     []byte            // masked output being assembled
	err     error
}

// Patterns are what a Masker for values replaces: each non-empty value
// whole, and each line of MinLen bytes or more of a value of several lines
// (without its "\n", and also without a "\r" before it), deduplicated.
func Patterns(values [][]byte) [][]byte {
	seen := map[string]bool{}
	var pats [][]byte
	add := func(p []byte) {
		if len(p) > 0 && !seen[string(p)] {
			seen[string(p)] = true
			pats = append(pats, bytes.Clone(p))
		}
	}
	for _, v := range values {
		add(v)
		if !bytes.Contains(v, []byte("\n")) {
			continue
		}
		for _, line := range bytes.Split(v, []byte("\n")) {
			for _, l := range [][]byte{line, bytes.TrimSuffix(line, []byte("\r"))} {
				if len(l) >= MinLen {
					add(l)
				}
			}
		}
	}
	// Longest first: where several match at one place, the longest wins.
	sort.SliceStable(pats, func(i, j int) bool { return len(pats[i]) > len(pats[j]) })
	return pats
}

// NewMasker returns a Masker writing to w that masks values. With no
// values it writes through unchanged.
func NewMasker(w io.Writer, values [][]byte) *Masker {
	m := &Masker{w: w, pats: Patterns(values)}
	if len(m.pats) == 0 {
		return m
	}
	m.window = maxWindow
	for _, p := range m.pats {
		m.window = min(m.window, len(p))
		m.first[p[0]] = true
	}
	m.block = min(2, m.window)
	m.shift = new([tableSize]uint8)
	for i := range m.shift {
		m.shift[i] = uint8(m.window - m.block + 1)
	}
	m.bucket = new([tableSize][]int)
	for i, p := range m.pats {
		// Each block of the pattern's window, by where it ends (j).
		for j := m.block - 1; j < m.window; j++ {
			h := m.hash(p, j)
			m.shift[h] = min(m.shift[h], uint8(m.window-1-j))
		}
		h := m.hash(p, m.window-1)
		m.bucket[h] = append(m.bucket[h], i)
	}
	return m
}

// hash is the hash of the block of b that ends at index j.
func (m *Masker) hash(b []byte, j int) int {
	return (int(b[j-m.block+1])<<7 ^ int(b[j])) & (tableSize - 1)
}

// Write masks p into the writer, holding back a possible start of a value
// at its end. It returns len(p), or the writer's error.
func (m *Masker) Write(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	if len(m.pats) == 0 {
		return m.w.Write(p)
	}
	buf := p
	if len(m.pending) > 0 {
		m.pending = append(m.pending, p...)
		buf = m.pending
	}
	hold := m.mask(buf, false)
	// Keep what is held; buf may be m.pending itself (copy moves overlaps).
	rest := buf[hold:]
	if len(m.pending) > 0 {
		m.pending = m.pending[:copy(m.pending, rest)]
	} else {
		m.pending = append(m.pending[:0], rest...)
	}
	if m.err != nil {
		return 0, m.err
	}
	return len(p), nil
}

// Flush writes what is held back, masked: the output ends here.
func (m *Masker) Flush() error {
	if m.err != nil {
		return m.err
	}
	if len(m.pending) > 0 {
		m.mask(m.pending, true)
		m.pending = m.pending[:0]
	}
	return m.err
}

// Close flushes; it leaves the writer open.
func (m *Masker) Close() error { return m.Flush() }

// mask writes buf masked, up to where a value may begin that the rest of
// the output decides (all of it when final), and returns that place.
func (m *Masker) mask(buf []byte, final bool) (hold int) {
	n := len(buf)
	hold = n
	last := 0 // buf[last:] is not yet written or masked
	matched := false
	m.out = m.out[:0]
	shift, back := m.shift, m.block-1
	for pos := m.window - 1; pos < n; {
		h := (int(buf[pos-back])<<7 ^ int(buf[pos])) & (tableSize - 1)
		if sh := shift[h]; sh > 0 {
			pos += int(sh)
			continue
		}
		s := pos - m.window + 1
		best, open := m.matchAt(buf[s:], h, final)
		if open {
			hold = s
			break
		}
		if best == 0 {
			pos++
			continue
		}
		m.out = append(m.out, buf[last:s]...)
		m.out = append(m.out, Mask...)
		matched = true
		last = s + best
		pos = last + m.window - 1
	}
	if hold == n && !final {
		// The places whose window runs past the end: a value may begin
		// there only if the rest of buf begins one.
		for s := max(n-m.window+1, last); s < n; s++ {
			if m.first[buf[s]] && m.begins(buf[s:]) {
				hold = s
				break
			}
		}
	}
	if !matched {
		m.write(buf[:hold])
		return hold
	}
	m.out = append(m.out, buf[last:hold]...)
	m.write(m.out)
	return hold
}

// matchAt returns the length of the longest pattern b begins with (0:
// none), of those whose window ends with block h; open when b is a proper
// prefix of a longer one that more output could complete.
func (m *Masker) matchAt(b []byte, h int, final bool) (best int, open bool) {
	for _, i := range m.bucket[h] {
		p := m.pats[i]
		if len(p) <= len(b) {
			if len(p) > best && bytes.Equal(b[:len(p)], p) {
				best = len(p)
			}
		} else if !final && len(p) > best && bytes.Equal(b, p[:len(b)]) {
			open = true
		}
	}
	return best, open
}

// begins reports whether b, shorter than every pattern, begins one.
func (m *Masker) begins(b []byte) bool {
	for _, p := range m.pats {
		if bytes.HasPrefix(p, b) {
			return true
		}
	}
	return false
}

func (m *Masker) write(b []byte) {
	if len(b) == 0 || m.err != nil {
		return
	}
	if _, err := m.w.Write(b); err != nil {
		m.err = err
	}
}
