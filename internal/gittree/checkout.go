package gittree

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/jobq/jobq/internal/human"
	"github.com/jobq/jobq/runner"
	"golang.org/x/sys/unix"
)

// Limits bound what one checkout may write: a tree of a few
// kilobytes can name the same subtree millions of times.
type Limits struct {
	// Files is the most entries (files, directories, symlinks) it creates.
	Files int64
	// MinFree is the free space, in bytes, that must remain on the
	// filesystem of the checkout.
	MinFree int64
}

// DefaultFiles is the worker's default JOBQ_CHECKOUT_FILES.
const DefaultFiles = 1_000_000

// DefaultLimits are the limits of a worker not told otherwise.
func DefaultLimits() Limits {
	return Limits{Files: DefaultFiles, MinFree: runner.DefaultMinFree}
}

// maxDepth is the deepest nesting of directories a checkout creates. The
// walk holds a descriptor for each directory above the one it writes in;
// and a path deeper than this is over 2,047 bytes, half of PATH_MAX.
const maxDepth = 1024

// Checkout writes the tree of revision rev of the bare repository gitDir
// into dir, which must exist and be empty: files with their executable
// bit, symlinks, no .git and no submodules.
//
// Nothing in the tree can write outside dir, at two levels. First every
// entry name of every tree is checked as git's verify_path does, the
// entries are counted against lim, and a bad tree fails before anything is
// written. Then every file, directory and symlink is created by its single
// name relative to an open descriptor of its directory, never following a
// symlink, so even a name the first check let through cannot lead out.
//
// The checkout stops when ctx ends, and before the filesystem has less
// than lim.MinFree free.
func Checkout(ctx context.Context, gitDir, rev, dir string, lim Limits) error {
	// KeepDescriptors: without it go-git reopens the packfile for every
	// object it reads. LargeObjectThreshold: without it go-git inflates
	// every object whole into memory, and a small push of a large,
	// compressible file takes gigabytes. Larger blobs are streamed.
	st := filesystem.NewStorageWithOptions(osfs.New(gitDir), cache.NewObjectLRUDefault(),
		filesystem.Options{KeepDescriptors: true, LargeObjectThreshold: inlineSize})
	defer st.Close()
	return checkout(ctx, st, rev, dir, lim, true)
}

// checkout is Checkout from any object store; without validate it skips
// the check of names, so that tests can show the second level holds alone.
func checkout(ctx context.Context, st storer.EncodedObjectStorer, rev, dir string, lim Limits, validate bool) error {
	c, root, err := plan(ctx, st, rev, lim, validate)
	if errors.Is(err, errPlan) {
		return fmt.Errorf("checkout %s: %w; nothing was checked out", short(rev), err)
	}
	if err != nil {
		return fmt.Errorf("checkout %s: %w", short(rev), err)
	}
	if err := c.write(root, dir); err != nil {
		return fmt.Errorf("checkout %s: %w", short(rev), err)
	}
	return nil
}

// errPlan marks a tree that plan refused: nothing was written or sent.
var errPlan = errors.New("refused")

// plan reads the tree of rev and checks all of it before anything is
// written or sent (Checkout and Archive alike): names (unless !validate),
// depth, path lengths, and the entry limit. An error wrapping errPlan is
// the tree's fault; any other, the repository's.
func plan(ctx context.Context, st storer.EncodedObjectStorer, rev string, lim Limits, validate bool) (*checkouter, *scanned, error) {
	commit, err := peel(st, plumbing.NewHash(rev))
	if err != nil {
		return nil, nil, err
	}
	tree, err := treeOf(st, commit)
	if err != nil {
		return nil, nil, err
	}
	c := &checkouter{ctx: ctx, st: st, lim: lim, validate: validate, trees: map[plumbing.Hash]*scanned{}}
	root, err := c.scan(tree, "", 0)
	if err == nil && root.longest >= maxPath {
		err = fmt.Errorf("a path of %d bytes, over the %d a checkout takes", root.longest, maxPath-1)
	}
	if err == nil && root.entries > lim.Files {
		err = fmt.Errorf("the tree has %s entries (files, directories, symlinks), over the limit of %d; "+
			"JOBQ_CHECKOUT_FILES in the worker's environment sets it", count(root.entries), lim.Files)
	}
	if err != nil {
		return nil, nil, planError{err}
	}
	return c, root, nil
}

