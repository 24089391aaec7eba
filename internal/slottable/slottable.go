// Package slottable is a table of numbered slots shared by processes: a
// directory of files N.lock (N = 0, 1, ...), slot N held by whoever holds
// an exclusive flock(2) on its file, with a short text in the file naming
// the holder for people and for the next holder.
//
// A flock goes with the process that holds it, so a holder that dies frees
// its slot at once; its text stays, which is how a caller that needs to
// (the ID ranges) learns that the last holder did not finish. Which slots
// a caller may take, and what it does with a text left behind, is its own
// policy: this package only locks, reads and writes the files. Their names
// and contents are the on-disk format that workers of different versions
// share during an upgrade, so they must not change.
package slottable

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Path is slot i's file in dir.
func Path(dir string, i int) string {
	return filepath.Join(dir, strconv.Itoa(i)+".lock")
}

// Try locks slot i in dir, making its file if need be: the file, held
// until it is closed, or nil, nil when another holder has the slot. Errors
// are those of open(2) and flock(2), unwrapped: callers add their context.
func Try(dir string, i int) (*os.File, error) {
	return try(Path(dir, i))
}

func try(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, err
	}
	return f, nil
}

// Take locks the lowest free slot below n, or the lowest free slot at all
// when n < 0; nil, nil when every slot below n is held.
func Take(dir string, n int) (*os.File, error) {
	for i := 0; n < 0 || i < n; i++ {
		f, err := Try(dir, i)
		if err != nil || f != nil {
			return f, err
		}
	}
	return nil, nil
}

// Held says whether someone holds slot i, without taking it or making its
// file. It probes with a shared lock, so that two processes counting at
// once do not see each other as holders.
func Held(dir string, i int) bool {
	f, err := os.OpenFile(Path(dir, i), os.O_RDONLY, 0)
	if err != nil {
		return false // never made: free
	}
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) != nil
}

// Text is what the last holder of the held slot f wrote in it.
func Text(f *os.File) (string, error) {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	return string(b), err
}

// Write replaces the text of the held slot f.
func Write(f *os.File, text string) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(text), 0)
	return err
}

// Scan tries every slot of dir that has a file, in directory order, and
// then those below n that have none yet, in order. It returns the texts of
// the held slots, and the free slots below n, locked: the caller takes
// some and closes the rest. A slot not made yet that cannot be made or
// locked is left out.
func Scan(dir string, n int) (held []string, free []*os.File, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	closeFree := func() {
		for _, f := range free {
			f.Close()
		}
	}
	for _, e := range ents {
		num, ok := strings.CutSuffix(e.Name(), ".lock")
		i, err := strconv.Atoi(num)
		if !ok || err != nil || i < 0 {
			continue
		}
		path := filepath.Join(dir, e.Name()) // "07.lock" is slot 7's too
		f, err := try(path)
		if err != nil {
			closeFree()
			return nil, nil, err
		}
		switch {
		case f == nil:
			text, _ := os.ReadFile(path)
			held = append(held, string(text))
		case i < n:
			free = append(free, f)
		default:
			f.Close()
		}
	}
	for i := range n {
		if _, err := os.Lstat(Path(dir, i)); errors.Is(err, fs.ErrNotExist) {
			if f, err := Try(dir, i); err == nil && f != nil {
				free = append(free, f)
			}
		}
	}
	return held, free, nil
}
