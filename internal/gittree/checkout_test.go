package gittree

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/jobq/jobq/internal/testenv"
)

// rawRepo is an object store a test fills as it likes: trees with any
// entry names, in any order, which git would never write but a push can
// carry (receive.fsckObjects is off by default).
type rawRepo struct {
	t  testing.TB
	st *memory.Storage
}

func newRawRepo(t testing.TB) *rawRepo { return &rawRepo{t, memory.NewStorage()} }

func (r *rawRepo) put(o interface {
	Encode(plumbing.EncodedObject) error
}) plumbing.Hash {
	obj := r.st.NewEncodedObject()
	if err := o.Encode(obj); err != nil {
		r.t.Fatal(err)
	}
	h, err := r.st.SetEncodedObject(obj)
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

func (r *rawRepo) object(typ plumbing.ObjectType, data []byte) plumbing.Hash {
	obj := r.st.NewEncodedObject()
	obj.SetType(typ)
	w, _ := obj.Writer()
	w.Write(data)
	w.Close()
	h, err := r.st.SetEncodedObject(obj)
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

func (r *rawRepo) blob(data string) plumbing.Hash { return r.object(plumbing.BlobObject, []byte(data)) }

// tree writes entries as given: go-git's Tree.Encode would insist on order.
func (r *rawRepo) tree(entries ...object.TreeEntry) plumbing.Hash {
	var b []byte
	for _, e := range entries {
		b = fmt.Appendf(b, "%o %s\x00", uint32(e.Mode), e.Name)
		b = append(b, e.Hash[:]...)
	}
	return r.object(plumbing.TreeObject, b)
}

func (r *rawRepo) commit(tree plumbing.Hash) string {
	sig := object.Signature{Name: "t", Email: "t@t", When: time.Unix(0, 0)}
	return r.put(&object.Commit{Author: sig, Committer: sig, Message: "c", TreeHash: tree}).String()
}

// Entries of each kind.
func fileE(name string, h plumbing.Hash) object.TreeEntry {
	return object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: h}
}
func linkE(name string, h plumbing.Hash) object.TreeEntry {
	return object.TreeEntry{Name: name, Mode: filemode.Symlink, Hash: h}
}
func dirE(name string, h plumbing.Hash) object.TreeEntry {
	return object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
}

// sandbox is a checkout directory beside a victim directory that no
// checkout may touch.
type sandbox struct {
	base, co, victim string
	before           []string // what is outside co at first
}

func newSandbox(t testing.TB) sandbox {
	base := t.TempDir()
	s := sandbox{base: base, co: filepath.Join(base, "co"), victim: filepath.Join(base, "victim")}
	for _, d := range []string{s.co, s.victim} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.victim, "keep"), []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.before = s.outside(t)
	return s
}