// planError is a tree plan refused: its text is the reason alone.
type planError struct{ err error }

func (e planError) Error() string        { return e.err.Error() }
func (e planError) Unwrap() error        { return e.err }
func (e planError) Is(target error) bool { return target == errPlan }

// maxTagChain bounds how many tags peel follows to a commit: git needs
// no bound (a chain of SHA-1 names cannot loop), but a pusher can make a
// chain of any length, and no one tags a tag of a tag this deep.
const maxTagChain = 32

// peel is the commit that h names: h itself, or, for an annotated tag
// (a push of refs/tags/v1 hands the hook the tag object's name), the
// object the tag points at, tags of tags followed as git follows them.
// A tag of a tree or a blob has no commit to check out. Only the tags'
// headers are read: a tag's message can be of any size.
func peel(st storer.EncodedObjectStorer, h plumbing.Hash) (plumbing.Hash, error) {
	for range maxTagChain + 1 {
		o, err := st.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		switch o.Type() {
		case plumbing.CommitObject:
			return h, nil
		case plumbing.TagObject:
		default:
			return plumbing.ZeroHash, planError{fmt.Errorf("%s is a %s, not a commit (or a tag of one): there is nothing to check out", short(h.String()), o.Type())}
		}
		next, err := tagTarget(o)
		if err != nil {
			return plumbing.ZeroHash, planError{fmt.Errorf("tag %s: %w", short(h.String()), err)}
		}
		h = next
	}
	return plumbing.ZeroHash, planError{fmt.Errorf("tags of tags over %d deep", maxTagChain)}
}

// tagTarget reads the object a tag points at from its first header, as
// git requires it: "object HASH".
func tagTarget(o plumbing.EncodedObject) (plumbing.Hash, error) {
	r, err := o.Reader()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	defer r.Close()
	line, err := bufio.NewReaderSize(r, 128).ReadSlice('\n')
	name, value, _ := strings.Cut(strings.TrimSuffix(string(line), "\n"), " ")
	if err != nil || name != "object" || !plumbing.IsHash(value) {
		return plumbing.ZeroHash, errors.New("its headers do not begin with the object it tags, as git requires")
	}
	return plumbing.NewHash(value), nil
}

// treeOf is the tree of commit h as git reads it. git takes a commit's
// first "tree" header and go-git its last: a commit with two would show
// one tree to git, cgit and reviewers and check out another. git's fsck
// refuses such a commit, and so does this.
func treeOf(st storer.EncodedObjectStorer, h plumbing.Hash) (plumbing.Hash, error) {
	o, err := st.EncodedObject(plumbing.CommitObject, h)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	r, err := o.Reader()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	var tree plumbing.Hash
	for n := 0; sc.Scan() && sc.Text() != ""; n++ {
		name, value, _ := strings.Cut(sc.Text(), " ")
		switch {
		case n == 0 && name == "tree" && plumbing.IsHash(value):
			tree = plumbing.NewHash(value)
		case n == 0 || name == "tree":
			return plumbing.ZeroHash, fmt.Errorf("commit %s: its headers do not begin with exactly one tree, as git requires", short(h.String()))
		}
	}
	if err := sc.Err(); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("commit %s: %w", short(h.String()), err)
	}
	if tree.IsZero() {
		return plumbing.ZeroHash, fmt.Errorf("commit %s: no tree", short(h.String()))
	}
	return tree, nil
}

// maxPath bounds a path in the checkout, from its top: the kernel's
// PATH_MAX, less room for the checkout directory's own path. Podman chowns
// the checkout by full paths, and a job's tools cannot open a longer one.
const maxPath = unix.PathMax - 256

