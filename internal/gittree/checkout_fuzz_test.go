package gittree

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// FuzzCheckout builds a tree from a small language, checks it out into a
// sandbox beside a victim directory, with and without the check of names,
// and fails if anything outside the checkout changed. A tree with a name
// git refuses must fail before anything is written. One line per entry:
//
//	f NAME DATA    a file           x NAME DATA   an executable
//	l NAME TARGET  a symlink: $V is the victim directory, $S the sandbox
//	d NAME         a directory, up to the next "e" line
//	r NAME         the directory closed last, again (bombs, duplicates)
//	m NAME         a submodule
//
// NAME may hold anything but a space or newline: "/", "..", "" and all.
// The seeds in testdata/fuzz/FuzzCheckout hold known escapes from the
// checkout.
func FuzzCheckout(f *testing.F) {
	f.Add([]byte("l a $V\nf ./a/authorized_keys2 ssh-ed25519 AAAA\n"))
	f.Add([]byte("d sub\nf ok ok\ne\nl up ../victim\nf up/x pwned\n"))
	f.Fuzz(func(t *testing.T, spec []byte) {
		s := newFuzzSandbox(t)
		r := newRawRepo(t)
		tree, bad := buildTree(r, string(spec), s)
		rev := r.commit(tree)
		lim := Limits{Files: 2000}
		err := checkout(context.Background(), r.st, rev, s.co, lim, true)
		if bad != "" && err == nil {
			t.Errorf("a tree with %s checked out", bad)
		}
		if bad != "" && len(entries(t, s.co)) != 0 {
			t.Errorf("a tree with %s was refused after writing: %v", bad, err)
		}
		s.checkUntouched(t)
		// The second level alone.
		s.co = filepath.Join(filepath.Dir(s.co), "co-unchecked")
		if err := os.Mkdir(s.co, 0o755); err != nil {
			t.Fatal(err)
		}
		checkout(context.Background(), r.st, rev, s.co, lim, false)
		s.checkUntouched(t)
	})
}

// newFuzzSandbox puts the sandbox eight directories below the test's
// temporary directory, which is what it compares: with at most six ".."
// in a tree and absolute targets kept below the sandbox's parent, even a
// broken checkout could not reach past it.
func newFuzzSandbox(t *testing.T) sandbox {
	base := t.TempDir()
	top := filepath.Join(base, "1/2/3/4/5/6/7/8")
	if err := os.MkdirAll(top, 0o755); err != nil {
		t.Fatal(err)
	}
	s := sandbox{base: base, co: filepath.Join(top, "sandbox", "co"), victim: filepath.Join(top, "sandbox", "victim")}
	for _, d := range []string{filepath.Dir(s.co), s.co, s.victim} {
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

// maxUps bounds the ".." elements of one fuzzed tree (see newFuzzSandbox).
const maxUps = 6

// buildTree builds spec's tree, and says why git would refuse it, if it
// would.
func buildTree(r *rawRepo, spec string, s sandbox) (tree plumbing.Hash, bad string) {
	type frame struct {
		name    string
		entries []object.TreeEntry
		seen    map[string]bool
	}
	stack := []*frame{{seen: map[string]bool{}}}
	var last plumbing.Hash
	haveLast := false
	ups := 0
	add := func(e object.TreeEntry) {
		f := stack[len(stack)-1]
		if why := badName(e.Name); why != "" && bad == "" {
			bad = why
		}
		if f.seen[e.Name] && bad == "" {
			bad = "a name twice"
		}
		f.seen[e.Name] = true
		f.entries = append(f.entries, e)
	}
	closeDir := func() {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		last, haveLast = r.tree(f.entries...), true
		add(object.TreeEntry{Name: f.name, Mode: filemode.Dir, Hash: last})
	}
	sc := bufio.NewScanner(strings.NewReader(spec))
	for n := 0; sc.Scan() && n < 300; n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		name, arg, _ := strings.Cut(strings.TrimPrefix(line[1:], " "), " ")
		if strings.IndexByte(name, 0) >= 0 {
			continue // a tree cannot hold it: it ends the name
		}
		if ups += dotdots(name) + dotdots(arg); ups > maxUps {
			break
		}
		switch line[0] {
		case 'f':
			add(object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: r.blob(arg)})
		case 'x':
			add(object.TreeEntry{Name: name, Mode: filemode.Executable, Hash: r.blob(arg)})
		case 'l':
			arg = strings.NewReplacer("$V", s.victim, "$S", filepath.Dir(s.co)).Replace(arg)
			if strings.HasPrefix(arg, "/") && !strings.HasPrefix(arg, filepath.Dir(s.co)) {
				arg = filepath.Dir(filepath.Dir(s.co)) + arg
			}
			add(object.TreeEntry{Name: name, Mode: filemode.Symlink, Hash: r.blob(arg)})
		case 'm':
			add(object.TreeEntry{Name: name, Mode: filemode.Submodule, Hash: plumbing.NewHash(strings.Repeat("ab", 20))})
		case 'd':
			if len(stack) < 50 {
				stack = append(stack, &frame{name: name, seen: map[string]bool{}})
			}
		case 'e':
			if len(stack) > 1 {
				closeDir()
			}
		case 'r':
			if haveLast {
				add(object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: last})
			}
		}
	}
	for len(stack) > 1 {
		closeDir()
	}
	return r.tree(stack[0].entries...), bad
}

// dotdots counts the ".." elements of a path.
func dotdots(p string) int {
	n := 0
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			n++
		}
	}
	return n
}