// outside lists what is under base, outside the checkout directories
// (co and its siblings named co*), with each file's content.
func (s sandbox) outside(t testing.TB) []string {
	t.Helper()
	var got []string
	err := filepath.Walk(s.base, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() && filepath.Dir(p) == filepath.Dir(s.co) && strings.HasPrefix(fi.Name(), "co") {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(s.base, p)
		entry := fmt.Sprintf("%s %v", rel, fi.Mode())
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			entry += " " + string(b)
		}
		got = append(got, entry)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkUntouched fails if anything outside the checkout changed.
func (s sandbox) checkUntouched(t testing.TB) {
	t.Helper()
	got := s.outside(t)
	if slices.Equal(got, s.before) {
		return
	}
	var diff []string
	for _, e := range got {
		if !slices.Contains(s.before, e) {
			diff = append(diff, "+ "+e)
		}
	}
	for _, e := range s.before {
		if !slices.Contains(got, e) {
			diff = append(diff, "- "+e)
		}
	}
	t.Errorf("the checkout wrote outside its directory:\n%s", strings.Join(diff[:min(len(diff), 20)], "\n"))
}

func entries(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

var noLimits = Limits{Files: math.MaxInt64}

// The escapes by a symlink entry, then a file entry under it, and every
// name git's verify_path refuses. With the check of names, each fails with
// one line naming the entry and the commit, before anything is written;
// without it (the descriptor-relative writes alone), nothing is written
// outside either.
func TestCheckoutRefusesUnsafeNames(t *testing.T) {
	type build func(r *rawRepo, victim string) plumbing.Hash
	escape := func(link, file string) build {
		return func(r *rawRepo, victim string) plumbing.Hash {
			return r.tree(linkE(link, r.blob(victim)), fileE(file, r.blob("pwned\n")))
		}
	}
	rows := []struct {
		name  string
		tree  build
		entry string // the entry the error names
		where string // and the directory it is in
	}{
		{"link a, file ./a/authorized_keys2", escape("a", "./a/authorized_keys2"), "./a/authorized_keys2", "the top directory"},
		{"link ./a, file a/x", escape("./a", "a/x"), "./a", "the top directory"},
		{"link a, file d/../a/x", escape("a", "d/../a/x"), "d/../a/x", "the top directory"},
		{"link a/, file a/x", escape("a/", "a/x"), "a/", "the top directory"},
		{"relative link, file a/x", func(r *rawRepo, _ string) plumbing.Hash {
			return r.tree(linkE("a", r.blob("../victim")), fileE("a/x", r.blob("pwned\n")))
		}, "a/x", "the top directory"},
		{"link a, then a directory a", func(r *rawRepo, victim string) plumbing.Hash {
			return r.tree(linkE("a", r.blob(victim)), dirE("a", r.tree(fileE("x", r.blob("pwned\n")))))
		}, "a", "the top directory"},
		{"empty name", func(r *rawRepo, _ string) plumbing.Hash {
			return r.tree(fileE("", r.blob("x")))
		}, "", "the top directory"},
		{"directory .", func(r *rawRepo, _ string) plumbing.Hash {
			return r.tree(dirE(".", r.tree(fileE("x", r.blob("x")))))
		}, ".", "the top directory"},
		{"directory .. holding victim/x", func(r *rawRepo, _ string) plumbing.Hash {
			return r.tree(dirE("..", r.tree(dirE("victim", r.tree(fileE("x", r.blob("pwned\n")))))))
		}, "..", "the top directory"},
		{".git", func(r *rawRepo, _ string) plumbing.Hash {
			return r.tree(dirE(".git", r.tree(fileE("config", r.blob("x")))))
		}, ".git", "the top directory"},
		{".GiT", func(r *rawRepo, _ string) plumbing.Hash {
			return r.tree(fileE(".GiT", r.blob("x")))
		}, ".GiT", "the top directory"},
		{"a bad name below good ones", func(r *rawRepo, victim string) plumbing.Hash {
			good := r.tree(fileE("ok", r.blob("ok\n")))
			bad := r.tree(linkE("l", r.blob(victim)), fileE("l/x", r.blob("pwned\n")))
			return r.tree(fileE("a", r.blob("a\n")), dirE("b", good), dirE("z", r.tree(dirE("sub", bad))))
		}, "l/x", `"z/sub"`},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			s := newSandbox(t)
			r := newRawRepo(t)
			rev := r.commit(row.tree(r, s.victim))
			err := checkout(context.Background(), r.st, rev, s.co, noLimits, true)
			if err == nil {
				t.Fatal("checked out")
			}
			msg := err.Error()
			want := fmt.Sprintf("checkout %s: unsafe tree entry %q in %s", rev[:12], row.entry, row.where)
			if !strings.HasPrefix(msg, want) || !strings.HasSuffix(msg, "; nothing was checked out") || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line starting %q", msg, want)
			}
			if got := entries(t, s.co); len(got) != 0 {
				t.Errorf("written before the tree was refused: %q", got)
			}
			s.checkUntouched(t)

			// The second level alone.
			s.co = filepath.Join(filepath.Dir(s.co), "co-unchecked")
			os.Mkdir(s.co, 0o755)
			checkout(context.Background(), r.st, rev, s.co, noLimits, false)
			s.checkUntouched(t)
		})
	}
}