// checkouter is the state of one checkout.
type checkouter struct {
	ctx      context.Context
	st       storer.EncodedObjectStorer
	lim      Limits
	validate bool
	// trees holds each distinct tree once: a tree named a million times
	// is read and checked once.
	trees map[plumbing.Hash]*scanned

	w         *writers
	buf       []byte
	root      int   // descriptor of the checkout directory
	unchecked int64 // bytes written since free space was last looked at
}

// scanned is a tree read, checked and counted.
type scanned struct {
	tree    *object.Tree
	entries int64 // entries in it and below it, at most math.MaxInt64
	height  int   // directories nested below it
	longest int   // the longest path below it, from it
	done    bool  // false while its subtrees are scanned: a cycle
}

// scan reads the tree h at path, level directories deep, and those below
// it, checks their entry names and counts their entries.
func (c *checkouter) scan(h plumbing.Hash, path string, level int) (*scanned, error) {
	if s, ok := c.trees[h]; ok {
		if !s.done {
			return nil, fmt.Errorf("tree %s at %q contains itself", h, path)
		}
		if level+s.height > maxDepth {
			return nil, fmt.Errorf("directories nested over %d deep at %q", maxDepth, path)
		}
		if len(path)+1+s.longest >= maxPath {
			return nil, fmt.Errorf("a path over the %d bytes a checkout takes, under %q", maxPath-1, path)
		}
		return s, nil
	}
	if level > maxDepth {
		return nil, fmt.Errorf("directories nested over %d deep at %q", maxDepth, path)
	}
	if err := c.ctx.Err(); err != nil {
		return nil, err
	}
	t, err := object.GetTree(c.st, h)
	if err != nil {
		return nil, fmt.Errorf("tree %s at %q: %w", h, path, err)
	}
	s := &scanned{tree: t}
	c.trees[h] = s
	var seen map[string]bool
	if c.validate {
		seen = make(map[string]bool, len(t.Entries))
	}
	for _, e := range t.Entries {
		if c.validate {
			if why := badName(e.Name); why != "" {
				return nil, fmt.Errorf("unsafe tree entry %q in %s: %s", e.Name, where(path), why)
			}
			if seen[e.Name] {
				return nil, fmt.Errorf("unsafe tree entry %q in %s: the name appears twice", e.Name, where(path))
			}
			seen[e.Name] = true
		}
		s.entries = addCapped(s.entries, 1)
		s.longest = max(s.longest, len(e.Name))
		if kindOf(e.Mode) != kindDir {
			continue
		}
		sub, err := c.scan(e.Hash, join(path, e.Name), level+1)
		if err != nil {
			return nil, err
		}
		s.entries = addCapped(s.entries, sub.entries)
		s.height = max(s.height, sub.height+1)
		s.longest = max(s.longest, len(e.Name)+1+sub.longest)
		if len(path)+1+s.longest >= maxPath {
			return nil, fmt.Errorf("a path over the %d bytes a checkout takes, in %s", maxPath-1, where(path))
		}
	}
	s.done = true
	return s, nil
}

// BadName says why name may not be one segment of a path written by a
// checkout, or by anything that follows its rules (internal/safetar): the
// names git refuses as tree entries (verify_path). "" if it may.
func BadName(name string) string { return badName(name) }

// badName says why git would refuse name as a tree entry (verify_path),
// or returns "".
func badName(name string) string {
	switch {
	case name == "":
		return "an empty name"
	case name == "." || name == "..":
		return "a name that is . or .."
	case strings.IndexByte(name, '/') >= 0:
		return `"/" in a name`
	case strings.EqualFold(name, ".git"):
		return "a .git entry"
	}
	return ""
}

