package gittree

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/jobq/jobq/internal/human"
)

// Archive writes the tree of revision rev of the bare repository gitDir to
// w as a tar stream, for a remote service's /source: files with their
// executable bit, symlinks, directories, no .git and no submodules, as
// Checkout writes them, straight from the objects (no checkout on disk).
//
// The tree passes Checkout's checks (entry names as git's verify_path,
// names unique in their directory, depth, path length, lim.Files) before
// the first byte is written. So every entry is a path of checked names
// below the top, and none lies under a symlink: Podman fails a whole copy
// on a write through a symlink, after extracting part of it.
func Archive(ctx context.Context, gitDir, rev string, w io.Writer, lim Limits) error {
	st := filesystem.NewStorageWithOptions(osfs.New(gitDir), cache.NewObjectLRUDefault(),
		filesystem.Options{KeepDescriptors: true, LargeObjectThreshold: inlineSize})
	defer st.Close()
	return archive(ctx, st, rev, w, lim, true)
}

func archive(ctx context.Context, st storer.EncodedObjectStorer, rev string, w io.Writer, lim Limits, validate bool) error {
	c, root, err := plan(ctx, st, rev, lim, validate)
	if errors.Is(err, errPlan) {
		return fmt.Errorf("archive %s: %w; nothing was sent", short(rev), err)
	}
	if err != nil {
		return fmt.Errorf("archive %s: %w", short(rev), err)
	}
	a := &archiver{c: c, tw: tar.NewWriter(w), now: time.Now().Truncate(time.Second)}
	if err := a.dir(root, ""); err != nil {
		return fmt.Errorf("archive %s: %w", short(rev), err)
	}
	if err := a.tw.Close(); err != nil {
		return fmt.Errorf("archive %s: %w", short(rev), err)
	}
	return nil
}

type archiver struct {
	c   *checkouter
	tw  *tar.Writer
	now time.Time
}

func (a *archiver) header(name string, typ byte, mode int64) *tar.Header {
	return &tar.Header{Name: name, Typeflag: typ, Mode: mode, ModTime: a.now, Uname: "root", Gname: "root"}
}

// dir writes the entries of s, at path ("" for the top).
func (a *archiver) dir(s *scanned, path string) error {
	for _, e := range s.tree.Entries {
		if err := a.c.ctx.Err(); err != nil {
			return err
		}
		name := join(path, e.Name)
		var err error
		switch k := kindOf(e.Mode); k {
		case kindDir:
			if err = a.tw.WriteHeader(a.header(name+"/", tar.TypeDir, 0o755)); err == nil {
				err = a.dir(a.c.trees[e.Hash], name)
			}
			if err != nil {
				return err // says where itself
			}
			continue
		case kindGitlink: // empty, as git leaves a submodule
			err = a.tw.WriteHeader(a.header(name+"/", tar.TypeDir, 0o755))
		case kindFile, kindExec:
			err = a.file(e, k, name)
		case kindLink:
			err = a.symlink(e, name)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func (a *archiver) file(e object.TreeEntry, k kind, name string) error {
	n, err := a.c.sizeOf(e.Hash)
	if err != nil {
		return err
	}
	if n > maxBlob {
		return fmt.Errorf("a file of %s, over the %s a checkout takes", human.Bytes(n), human.Bytes(maxBlob))
	}
	blob, err := object.GetBlob(a.c.st, e.Hash)
	if err != nil {
		return err
	}
	mode := int64(0o644)
	if k == kindExec {
		mode = 0o755
	}
	h := a.header(name, tar.TypeReg, mode)
	h.Size = blob.Size
	if err := a.tw.WriteHeader(h); err != nil {
		return err
	}
	r, err := blob.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(a.tw, ctxReader{a.c.ctx, r})
	return err
}

func (a *archiver) symlink(e object.TreeEntry, name string) error {
	target, err := a.c.linkTarget(e)
	if err != nil {
		return err
	}
	h := a.header(name, tar.TypeSymlink, 0o777)
	h.Linkname = target
	return a.tw.WriteHeader(h)
}