// Each descriptor-relative call refuses what is not one file name, and
// none follows a symlink in its last element.
func TestCreateAtRefusesPaths(t *testing.T) {
	s := newSandbox(t)
	if err := os.Symlink(s.victim, filepath.Join(s.co, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := openDirAt(unixAtCWD, s.co); err == nil {
		t.Fatal("openDirAt took a path")
	}
	fd, err := syscall.Open(s.co, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	calls := map[string]func(name string) error{
		"createAt":  func(n string) error { return createAt(fd, n, 0o644, nil, []byte("pwned\n")) },
		"mkdirAt":   func(n string) error { return mkdirAt(fd, n) },
		"symlinkAt": func(n string) error { return symlinkAt("/", fd, n) },
		"openDirAt": func(n string) error {
			sub, err := openDirAt(fd, n)
			if err == nil {
				syscall.Close(sub)
			}
			return err
		},
	}
	for call, f := range calls {
		for _, name := range []string{"a", "a/x", "./a", "a/", "../victim/x", "..", ".", ""} {
			if err := f(name); err == nil {
				t.Errorf("%s(%q) succeeded", call, name)
			}
		}
	}
	s.checkUntouched(t)
}

// unixAtCWD is AT_FDCWD.
const unixAtCWD = -100

// What git checks out is checked out: names that only look odd, symlinks
// whatever their target (written, never followed), modes read as git
// reads them, submodules as empty directories.
func TestCheckoutWritesOddButSafeTrees(t *testing.T) {
	s := newSandbox(t)
	r := newRawRepo(t)
	sub := r.tree(fileE("deep", r.blob("deep\n")), linkE("up", r.blob("../../victim")))
	tree := r.tree(
		fileE("...", r.blob("dots\n")),
		fileE("..a", r.blob("dota\n")),
		fileE(".gitignore", r.blob("gi\n")),
		fileE(".git2", r.blob("g2\n")),
		fileE("a.git", r.blob("ag\n")),
		fileE("sp ace\ttab\n", r.blob("ws\n")),
		object.TreeEntry{Name: "run.sh", Mode: filemode.Executable, Hash: r.blob("#!/bin/sh\n")},
		object.TreeEntry{Name: "odd-mode", Mode: 0o100664, Hash: r.blob("odd\n")},
		object.TreeEntry{Name: "module", Mode: filemode.Submodule, Hash: plumbing.NewHash(strings.Repeat("ab", 20))},
		linkE("abs", r.blob(s.victim)),
		linkE("rel", r.blob("../victim/keep")),
		dirE("d", r.tree(dirE("e", sub))),
	)
	if err := checkout(context.Background(), r.st, r.commit(tree), s.co, noLimits, true); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"...": "dots\n", "..a": "dota\n", ".gitignore": "gi\n", ".git2": "g2\n",
		"a.git": "ag\n", "sp ace\ttab\n": "ws\n", "run.sh": "#!/bin/sh\n", "odd-mode": "odd\n", "d/e/deep": "deep\n"} {
		if b, err := os.ReadFile(filepath.Join(s.co, name)); err != nil || string(b) != want {
			t.Errorf("%q: %q %v", name, b, err)
		}
	}
	for name, want := range map[string]os.FileMode{"run.sh": 0o755, "odd-mode": 0o644, "module": os.ModeDir | 0o755} {
		if fi, err := os.Lstat(filepath.Join(s.co, name)); err != nil || fi.Mode()&^0o022 != want&^0o022 {
			t.Errorf("%s: mode %v, want %v (%v)", name, fi.Mode(), want, err)
		}
	}
	for name, want := range map[string]string{"abs": s.victim, "rel": "../victim/keep", "d/e/up": "../../victim"} {
		if got, err := os.Readlink(filepath.Join(s.co, name)); err != nil || got != want {
			t.Errorf("symlink %s: %q %v, want %q", name, got, err, want)
		}
	}
	if got := entries(t, filepath.Join(s.co, "module")); len(got) != 0 {
		t.Errorf("submodule: %q", got)
	}
	s.checkUntouched(t)
}

// bomb is a tree bomb: width entries per directory, levels deep,
// each level the same subtree: levels+1 objects for width^levels files.
func bomb(r *rawRepo, width, levels int) plumbing.Hash {
	blob := r.blob("x\n")
	var es []object.TreeEntry
	for i := range width {
		es = append(es, fileE(fmt.Sprintf("f%d", i), blob))
	}
	t := r.tree(es...)
	for range levels - 1 {
		es = es[:0]
		for i := range width {
			es = append(es, dirE(fmt.Sprintf("d%d", i), t))
		}
		t = r.tree(es...)
	}
	return t
}

// JOBQ_CHECKOUT_FILES: a tree over the limit fails at once, in one line
// that says how to raise it, before anything is written.
func TestCheckoutFilesLimit(t *testing.T) {
	rows := []struct {
		name          string
		width, levels int
		limit         int64
		want          string // in the error; "" for none
	}{
		{"tree bomb, default limit", 10, 10, DefaultFiles,
			"the tree has 11111111110 entries (files, directories, symlinks), over the limit of 1000000; JOBQ_CHECKOUT_FILES"},
		{"at the limit", 10, 2, 110, ""},
		{"one over the limit", 10, 2, 109, "the tree has 110 entries"},
		{"ten levels of 100: count saturates", 100, 10, DefaultFiles, "the tree has more than 9223372036854775806 entries"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			s := newSandbox(t)
			r := newRawRepo(t)
			rev := r.commit(bomb(r, row.width, row.levels))
			err := checkout(context.Background(), r.st, rev, s.co, Limits{Files: row.limit}, true)
			if row.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), row.want) || !strings.HasPrefix(err.Error(), "checkout "+rev[:12]+": ") {
				t.Fatalf("error %v, want %q", err, row.want)
			}
			if got := entries(t, s.co); len(got) != 0 {
				t.Errorf("written before the limit was applied: %d entries", len(got))
			}
		})
	}
}

