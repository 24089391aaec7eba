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
	ends    []int             // windowEnds' results, kept for the next Write
	tail    []int             // windowEnds' second chain's
	out     []byte            // masked output being assembled
	err     error
}

// Patterns are what a Masker for values replaces: each non-empty value
// whole, but for the newline it ends with (a key file's, or echo's into
// jobq secret set: masking it too would join the job's lines), and each
// line of MinLen bytes or more of a value of several lines (without its
// "\n", and also without a "\r" before it), deduplicated.
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
		if t := bytes.TrimSuffix(bytes.TrimSuffix(v, []byte("\n")), []byte("\r")); len(t) > 0 {
			add(t)
		} else {
			add(v)
		}
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
	m.ends = m.windowEnds(buf, m.ends[:0])
	for _, e := range m.ends {
		s := e - m.window + 1
		if s < last {
			continue // within a value masked already
		}
		best, open := m.matchAt(buf[s:], m.hash(buf, e), final)
		if open {
			hold = s
			break
		}
		if best == 0 {
			continue
		}
		m.out = append(m.out, buf[last:s]...)
		m.out = append(m.out, Mask...)
		matched = true
		last = s + best
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

// splitAt is the length of output from which windowEnds follows two
// chains of windows at once.
const splitAt = 4 << 10

// windowEnds appends to ends, in order, the ends of the windows of buf
// that end with the block of some pattern's window (its shift is 0):
// where a value may begin, one window length before. The window slides
// as the shift table lets it; every such end is met whatever end the
// slide begins at, so that two halves of buf can be slid at once, as
// two chains of loads the processor runs side by side, where one would
// wait on each load in turn.
func (m *Masker) windowEnds(buf []byte, ends []int) []int {
	n, shift, back := len(buf), m.shift, m.block-1
	a, mid := m.window-1, n
	if n-a >= splitAt {
		mid = a + (n-a)/2
	}
	b := mid
	tail := m.tail[:0]
	for a < mid && b < n {
		sa := shift[(int(buf[a-back])<<7^int(buf[a]))&(tableSize-1)]
		sb := shift[(int(buf[b-back])<<7^int(buf[b]))&(tableSize-1)]
		if sa == 0 {
			ends = append(ends, a)
			sa = 1
		}
		if sb == 0 {
			tail = append(tail, b)
			sb = 1
		}
		a += int(sa)
		b += int(sb)
	}
	for a < mid {
		sa := shift[(int(buf[a-back])<<7^int(buf[a]))&(tableSize-1)]
		if sa == 0 {
			ends = append(ends, a)
			sa = 1
		}
		a += int(sa)
	}
	for b < n {
		sb := shift[(int(buf[b-back])<<7^int(buf[b]))&(tableSize-1)]
		if sb == 0 {
			tail = append(tail, b)
			sb = 1
		}
		b += int(sb)
	}
	m.tail = tail
	return append(ends, tail...)
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
