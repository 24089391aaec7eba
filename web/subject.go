package web

import (
	"os"
	"path/filepath"
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
// (pruned, a deleted repository) shows none, and so do the revisions of a
// repository too large to look in quickly (maxPackIndexes). One store per
// repository, opened for the page only.
func subjects(rows []row) {
	stores := map[string]*filesystem.Storage{}
	for i := range rows {
		j := rows[i].Job
		if j == nil || j.GitDir == "" || !plumbing.IsHash(j.NewRev) {
			continue
		}
		st, ok := stores[j.GitDir]
		if !ok {
			if packIndexes(j.GitDir) <= maxPackIndexes {
				st = filesystem.NewStorage(osfs.New(j.GitDir, osfs.WithBoundOS()), cache.NewObjectLRU(64<<10))
			}
			stores[j.GitDir] = st
		}
		if st == nil {
			continue
		}
		c, err := object.GetCommit(st, plumbing.NewHash(j.NewRev))
		if err != nil {
			continue
		}
		rows[i].Subject = subjectLine(c.Message)
	}
	for _, st := range stores {
		if st != nil {
			st.Close()
		}
	}
}

// maxPackIndexes bounds the pack indexes of a repository whose subjects a
// page reads: go-git reads a pack's whole index before its first lookup,
// and a page must stay fast. 16 MiB of indexes is about half a million
// objects; a larger repository's page shows no subjects.
const maxPackIndexes = 16 << 20

// packIndexes is the size of a repository's pack indexes.
func packIndexes(gitDir string) int64 {
	ents, _ := os.ReadDir(filepath.Join(gitDir, "objects", "pack"))
	var n int64
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".idx") {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
	}
	return n
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