// chain is n directories "d", one inside the other, with a file at the
// bottom.
func chain(r *rawRepo, n int) plumbing.Hash {
	t := r.tree(fileE("f", r.blob("bottom\n")))
	for range n {
		t = r.tree(dirE("d", t))
	}
	return t
}

// Directories nest at most maxDepth deep: the walk holds a descriptor per
// level. The limit holds for a subtree seen first high, then deep.
func TestCheckoutDepthLimit(t *testing.T) {
	rows := []struct {
		name string
		tree func(r *rawRepo) plumbing.Hash
		ok   bool
	}{
		{"at the limit", func(r *rawRepo) plumbing.Hash { return chain(r, maxDepth) }, true},
		{"one deeper", func(r *rawRepo) plumbing.Hash { return chain(r, maxDepth+1) }, false},
		{"a subtree again, deeper", func(r *rawRepo) plumbing.Hash {
			deep := chain(r, maxDepth-10)
			again := deep
			for range 20 {
				again = r.tree(dirE("w", again))
			}
			return r.tree(dirE("a", deep), dirE("b", again))
		}, false},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			s := newSandbox(t)
			r := newRawRepo(t)
			err := checkout(context.Background(), r.st, r.commit(row.tree(r)), s.co, noLimits, true)
			if row.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("directories nested over %d deep", maxDepth)) {
				t.Fatalf("error %v", err)
			}
			if got := entries(t, s.co); len(got) != 0 {
				t.Errorf("written before the limit was applied: %q", got)
			}
		})
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A timeout or cancel stops a checkout between two entries, and it leaves
// no descriptor open.
func TestCheckoutStopsWithContext(t *testing.T) {
	rows := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		stop bool // cancel once it writes
		want error
	}{
		{"cancel", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, true, context.Canceled},
		{"timeout", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, false, context.DeadlineExceeded},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			s := newSandbox(t)
			r := newRawRepo(t)
			rev := r.commit(bomb(r, 10, 10)) // never ends on its own
			before := openFDs(t)
			ctx, cancel := row.ctx()
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- checkout(ctx, r.st, rev, s.co, noLimits, true) }()
			if row.stop {
				testenv.WaitUntil(t, "the checkout writes", time.Minute, func() bool { return len(entries(t, s.co)) > 0 })
				cancel()
			}
			if err := <-done; !errors.Is(err, row.want) {
				t.Fatalf("error %v, want %v", err, row.want)
			}
			if after := openFDs(t); after != before {
				t.Errorf("%d descriptors open before, %d after", before, after)
			}
		})
	}
}

// A checkout whose context has ended writes nothing.
func TestCheckoutEndedContext(t *testing.T) {
	s := newSandbox(t)
	r := newRawRepo(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := checkout(ctx, r.st, r.commit(bomb(r, 2, 2)), s.co, noLimits, true)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v", err)
	}
	if got := entries(t, s.co); len(got) != 0 {
		t.Errorf("written: %q", got)
	}
}

