package push

import (
	"fmt"
	"strings"
)

// DefaultRefFilter selects every branch and tag.
const DefaultRefFilter = "refs/heads/** refs/tags/**"

// RefFilter selects the pushed refs that queue a job.
type RefFilter struct {
	include, exclude []string
}

// ParseRefFilter reads space-separated patterns: '*' matches within one path
// segment, '**' across segments (and "/**/" also matches "/"), a leading '!'
// excludes. A ref is selected when it matches an including pattern and no
// excluding one; with excluding patterns alone, the default includes apply.
func ParseRefFilter(s string) (RefFilter, error) {
	var f RefFilter
	// ASCII blanks only: git allows other spaces (U+00A0) in ref names.
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if p == "" {
			return RefFilter{}, fmt.Errorf("%q: empty pattern after '!'", s)
		}
		if strings.Contains(p, "***") {
			return RefFilter{}, fmt.Errorf("%q: '***' in pattern %q", s, p)
		}
		if neg {
			f.exclude = append(f.exclude, p)
		} else {
			f.include = append(f.include, p)
		}
	}
	if len(f.include) == 0 {
		f.include = strings.Fields(DefaultRefFilter)
	}
	return f, nil
}

// Match reports whether ref is selected.
func (f RefFilter) Match(ref string) bool {
	for _, p := range f.exclude {
		if matchRef(p, ref) {
			return false
		}
	}
	for _, p := range f.include {
		if matchRef(p, ref) {
			return true
		}
	}
	return false
}

// matchRef matches one pattern; it backtracks, but patterns and refs are
// short and '**' runs are rejected above.
func matchRef(p, s string) bool {
	for len(p) > 0 {
		switch {
		case strings.HasPrefix(p, "/**/"):
			// zero segments ("a/**/b" matches "a/b") or any number
			if len(s) > 0 && s[0] == '/' && matchRef(p[3:], s) {
				return true
			}
			if len(s) == 0 || s[0] != '/' {
				return false
			}
			p, s = p[1:], s[1:]
		case strings.HasPrefix(p, "**"):
			for i := 0; i <= len(s); i++ {
				if matchRef(p[2:], s[i:]) {
					return true
				}
			}
			return false
		case p[0] == '*':
			for i := 0; i <= len(s); i++ {
				if matchRef(p[1:], s[i:]) {
					return true
				}
				if i < len(s) && s[i] == '/' {
					break
				}
			}
			return false
		default:
			if len(s) == 0 || p[0] != s[0] {
				return false
			}
			p, s = p[1:], s[1:]
		}
	}
	return len(s) == 0
}