func where(path string) string {
	if path == "" {
		return "the top directory"
	}
	return fmt.Sprintf("%q", path)
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func addCapped(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func count(n int64) string {
	if n == math.MaxInt64 {
		return "more than 9223372036854775806"
	}
	return fmt.Sprint(n)
}

type kind int

const (
	kindFile kind = iota
	kindExec
	kindLink
	kindDir
	kindGitlink
)

// kindOf reads a tree entry's mode as git does (canon_mode): by its type
// bits, an unknown type being a submodule.
func kindOf(m filemode.FileMode) kind {
	switch b := uint32(m); b & unix.S_IFMT {
	case unix.S_IFDIR:
		return kindDir
	case unix.S_IFREG:
		if b&0o100 != 0 {
			return kindExec
		}
		return kindFile
	case unix.S_IFLNK:
		return kindLink
	}
	return kindGitlink
}

// freeEvery is how many bytes may be written between two looks at the
// free space; each entry counts a block besides its data.
const freeEvery = 16 << 20

// write creates the scanned tree in dir.
func (c *checkouter) write(root *scanned, dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	d := newDirRef(fd)
	c.root = fd
	if err := c.checkFree(0); err != nil {
		d.release()
		return err
	}
	// This goroutine walks the tree and inflates blobs (user time); writers
	// create the files (system time), so the two overlap on two cores.
	// Directories are made here, in walk order, before anything inside them.
	c.w = newWriters(c.ctx, max(runtime.NumCPU(), 2))
	c.buf = make([]byte, 64<<10)
	err = c.writeDir(root, d, "")
	d.release() // the writers may still hold it
	if err != nil {
		c.w.fail(err) // the writers skip what is still queued
	}
	if werr := c.w.stop(); err == nil {
		err = werr
	}
	return err
}

// writeDir writes the entries of s into the directory d, at path.
func (c *checkouter) writeDir(s *scanned, d *dirRef, path string) error {
	// Small files go to the writers in batches of one directory: fewer
	// hand-offs, and two writers seldom create in the same directory,
	// which the kernel serialises.
	b := &batch{dir: d}
	defer func() { c.flush(b) }()
	for _, e := range s.tree.Entries {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if err := c.w.err(); err != nil {
			return err
		}
		c.unchecked += 4096
		var err error
		switch k := kindOf(e.Mode); k {
		case kindDir:
			c.flush(b)                 // what waits is never held across a subtree
			err = c.subdir(e, d, path) // says where itself
		case kindGitlink: // empty, as git leaves a submodule
			err = mkdirAt(d.fd, e.Name)
		case kindFile, kindExec:
			err = c.file(e, k, b, join(path, e.Name))
		case kindLink:
			err = c.symlink(e, d)
		}
		if err == nil && c.unchecked >= freeEvery {
			err = c.checkFree(0)
		}
		if err != nil {
			if kindOf(e.Mode) == kindDir || errors.Is(err, errNoSpace) || c.ctx.Err() != nil {
				return err
			}
			return fmt.Errorf("%s: %w", join(path, e.Name), err)
		}
	}
	return nil
}

// subdir makes the directory entry e in d and writes its tree into it.
func (c *checkouter) subdir(e object.TreeEntry, d *dirRef, path string) error {
	if err := mkdirAt(d.fd, e.Name); err != nil {
		return fmt.Errorf("%s: %w", join(path, e.Name), err)
	}
	fd, err := openDirAt(d.fd, e.Name)
	if err != nil {
		return fmt.Errorf("%s: %w", join(path, e.Name), err)
	}
	sub := newDirRef(fd)
	defer sub.release()
	return c.writeDir(c.trees[e.Hash], sub, join(path, e.Name))
}

// inlineSize is the blob size from which the walker writes the file itself,
// streaming, instead of handing a copy to a writer.
const inlineSize = 1 << 20

// maxBlob bounds one file of a checkout. go-git builds a deltified object
// whole in memory, whatever its size: a crafted delta chain could take the
// worker's memory. A repository with files this big keeps them elsewhere
// (Git LFS, a registry).
const maxBlob = 1 << 30

// sizeOf is an object's size, read from its header without inflating it
// where the store can (a repository on disk can).
func (c *checkouter) sizeOf(h plumbing.Hash) (int64, error) {
	if s, ok := c.st.(interface {
		EncodedObjectSize(plumbing.Hash) (int64, error)
	}); ok {
		return s.EncodedObjectSize(h)
	}
	o, err := c.st.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return 0, err
	}
	return o.Size(), nil
}

// file reads a blob and has it written as e in b's directory (at path).
func (c *checkouter) file(e object.TreeEntry, k kind, b *batch, path string) error {
	// The size from the object's header, before anything is inflated.
	n, err := c.sizeOf(e.Hash)
	if err != nil {
		return err
	}
	if n > maxBlob {
		return fmt.Errorf("a file of %s, over the %s a checkout takes", human.Bytes(n), human.Bytes(maxBlob))
	}
	if n >= inlineSize {
		if err := c.checkFree(n); err != nil {
			return err
		}
	}
	blob, err := object.GetBlob(c.st, e.Hash)
	if err != nil {
		return err
	}
	perm := uint32(0o644)
	if k == kindExec {
		perm = 0o755
	}
	c.unchecked += blob.Size
	r, err := blob.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	if blob.Size >= inlineSize {
		return createAt(b.dir.fd, e.Name, perm, ctxReader{c.ctx, r}, c.buf)
	}
	data := make([]byte, blob.Size)
	if _, err := io.ReadFull(r, data); err != nil {
		return err
	}
	b.files = append(b.files, file{e.Name, path, perm, data})
	if b.size += len(data); len(b.files) >= batchFiles || b.size >= batchBytes {
		c.flush(b)
	}
	return nil
}

// A batch of small files is sent when it has this many, or this many bytes.
const (
	batchFiles = 128
	batchBytes = 1 << 20
)

// flush sends b's files to the writers and empties b.
func (c *checkouter) flush(b *batch) {
	if len(b.files) == 0 {
		return
	}
	b.dir.hold()
	c.w.batches <- *b
	b.files, b.size = nil, 0
}

func (c *checkouter) symlink(e object.TreeEntry, d *dirRef) error {
	target, err := c.linkTarget(e)
	if err != nil {
		return err
	}
	return symlinkAt(target, d.fd, e.Name)
}

// linkTarget reads symlink e's target, for the checkout and the tar alike.
func (c *checkouter) linkTarget(e object.TreeEntry) (string, error) {
	// A target's size is known before it is read: otherwise one of a GiB
	// would be read whole before the PATH_MAX cap below.
	if n, err := c.sizeOf(e.Hash); err != nil {
		return "", err
	} else if n >= unix.PathMax {
		return "", fmt.Errorf("a symlink target of %s, over the %d bytes the kernel takes", human.Bytes(n), unix.PathMax-1)
	}
	blob, err := object.GetBlob(c.st, e.Hash)
	if err != nil {
		return "", err
	}
	r, err := blob.Reader()
	if err != nil {
		return "", err
	}
	defer r.Close()
	// One byte over PATH_MAX: the kernel refuses a target that long.
	target, err := io.ReadAll(io.LimitReader(r, unix.PathMax+1))
	return string(target), err
}

// errNoSpace marks the free-space limit.
var errNoSpace = errors.New("not enough free space")

// checkFree fails if writing next more bytes would leave less than
// lim.MinFree free on the checkout's filesystem.
func (c *checkouter) checkFree(next int64) error {
	c.unchecked = 0
	var fs unix.Statfs_t
	if err := unix.Fstatfs(c.root, &fs); err != nil {
		return fmt.Errorf("free space: %w", err)
	}
	free := int64(min(fs.Bavail*uint64(fs.Bsize), math.MaxInt64))
	if free-next < c.lim.MinFree {
		then := ""
		if next > 0 {
			then = fmt.Sprintf(", a file of %s next,", human.Bytes(next))
		}
		return fmt.Errorf("%w: stopped with %s free on the checkout's filesystem%s and %s must remain; "+
			"JOBQ_MIN_FREE in the worker's environment sets it", errNoSpace, human.Bytes(free), then, human.Bytes(c.lim.MinFree))
	}
	return nil
}

// ctxReader stops a long copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// dirRef is an open directory shared by the walk and the writers: the last
// to let go of it closes it, so a wide tree holds few descriptors.
type dirRef struct {
	fd   int
	refs atomic.Int32
}

func newDirRef(fd int) *dirRef {
	d := &dirRef{fd: fd}
	d.refs.Store(1)
	return d
}

func (d *dirRef) hold() { d.refs.Add(1) }

func (d *dirRef) release() {
	if d.refs.Add(-1) == 0 {
		unix.Close(d.fd)
	}
}

// batch is small files of one directory, read and waiting to be written.
type batch struct {
	dir   *dirRef
	files []file
	size  int
}

type file struct {
	name string
	path string // for an error
	perm uint32
	data []byte
}

// writers write batches of small files concurrently and keep the first
// error.
type writers struct {
	batches chan batch
	wg      sync.WaitGroup
	mu      sync.Mutex
	first   error
}

func newWriters(ctx context.Context, n int) *writers {
	w := &writers{batches: make(chan batch, 4)}
	for range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for b := range w.batches {
				for _, f := range b.files {
					// After a failure or the end of ctx, only let go of
					// the queued batches' directories.
					if ctx.Err() != nil || w.err() != nil {
						break
					}
					if err := createAt(b.dir.fd, f.name, f.perm, nil, f.data); err != nil {
						w.fail(fmt.Errorf("%s: %w", f.path, err))
					}
				}
				b.dir.release()
			}
		}()
	}
	return w
}