// A wide tree needs few descriptors: each directory's is closed once the
// walk and the files queued for it are done with it.
func TestCheckoutWideTreeFewDescriptors(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(openFDs(t) + 120)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	s := newSandbox(t)
	r := newRawRepo(t)
	leaf := r.tree(fileE("f", r.blob("x\n")))
	var mid, top []object.TreeEntry
	for i := range 100 {
		mid = append(mid, dirE(fmt.Sprintf("m%d", i), leaf))
	}
	midT := r.tree(mid...)
	for i := range 30 {
		top = append(top, dirE(fmt.Sprintf("t%d", i), midT))
	}
	// 3,000 directories, each with a file.
	if err := checkout(context.Background(), r.st, r.commit(r.tree(top...)), s.co, noLimits, true); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(s.co, "t29", "m99", "f")); err != nil || string(b) != "x\n" {
		t.Errorf("t29/m99/f: %q %v", b, err)
	}
}

// JOBQ_MIN_FREE: the checkout stops before its filesystem has less free,
// before a big file and every few megabytes of small ones.
func TestCheckoutMinFree(t *testing.T) {
	t.Run("never enough", func(t *testing.T) {
		s := newSandbox(t)
		r := newRawRepo(t)
		rev := r.commit(r.tree(fileE("f", r.blob("x"))))
		err := checkout(context.Background(), r.st, rev, s.co, Limits{Files: 10, MinFree: 1 << 60}, true)
		want := regexp.MustCompile(`^checkout [0-9a-f]{12}: not enough free space: stopped with [0-9.]+ [KMGTPE]iB free ` +
			`on the checkout's filesystem and 1.0 EiB must remain; JOBQ_MIN_FREE in the worker's environment sets it$`)
		if err == nil || !want.MatchString(err.Error()) {
			t.Fatalf("error %v", err)
		}
		if got := entries(t, s.co); len(got) != 0 {
			t.Errorf("written: %q", got)
		}
	})
	testenv.Require(t, os.Geteuid() == 0, "root (to mount a small tmpfs)")
	big := strings.Repeat("b", 6<<20)
	small := strings.Repeat("s", 16<<10)
	rows := []struct {
		name  string
		tree  func(r *rawRepo) plumbing.Hash
		slack int64  // how far under MinFree the free space may end
		says  string // in the error
	}{
		{"big files", func(r *rawRepo) plumbing.Hash {
			var es []object.TreeEntry
			for i := range 10 {
				es = append(es, fileE(fmt.Sprint("big", i), r.blob(big)))
			}
			return r.tree(es...)
		}, 0, ", a file of 6.0 MiB next, and 32.0 MiB must remain"},
		{"small files", func(r *rawRepo) plumbing.Hash {
			var es []object.TreeEntry
			for i := range 4000 {
				es = append(es, fileE(fmt.Sprint("small", i), r.blob(small)))
			}
			return r.tree(es...)
		}, freeEvery, "free on the checkout's filesystem and 32.0 MiB must remain"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			fs := filepath.Join(t.TempDir(), "fs")
			os.Mkdir(fs, 0o755)
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "jobq-checkout-test", fs).CombinedOutput(); err != nil {
				t.Fatalf("mount: %v %s", err, out)
			}
			t.Cleanup(func() { exec.Command("umount", fs).Run() })
			co := filepath.Join(fs, "co")
			os.Mkdir(co, 0o755)
			r := newRawRepo(t)
			const minFree = 32 << 20
			err := checkout(context.Background(), r.st, r.commit(row.tree(r)), co, Limits{Files: 1 << 20, MinFree: minFree}, true)
			if err == nil || !strings.Contains(err.Error(), row.says) || !strings.Contains(err.Error(), "JOBQ_MIN_FREE") {
				t.Fatalf("error %v", err)
			}
			var st syscall.Statfs_t
			syscall.Statfs(fs, &st)
			if free := int64(st.Bavail) * st.Bsize; free < minFree-row.slack {
				t.Errorf("%d bytes free after the checkout, minimum %d", free, minFree)
			}
		})
	}
}

