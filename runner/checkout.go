package runner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Checkout writes the tree of revision rev of the bare repository gitDir
// into dir, which must exist and be empty: files with their executable
// bit, symlinks, no .git and no submodules. It walks the tree and writes
// blobs itself; go-git's Worktree.Checkout also builds an index and
// compares with the work tree, which a fresh directory does not need.
func Checkout(gitDir, rev, dir string) error {
	// KeepDescriptors: without it go-git reopens the packfile for every
	// object it reads.
	st := filesystem.NewStorageWithOptions(osfs.New(gitDir), cache.NewObjectLRUDefault(), filesystem.Options{KeepDescriptors: true})
	defer st.Close()
	repo, err := git.Open(st, nil)
	if err != nil {
		return fmt.Errorf("checkout %s: open %s: %w", short(rev), gitDir, err)
	}
	commit, err := repo.CommitObject(plumbing.NewHash(rev))
	if err != nil {
		return fmt.Errorf("checkout %s: %w", short(rev), err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return fmt.Errorf("checkout %s: %w", short(rev), err)
	}
	// dir is empty and the walk makes every directory in it, so the only
	// symlinks in it are those it wrote: an entry under one of them (a
	// crafted tree with a symlink "a" to /etc, then "a/x") is refused.
	// O_EXCL and Mkdir refuse a symlink as the last element. (os.Root does
	// the same, but opens every directory of every path: 5x the syscalls.)
	links := map[string]bool{}
	// This goroutine walks the tree and inflates blobs (user time); writers
	// create the files (system time), so the two overlap on two cores.
	// Directories are made here, in walk order, before anything inside them.
	w := newWriters(max(runtime.NumCPU(), 2))
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	buf := make([]byte, 64<<10)
	for {
		name, entry, err := walker.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			w.stop()
			return fmt.Errorf("checkout %s: %w", short(rev), err)
		}
		if !filepath.IsLocal(name) || underLink(links, name) {
			w.stop()
			return fmt.Errorf("checkout %s: unsafe path %q in tree", short(rev), name)
		}
		path := filepath.Join(dir, name)
		switch entry.Mode {
		case filemode.Dir, filemode.Submodule: // a submodule: empty, as git leaves it
			err = os.Mkdir(path, 0o755)
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			err = readBlob(repo, entry, path, w, buf)
		case filemode.Symlink:
			links[name] = true
			err = writeSymlink(repo, entry, path)
		}
		if err == nil {
			err = w.err()
		}
		if err != nil {
			w.stop()
			return fmt.Errorf("checkout %s: %s: %w", short(rev), name, err)
		}
	}
	if err := w.stop(); err != nil {
		return fmt.Errorf("checkout %s: %w", short(rev), err)
	}
	return nil
}

// inlineSize is the blob size from which the walker writes the file itself,
// streaming, instead of handing a copy to a writer.
const inlineSize = 1 << 20

// openBlob opens a tree entry's blob and gives its size.
func openBlob(repo *git.Repository, entry object.TreeEntry) (io.ReadCloser, int64, error) {
	blob, err := repo.BlobObject(entry.Hash)
	if err != nil {
		return nil, 0, err
	}
	r, err := blob.Reader()
	return r, blob.Size, err
}

// readBlob reads a blob and has it written to path.
func readBlob(repo *git.Repository, entry object.TreeEntry, path string, w *writers, buf []byte) error {
	r, size, err := openBlob(repo, entry)
	if err != nil {
		return err
	}
	defer r.Close()
	perm := uint32(0o644)
	if entry.Mode == filemode.Executable {
		perm = 0o755
	}
	if size >= inlineSize {
		return writeFile(path, perm, r, buf)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return err
	}
	w.files <- file{path, perm, data}
	return nil
}

type file struct {
	path string
	perm uint32
	data []byte
}

// writers write small files concurrently and keep the first error.
type writers struct {
	files chan file
	wg    sync.WaitGroup
	mu    sync.Mutex
	first error
}

func newWriters(n int) *writers {
	w := &writers{files: make(chan file, 64)}
	for range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for f := range w.files {
				if err := writeFile(f.path, f.perm, nil, f.data); err != nil {
					w.mu.Lock()
					if w.first == nil {
						w.first = err
					}
					w.mu.Unlock()
				}
			}
		}()
	}
	return w
}

func (w *writers) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first
}

// stop waits for the queued files and returns the first error.
func (w *writers) stop() error {
	close(w.files)
	w.wg.Wait()
	return w.err()
}

// underLink reports whether a parent directory of name is a symlink.
func underLink(links map[string]bool, name string) bool {
	for i := range len(name) {
		if name[i] == '/' && links[name[:i]] {
			return true
		}
	}
	return false
}

// writeFile creates path with data, or with what r yields if r is set. A
// plain file descriptor, not an *os.File: os.OpenFile also tries to
// register each file with the poller, a wasted syscall per file.
func writeFile(path string, perm uint32, r io.Reader, data []byte) error {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, perm)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	if r != nil {
		_, err = io.CopyBuffer(fdWriter(fd), r, data)
	} else {
		_, err = fdWriter(fd).Write(data)
	}
	if cerr := syscall.Close(fd); err == nil && cerr != nil {
		err = &os.PathError{Op: "close", Path: path, Err: cerr}
	}
	return err
}

// fdWriter writes to a file descriptor.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := syscall.Write(int(w), p[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

func writeSymlink(repo *git.Repository, entry object.TreeEntry, path string) error {
	r, _, err := openBlob(repo, entry)
	if err != nil {
		return err
	}
	defer r.Close()
	target, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return err
	}
	return os.Symlink(string(target), path)
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
