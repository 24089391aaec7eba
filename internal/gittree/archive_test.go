package gittree

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// tarEntry is one entry of an archive, as a test compares it.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func readTar(t *testing.T, b []byte) []tarEntry {
	t.Helper()
	var got []tarEntry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		got = append(got, tarEntry{h.Name, string(body), h.Linkname, h.Typeflag, h.Mode})
	}
}

// The archive has what a checkout would write: contents, the executable
// bit, symlinks as symlinks (even one pointing out), empty directories
// for submodules, nothing else.
func TestArchiveWritesTree(t *testing.T) {
	r := newRawRepo(t)
	exec := object.TreeEntry{Name: "run.sh", Mode: filemode.Executable, Hash: r.blob("#!/bin/sh\n")}
	sub := object.TreeEntry{Name: "mod", Mode: filemode.Submodule, Hash: plumbing.NewHash("1111111111111111111111111111111111111111")}
	deep := r.tree(fileE("deep.txt", r.blob("deep\n")))
	rev := r.commit(r.tree(fileE("a.txt", r.blob("a\n")), linkE("abs", r.blob("/etc/shadow")),
		dirE("d", r.tree(dirE("e", deep), linkE("up", r.blob("../a.txt")))), sub, exec))
	var b bytes.Buffer
	if err := archive(context.Background(), r.st, rev, &b, noLimits, true); err != nil {
		t.Fatal(err)
	}
	want := []tarEntry{
		{"a.txt", "a\n", "", tar.TypeReg, 0o644},
		{"abs", "", "/etc/shadow", tar.TypeSymlink, 0o777},
		{"d/", "", "", tar.TypeDir, 0o755},
		{"d/e/", "", "", tar.TypeDir, 0o755},
		{"d/e/deep.txt", "deep\n", "", tar.TypeReg, 0o644},
		{"d/up", "", "../a.txt", tar.TypeSymlink, 0o777},
		{"mod/", "", "", tar.TypeDir, 0o755},
		{"run.sh", "#!/bin/sh\n", "", tar.TypeReg, 0o755},
	}
	got := readTar(t, b.Bytes())
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("archive:\n%v\nwant\n%v", got, want)
	}
}

// A tree that names a path through a symlink, or out of the top, is
// refused before a byte is written: Podman would fail the copy only after
// extracting part of it. The same trees Checkout refuses.
func TestArchiveRefusesUnsafeTrees(t *testing.T) {
	type build func(r *rawRepo) plumbing.Hash
	rows := []struct {
		name  string
		tree  build
		entry string
	}{
		{"link a, file a/x", func(r *rawRepo) plumbing.Hash {
			return r.tree(linkE("a", r.blob("/tmp")), fileE("a/x", r.blob("pwned\n")))
		}, "a/x"},
		{"link a, then a directory a", func(r *rawRepo) plumbing.Hash {
			return r.tree(linkE("a", r.blob("/tmp")), dirE("a", r.tree(fileE("x", r.blob("pwned\n")))))
		}, "a"},
		{"file ../x", func(r *rawRepo) plumbing.Hash { return r.tree(fileE("../x", r.blob("pwned\n"))) }, "../x"},
		{"directory ..", func(r *rawRepo) plumbing.Hash {
			return r.tree(dirE("..", r.tree(fileE("x", r.blob("pwned\n")))))
		}, ".."},
		{"file /x", func(r *rawRepo) plumbing.Hash { return r.tree(fileE("/x", r.blob("pwned\n"))) }, "/x"},
		{".git", func(r *rawRepo) plumbing.Hash {
			return r.tree(dirE(".git", r.tree(fileE("config", r.blob("x")))))
		}, ".git"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			r := newRawRepo(t)
			rev := r.commit(row.tree(r))
			var b bytes.Buffer
			err := archive(context.Background(), r.st, rev, &b, noLimits, true)
			want := fmt.Sprintf("archive %s: unsafe tree entry %q", rev[:12], row.entry)
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "; nothing was sent") {
				t.Errorf("error %v, want one starting %q", err, want)
			}
			if b.Len() != 0 {
				t.Errorf("%d bytes written before the tree was refused", b.Len())
			}
		})
	}
}

// A tree bomb is refused by the files limit before anything is sent.
func TestArchiveFilesLimit(t *testing.T) {
	r := newRawRepo(t)
	rev := r.commit(bomb(r, 10, 6)) // a million entries from a few trees
	var b bytes.Buffer
	err := archive(context.Background(), r.st, rev, &b, Limits{Files: 1000}, true)
	if err == nil || !strings.Contains(err.Error(), "over the limit of 1000") || b.Len() != 0 {
		t.Errorf("err %v, %d bytes", err, b.Len())
	}
}

// The job's context stops the stream: a cancel or timeout is not held up
// by a large tree.
func TestArchiveStopsWithContext(t *testing.T) {
	r := newRawRepo(t)
	rev := r.commit(bomb(r, 10, 4))
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancelAfter{n: 10, cancel: cancel}
	err := archive(ctx, r.st, rev, w, noLimits, true)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v", err)
	}
}

// cancelAfter cancels after n writes.
type cancelAfter struct {
	n      int
	cancel func()
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	if c.n--; c.n == 0 {
		c.cancel()
	}
	return len(p), nil
}