// go-git takes a commit's last "tree" header, git its first, so a commit
// with two would check out another tree than the one git, cgit and a
// reviewer see.
func TestCheckoutCommitWithTwoTrees(t *testing.T) {
	s := newSandbox(t)
	r := newRawRepo(t)
	benign := r.tree(fileE("ci.sh", r.blob("echo benign\n")))
	evil := r.tree(fileE("ci.sh", r.blob("echo evil\n")))
	for name, headers := range map[string]string{
		"two trees":        fmt.Sprintf("tree %s\ntree %s\n", benign, evil),
		"tree not first":   fmt.Sprintf("author a <a@b> 1 +0000\ntree %s\n", benign),
		"no tree":          "author a <a@b> 1 +0000\n",
		"a tree in parent": fmt.Sprintf("tree %s\nparent %s\ntree %s\n", benign, benign, evil),
	} {
		rev := r.object(plumbing.CommitObject, []byte(headers+"committer a <a@b> 1 +0000\n\nmsg\n")).String()
		err := checkout(context.Background(), r.st, rev, s.co, DefaultLimits(), true)
		if err == nil || !strings.HasPrefix(err.Error(), "checkout "+rev[:12]+": ") {
			t.Errorf("%s: error %v", name, err)
		}
		if got := entries(t, s.co); len(got) != 0 {
			t.Fatalf("%s: written: %v", name, got)
		}
	}
}

// A path longer than PATH_MAX would check out (it is written relative to
// open directories) and fail only at Podman's chown. It is refused before anything is written, also where a shared
// subtree is reached at a deeper place the second time.
func TestCheckoutPathLimit(t *testing.T) {
	long := strings.Repeat("n", 250)
	deep := r0(t, 20, long)
	for name, tree := range map[string]func(r *rawRepo) plumbing.Hash{
		"deep": func(r *rawRepo) plumbing.Hash { return deep(r) },
		"shared": func(r *rawRepo) plumbing.Hash {
			sub := nest(r, 12, long)
			return r.tree(dirE("a", sub), dirE("b", nest(r, 4, long, sub)))
		},
	} {
		s := newSandbox(t)
		r := newRawRepo(t)
		rev := r.commit(tree(r))
		err := checkout(context.Background(), r.st, rev, s.co, DefaultLimits(), true)
		if err == nil || !strings.Contains(err.Error(), "bytes a checkout takes") {
			t.Errorf("%s: error %v", name, err)
		}
		if got := entries(t, s.co); len(got) != 0 {
			t.Errorf("%s: written: %d entries", name, len(got))
		}
	}
	// Long names short of the limit check out.
	s := newSandbox(t)
	r := newRawRepo(t)
	if err := checkout(context.Background(), r.st, r.commit(nest(r, 10, long)), s.co, DefaultLimits(), true); err != nil {
		t.Error(err)
	}
}

// r0 returns a builder of n nested directories named name.
func r0(_ *testing.T, n int, name string) func(r *rawRepo) plumbing.Hash {
	return func(r *rawRepo) plumbing.Hash { return nest(r, n, name) }
}

// nest is n directories named name, one in the other, with a file (or the
// tree inner, if given) at the bottom.
func nest(r *rawRepo, n int, name string, inner ...plumbing.Hash) plumbing.Hash {
	t := r.tree(fileE("f", r.blob("bottom\n")))
	if len(inner) > 0 {
		t = inner[0]
	}
	for range n {
		t = r.tree(dirE(name, t))
	}
	return t
}

// sizedStore reports a size for some objects without having them whole,
// and counts what is read of them: a blob refused by its size must not be
// inflated first.
type sizedStore struct {
	*memory.Storage
	sizes map[plumbing.Hash]int64
	read  int
}

func (s *sizedStore) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	if n, ok := s.sizes[h]; ok {
		return n, nil
	}
	o, err := s.Storage.EncodedObject(plumbing.AnyObject, h)
	if err != nil {
		return 0, err
	}
	return o.Size(), nil
}

func (s *sizedStore) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if _, ok := s.sizes[h]; ok {
		s.read++
	}
	return s.Storage.EncodedObject(t, h)
}

