package runner

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Checkout writes the tree of revision rev of the bare repository gitDir
// into dir, which must exist and be empty: files with their executable
// bit, symlinks, no .git and no submodules. It walks the tree and writes
// blobs itself; go-git's Worktree.Checkout also builds an index and
// compares with the work tree, which a fresh directory does not need.
func Checkout(gitDir, rev, dir string) error {
	repo, err := git.PlainOpenWithOptions(gitDir, &git.PlainOpenOptions{})
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
	// Every write goes through root: a crafted tree (a symlink "a" to /etc,
	// then "a/x") cannot write outside dir.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("checkout %s: %w", short(rev), err)
	}
	defer root.Close()
	buf := make([]byte, 64<<10)
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, entry, err := walker.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("checkout %s: %w", short(rev), err)
		}
		switch entry.Mode {
		case filemode.Dir, filemode.Submodule: // a submodule: empty, as git leaves it
			err = root.Mkdir(name, 0o755)
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			err = writeBlob(repo, root, entry, name, buf)
		case filemode.Symlink:
			err = writeSymlink(repo, root, entry, name)
		}
		if err != nil {
			return fmt.Errorf("checkout %s: %s: %w", short(rev), name, err)
		}
	}
}

func writeBlob(repo *git.Repository, root *os.Root, entry object.TreeEntry, name string, buf []byte) error {
	blob, err := repo.BlobObject(entry.Hash)
	if err != nil {
		return err
	}
	r, err := blob.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	perm := os.FileMode(0o644)
	if entry.Mode == filemode.Executable {
		perm = 0o755
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(f, r, buf); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeSymlink(repo *git.Repository, root *os.Root, entry object.TreeEntry, name string) error {
	blob, err := repo.BlobObject(entry.Hash)
	if err != nil {
		return err
	}
	r, err := blob.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	target, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return err
	}
	return root.Symlink(string(target), name)
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
