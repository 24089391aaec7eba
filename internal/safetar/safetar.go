// Package safetar writes regular files out of a hostile tar stream into a
// directory, and nothing else, nowhere else: the tar a job's container
// hands back (its artifacts, read through Podman's archive endpoint) is
// written by whoever pushed the job.
//
// Its rules are the checkout's (internal/gittree): every segment of an
// entry's name is checked as git checks a tree entry's, and names are
// canonical, relative, printable and of bounded length and depth;
// everything is created through an os.Root of the directory, which
// resolves nothing outside it. Only regular files are written, and hard
// links to files already written (as copies); symlinks, devices, fifos
// and any other kind are left out, so a link can lead nowhere. A file's
// size is judged from its header before a byte of it is written, and
// exactly that many bytes are written. Limits bound the files, their
// total size, the headers read and the bytes read, whatever the stream
// holds; Room stops the writing before the filesystem runs short.
package safetar

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/jobq/jobq/internal/gittree"
	"github.com/jobq/jobq/internal/human"
)

// Limits bound what one Extractor writes and reads, over all its streams.
type Limits struct {
	Files int   // regular files written
	Bytes int64 // their total size
	// Entries bounds the headers read, of every kind; Read the bytes
	// read from the streams (headers and the contents of entries left
	// out included): a tar of a million empty files, or of a huge file
	// that no pattern selects, costs no more than these.
	Entries int
	Read    int64
}

// Bounds on a name: as the checkout's, a path well under PATH_MAX, and
// depth enough for any build's output.
const (
	maxName  = 4096 - 256
	maxDepth = 256
)

// maxReports bounds the lines an Extractor reports about single entries
// left out; the rest are counted (Result.Unreported).
const maxReports = 20

// Options configure an Extractor.
type Options struct {
	Limits
	// Select maps an entry's checked name to the name it is written as,
	// relative to the directory (checked again), or reports false: the
	// entry is skipped, and not reported. nil writes every entry as
	// named.
	Select func(name string) (string, bool)
	// Room says why size more bytes cannot be written (the filesystem is
	// running short), or "": it is asked before each file.
	Room func(size int64) string
	// Report gets one line about what is left out and why.
	Report func(line string)
}

// Extractor writes the files of one or more tar streams into one
// directory, under one set of limits.
type Extractor struct {
	root    *os.Root
	opt     Options
	written map[string]int64 // name → size, of every file written
	res     Result
	entries int
	read    int64
	buf     []byte
}

// Result is what an Extractor wrote, and what it left out.
type Result struct {
	Files int
	Bytes int64
	// Stopped says why it stopped reading ("" if it read everything):
	// a limit, or Room.
	Stopped string
	// Unreported counts the entries left out beyond the reports.
	Unreported int
	reports    int
}

// ErrStopped marks the end of reading at a limit or for lack of room:
// what follows in the stream is left out (Result.Stopped says why).
var ErrStopped = errors.New("stopped")

// New returns an Extractor writing into dir, which must exist.
func New(dir string, opt Options) (*Extractor, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &Extractor{root: root, opt: opt, written: map[string]int64{}, buf: make([]byte, 256<<10)}, nil
}

// Close closes the directory.
func (x *Extractor) Close() error { return x.root.Close() }

// Result is what was written and left out so far.
func (x *Extractor) Result() Result { return x.res }

// Written is every file written so far, by name, with its size.
func (x *Extractor) Written() map[string]int64 { return x.written }