func (w *writers) fail(err error) {
	w.mu.Lock()
	if w.first == nil {
		w.first = err
	}
	w.mu.Unlock()
}

func (w *writers) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first
}

// stop waits for the queued files and returns the first error.
func (w *writers) stop() error {
	close(w.batches)
	w.wg.Wait()
	return w.err()
}

// The calls below create one entry, named by a single path component,
// in an open directory. The kernel then resolves nothing but that name,
// and O_EXCL, mkdirat and symlinkat never follow it if it is a symlink:
// whatever the tree says, nothing is created outside the directory.

// component refuses a name that is not a single path component.
func component(op, name string) error {
	if name == "" || name == "." || name == ".." || strings.IndexByte(name, '/') >= 0 {
		return &os.PathError{Op: op, Path: name, Err: errors.New("not a single file name")}
	}
	return nil
}

// createAt creates the file name in dir with data, or with what r yields
// if r is set. A plain descriptor, not an *os.File: os.OpenFile also
// registers each file with the poller, a wasted syscall per file.
func createAt(dir int, name string, perm uint32, r io.Reader, data []byte) error {
	if err := component("create", name); err != nil {
		return err
	}
	fd, err := unix.Openat(dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if err != nil {
		return &os.PathError{Op: "create", Path: name, Err: err}
	}
	if r != nil {
		_, err = io.CopyBuffer(fdWriter(fd), r, data)
	} else {
		_, err = fdWriter(fd).Write(data)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = &os.PathError{Op: "close", Path: name, Err: cerr}
	}
	return err
}

func mkdirAt(dir int, name string) error {
	if err := component("mkdir", name); err != nil {
		return err
	}
	if err := unix.Mkdirat(dir, name, 0o755); err != nil {
		return &os.PathError{Op: "mkdir", Path: name, Err: err}
	}
	return nil
}

// openDirAt opens the directory name in dir; a symlink there is refused.
func openDirAt(dir int, name string) (int, error) {
	if err := component("open", name); err != nil {
		return -1, err
	}
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return fd, nil
}

func symlinkAt(target string, dir int, name string) error {
	if err := component("symlink", name); err != nil {
		return err
	}
	if err := unix.Symlinkat(target, dir, name); err != nil {
		return &os.PathError{Op: "symlink", Path: name, Err: err}
	}
	return nil
}

// fdWriter writes to a file descriptor.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
