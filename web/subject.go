package web

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// maxSubject bounds a commit subject as a page shows it, in characters.
const maxSubject = 80

// subjects fills in the commit subjects of rows' revisions, read from
// each job's repository (go-git: no process per page; objects are read
// where the push put them, loose or packed). A revision that is not there
// (pruned, a deleted repository) shows none. One store per repository,
// opened for the page only.
func subjects(rows []row) {
	stores := map[string]*filesystem.Storage{}
	for i := range rows {
		j := rows[i].Job
		if j == nil || j.GitDir == "" || !plumbing.IsHash(j.NewRev) {
			continue
		}
		st, ok := stores[j.GitDir]
		if !ok {
			st = filesystem.NewStorage(osfs.New(j.GitDir, osfs.WithBoundOS()), cache.NewObjectLRU(64<<10))
			stores[j.GitDir] = st
		}
		c, err := object.GetCommit(st, plumbing.NewHash(j.NewRev))
		if err != nil {
			continue
		}
		rows[i].Subject = subjectLine(c.Message)
	}
	for _, st := range stores {
		st.Close()
	}
}

// subjectLine is a commit message's first line as text a page may show:
// no control characters and no bidirectional overrides (which would
// reorder what follows them), truncated to maxSubject characters. The
// template escapes it.
func subjectLine(msg string) string {
	line, _, _ := strings.Cut(strings.TrimLeft(msg, "\n"), "\n")
	if !utf8.ValidString(line) {
		line = strings.ToValidUTF8(line, "\uFFFD")
	}
	line = strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r), r == '\u2028', r == '\u2029':
			return -1
		}
		return r
	}, line)
	line = strings.TrimSpace(line)
	if utf8.RuneCountInString(line) > maxSubject {
		rs := []rune(line)
		line = strings.TrimSpace(string(rs[:maxSubject-1])) + "…"
	}
	return line
}