// Extract writes the selected regular files of tar stream r. It returns
// ErrStopped (wrapped) once a limit or Room stops it (Result.Stopped),
// an error for a stream that is not a tar or breaks off, or for a file it
// could not write, and nil at the stream's end.
func (x *Extractor) Extract(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(&boundedReader{ctx: ctx, r: r, x: x})
	for {
		if x.entries >= x.opt.Entries {
			return x.stop(fmt.Sprintf("read %d entries, the most it reads (JOBQ_ARTIFACTS_MAX's count of files, times 10)", x.opt.Entries))
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if errors.Is(err, ErrStopped) {
			return err
		}
		if err != nil {
			return fmt.Errorf("the container's tar: %w", err)
		}
		x.entries++
		if err := x.entry(tr, hdr); err != nil {
			return err
		}
	}
}

// ExtractSelected is Extract with sel in place of Options.Select, for
// stream r alone: streams of different places name their entries
// differently.
func (x *Extractor) ExtractSelected(ctx context.Context, r io.Reader, sel func(string) (string, bool)) error {
	prev := x.opt.Select
	x.opt.Select = sel
	defer func() { x.opt.Select = prev }()
	return x.Extract(ctx, r)
}

func (x *Extractor) stop(why string) error {
	x.res.Stopped = why
	return fmt.Errorf("%w: %s", ErrStopped, why)
}

func (x *Extractor) report(name, why string) {
	if x.res.reports >= maxReports {
		x.res.Unreported++
		return
	}
	x.res.reports++
	if x.opt.Report != nil {
		x.opt.Report(fmt.Sprintf("%q left out: %s", name, why))
	}
}

// entry writes one entry, or leaves it out.
func (x *Extractor) entry(tr *tar.Reader, hdr *tar.Header) error {
	raw := hdr.Name
	if hdr.Typeflag == tar.TypeDir {
		return nil // directories are made for the files in them
	}
	name, why := Clean(raw)
	if why != "" {
		x.report(printable(raw), why)
		return nil
	}
	dest := name
	if x.opt.Select != nil {
		var ok bool
		if dest, ok = x.opt.Select(name); !ok {
			return nil
		}
		if d, why := Clean(dest); why != "" || d != dest {
			return fmt.Errorf("select named %q for %q: %s", dest, name, why)
		}
	}
	if _, dup := x.written[dest]; dup {
		return nil // selected twice (overlapping patterns), or named twice
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		return x.file(dest, hdr.Size, hdr.Mode, tr)
	case tar.TypeLink:
		return x.link(dest, hdr)
	case tar.TypeSymlink:
		x.report(dest, "a symlink (only files are collected)")
	case tar.TypeChar, tar.TypeBlock:
		x.report(dest, "a device node")
	case tar.TypeFifo:
		x.report(dest, "a fifo")
	default:
		x.report(dest, fmt.Sprintf("an entry of type %q, not a file", hdr.Typeflag))
	}
	return nil
}

// link writes a hard link to a file written before as a copy of it; a
// link to anything else is left out.
func (x *Extractor) link(dest string, hdr *tar.Header) error {
	target, why := Clean(hdr.Linkname)
	if why == "" && x.opt.Select != nil {
		var ok bool
		if target, ok = x.opt.Select(target); !ok {
			why = "a hard link to a file not collected"
		}
	}
	size, ok := x.written[target]
	if why == "" && !ok {
		why = "a hard link to a file not collected"
	}
	if why != "" {
		x.report(dest, "a hard link: "+why)
		return nil
	}
	f, err := x.root.OpenFile(target, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return fmt.Errorf("artifact %q: %w", target, err)
	}
	defer f.Close()
	return x.file(dest, size, hdr.Mode, f)
}

// file writes size bytes of r as file dest, judging size first.
func (x *Extractor) file(dest string, size, mode int64, r io.Reader) error {
	switch {
	case size < 0:
		x.report(dest, "a negative size")
		return nil
	case x.res.Files >= x.opt.Files:
		return x.stop(fmt.Sprintf("%d files collected, the most JOBQ_ARTIFACTS_MAX allows; %q and any after it left out", x.opt.Files, dest))
	case size > x.opt.Bytes-x.res.Bytes:
		x.report(dest, fmt.Sprintf("%s, over what is left of JOBQ_ARTIFACTS_MAX's %s", human.Bytes(size), human.Bytes(x.opt.Bytes)))
		return nil
	}
	if x.opt.Room != nil {
		if why := x.opt.Room(size); why != "" {
			return x.stop(fmt.Sprintf("%s; %q and any after it left out", why, dest))
		}
	}
	if err := x.mkdirs(dest); err != nil {
		return err
	}
	perm := os.FileMode(0o600)
	if mode&0o111 != 0 {
		perm = 0o700
	}
	f, err := x.root.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, perm)
	if err != nil {
		return fmt.Errorf("artifact %q: %w", dest, err)
	}
	n, err := io.CopyBuffer(f, io.LimitReader(r, size), x.buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n < size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		x.root.Remove(dest)
		if errors.Is(err, ErrStopped) {
			return err
		}
		return fmt.Errorf("artifact %q: %w", dest, err)
	}
	x.written[dest] = size
	x.res.Files++
	x.res.Bytes += size
	return nil
}

// mkdirs makes the directories above name.
func (x *Extractor) mkdirs(name string) error {
	i := 0
	for {
		j := strings.IndexByte(name[i:], '/')
		if j < 0 {
			return nil
		}
		dir := name[:i+j]
		if err := x.root.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("artifact directory %q: %w", dir, err)
		}
		i += j + 1
	}
}

// Clean checks an entry's name: it returns the name, with a leading "./"
// and a directory's trailing "/" taken off, or why it is refused.
func Clean(name string) (string, string) {
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	name = strings.TrimSuffix(name, "/")
	switch {
	case name == "":
		return "", "an empty name"
	case strings.HasPrefix(name, "/"):
		return "", "an absolute name"
	case len(name) > maxName:
		return "", fmt.Sprintf("a name over %d bytes", maxName)
	case !utf8.ValidString(name):
		return "", "a name that is not UTF-8"
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 }):
		return "", "a name with control characters"
	}
	depth := 0
	for seg := range strings.SplitSeq(name, "/") {
		if depth++; depth > maxDepth {
			return "", fmt.Sprintf("nested over %d deep", maxDepth)
		}
		if why := gittree.BadName(seg); why != "" {
			return "", why
		}
		if len(seg) > 255 {
			return "", "a segment over 255 bytes"
		}
	}
	return name, ""
}

// printable is a refused name as a line may show it: bounded, and quoted
// by the caller (%q) so that no control character reaches a terminal.
func printable(name string) string {
	if len(name) > 200 {
		return name[:200] + "..."
	}
	return name
}

// boundedReader counts the bytes read against Limits.Read and stops a
// read when its context ends.
type boundedReader struct {
	ctx context.Context
	r   io.Reader
	x   *Extractor
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	left := b.x.opt.Read - b.x.read
	if left <= 0 {
		return 0, b.x.stop(fmt.Sprintf("read %s from the container, the most it reads (JOBQ_ARTIFACTS_MAX's size, times 4)", human.Bytes(b.x.opt.Read)))
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := b.r.Read(p)
	b.x.read += int64(n)
	return n, err
}

// noFollow: the last segment of a name is never followed if it is a
// symlink (none is ever written; this is the second wall).
const noFollow = syscall.O_NOFOLLOW