// A blob must not be inflated whole before its size is looked at: a
// large, compressible file of a small push, or a large symlink target,
// would take gigabytes of memory. Blobs are judged by their header.
func TestCheckoutJudgesBlobsBySize(t *testing.T) {
	for name, row := range map[string]struct {
		entry   func(plumbing.Hash) object.TreeEntry
		size    int64
		minFree int64 // -1: all but 1 MiB of the free space must remain
		want    string
	}{
		"symlink target over PATH_MAX": {func(h plumbing.Hash) object.TreeEntry { return linkE("l", h) }, 1 << 30, 0, "a symlink target of 1.0 GiB"},
		"file over the largest":        {func(h plumbing.Hash) object.TreeEntry { return fileE("f", h) }, 2 << 30, 0, "a file of 2.0 GiB"},
		"file over the free space":     {func(h plumbing.Hash) object.TreeEntry { return fileE("f", h) }, maxBlob, -1, "not enough free space"},
	} {
		s := newSandbox(t)
		r := newRawRepo(t)
		big := r.blob("stands for a big blob")
		rev := r.commit(r.tree(row.entry(big)))
		st := &sizedStore{Storage: r.st, sizes: map[plumbing.Hash]int64{big: row.size}}
		lim := Limits{Files: 10, MinFree: row.minFree}
		if row.minFree < 0 {
			var fs syscall.Statfs_t
			if err := syscall.Statfs(s.co, &fs); err != nil {
				t.Fatal(err)
			}
			lim.MinFree = int64(fs.Bavail)*fs.Bsize - 1<<20
		}
		err := checkout(context.Background(), st, rev, s.co, lim, true)
		if err == nil || !strings.Contains(err.Error(), row.want) {
			t.Errorf("%s: error %v, want %q", name, err, row.want)
		}
		if st.read != 0 {
			t.Errorf("%s: the blob was read %d times before it was refused", name, st.read)
		}
	}
}

