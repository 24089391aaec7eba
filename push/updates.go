package push

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Update is one line of a post-receive hook's input: OLD NEW REF.
type Update struct {
	Old, New, Ref string
}

// Deletion reports whether the push deleted the ref.
func (u Update) Deletion() bool { return strings.Trim(u.New, "0") == "" }

// ParseUpdates reads a post-receive hook's input. A malformed line is an
// error naming it; nothing is queued for any line then.
func ParseUpdates(r io.Reader) ([]Update, error) {
	var us []Update
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<16)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || !isRev(f[0]) || !isRev(f[1]) || !strings.HasPrefix(f[2], "refs/") {
			return nil, fmt.Errorf("hook input line %d is not OLD NEW REF: %.80q", n, sc.Text())
		}
		us = append(us, Update{Old: f[0], New: f[1], Ref: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read hook input: %w", err)
	}
	return us, nil
}

func isRev(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