// A large blob of a repository on disk is streamed, not held whole in
// memory (go-git's LargeObjectThreshold).
func TestCheckoutStreamsLargeBlobs(t *testing.T) {
	git := t.TempDir()
	const n = 64 << 20
	cmd := exec.Command("sh", "-c", `git init -q --bare . && head -c `+fmt.Sprint(n)+` /dev/zero >"$TMP/big" &&
		b=$(git hash-object -w "$TMP/big") && t=$(printf '100644 blob %s\tbig\n' "$b" | git mktree) &&
		git -c user.name=t -c user.email=t@t commit-tree -m c "$t"`)
	cmd.Dir = git
	cmd.Env = append(os.Environ(), "TMP="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := Checkout(context.Background(), git, strings.TrimSpace(string(out)), dir, Limits{Files: 10}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if fi, err := os.Stat(filepath.Join(dir, "big")); err != nil || fi.Size() != n {
		t.Fatalf("big: %v %v", fi, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > n/4 {
		t.Errorf("checking out a %d MiB blob allocated %d MiB: it was held whole", n>>20, alloc>>20)
	}
}

// tag writes an annotated tag of target, of the type it claims.
func (r *rawRepo) tag(target plumbing.Hash, typ string) plumbing.Hash {
	return r.object(plumbing.TagObject, fmt.Appendf(nil, "object %s\ntype %s\ntag v1\ntagger a <a@b> 1 +0000\n\nrelease\n", target, typ))
}

// A push of an annotated tag hands the hook the tag object's name: the
// checkout peels it, and tags of tags, to the commit (a chain of at most
// maxTagChain tags); a tag of a tree or a blob, a chain too long and a
// tag without its object header fail in one line, with nothing written;
// Archive does as Checkout does.
func TestCheckoutPeelsTags(t *testing.T) {
	r := newRawRepo(t)
	tree := r.tree(fileE("ci.sh", r.blob("echo tagged\n")))
	commit := plumbing.NewHash(r.commit(tree))
	chain := func(n int) plumbing.Hash {
		h := commit
		for i := range n {
			typ := "tag"
			if i == 0 {
				typ = "commit"
			}
			h = r.tag(h, typ)
		}
		return h
	}
	tests := []struct {
		name string
		rev  plumbing.Hash
		err  string // "": checks out ci.sh
	}{
		{"commit", commit, ""},
		{"tag", chain(1), ""},
		{"tag of a tag", chain(2), ""},
		{"longest chain", chain(maxTagChain), ""},
		{"chain too long", chain(maxTagChain + 1), "tags of tags over 32 deep; nothing was"},
		{"tag of a tree", r.tag(tree, "tree"), "is a tree, not a commit (or a tag of one): there is nothing to check out; nothing was"},
		{"tag of a blob", r.tag(r.blob("x"), "blob"), "is a blob, not a commit (or a tag of one)"},
		{"tag of a tag of a tree", r.tag(r.tag(tree, "tree"), "tag"), "is a tree, not a commit"},
		{"tree", tree, "is a tree, not a commit"},
		{"tag lying about its type", r.tag(tree, "commit"), "is a tree, not a commit"},
		{"tag without object header", r.object(plumbing.TagObject, fmt.Appendf(nil, "type commit\nobject %s\n\n", commit)), "its headers do not begin with the object it tags"},
		{"tag of a missing object", r.tag(plumbing.NewHash(strings.Repeat("1", 40)), "commit"), "object not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			err := checkout(context.Background(), r.st, tt.rev.String(), s.co, DefaultLimits(), true)
			var tarBuf strings.Builder
			aerr := archive(context.Background(), r.st, tt.rev.String(), &tarBuf, DefaultLimits(), true)
			if tt.err == "" {
				if err != nil || aerr != nil {
					t.Fatalf("checkout: %v; archive: %v", err, aerr)
				}
				if b, _ := os.ReadFile(filepath.Join(s.co, "ci.sh")); string(b) != "echo tagged\n" {
					t.Errorf("ci.sh is %q", b)
				}
				if !strings.Contains(tarBuf.String(), "echo tagged") {
					t.Error("the archive lacks ci.sh")
				}
				return
			}
			want := "checkout " + tt.rev.String()[:12] + ": "
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "\n") {
				t.Errorf("checkout: %v; want %q…%q", err, want, tt.err)
			}
			if aerr == nil || !strings.Contains(aerr.Error(), strings.TrimSuffix(tt.err, "; nothing was")) || tarBuf.Len() != 0 {
				t.Errorf("archive: %v, %d bytes written", aerr, tarBuf.Len())
			}
			if got := entries(t, s.co); len(got) != 0 {
				t.Errorf("written: %v", got)
			}
		})
	}
}

func TestCheckout(t *testing.T) {
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"a.txt": "A\n", "dir/b.sh": "#!/bin/sh\n", "dir/sub/c": "C"})
	dir := t.TempDir()
	if err := Checkout(context.Background(), gitDir, rev, dir, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"a.txt": "A\n", "dir/b.sh": "#!/bin/sh\n", "dir/sub/c": "C"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v", name, b, err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "dir/b.sh")); fi.Mode()&0o100 == 0 {
		t.Error("executable bit lost")
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		t.Error(".git in the checkout")
	}
	if err := Checkout(context.Background(), gitDir, strings.Repeat("b", 40), t.TempDir(), DefaultLimits()); err == nil {
		t.Error("checkout of a missing revision succeeded")
	}
}

// A crafted tree with a symlink "a" to a directory outside and a file
// "a/x" must not write through the link.
func TestCheckoutRefusesPathsUnderSymlinks(t *testing.T) {
	outside := t.TempDir()
	dir := t.TempDir()
	gitDir := filepath.Join(dir, "evil.git")
	git := func(stdin string, args ...string) string {
		cmd := exec.Command("git", append([]string{"--git-dir", gitDir}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	exec.Command("git", "init", "-q", "--bare", gitDir).Run()
	link := git(outside, "hash-object", "-w", "--stdin")
	blob := git("pwned\n", "hash-object", "-w", "--stdin")
	sub := git("100644 blob "+blob+"\tx\n", "mktree")
	// mktree sorts entries itself; two entries named "a" (a link and a tree)
	// make the tree git would never write, but a push could carry.
	tree := git("120000 blob "+link+"\ta\n040000 tree "+sub+"\ta\n", "mktree", "--missing")
	rev := git("", "commit-tree", tree, "-m", "evil")
	err := Checkout(context.Background(), gitDir, rev, t.TempDir(), DefaultLimits())
	if _, statErr := os.Stat(filepath.Join(outside, "x")); statErr == nil {
		t.Fatal("the checkout wrote through a symlink to outside its directory")
	}
	if err == nil {
		t.Error("a tree with a path under a symlink checked out without error")
	}
}
