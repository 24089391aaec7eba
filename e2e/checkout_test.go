package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

func init() { confParts = append(confParts, checkoutConf) }

// Podman-runner repositories for hostile trees; each its own queue, so
// that each push starts a worker with the environment of that moment.
const checkoutConf = `
repo co-escape co-bomb co-limit co-timeout
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest true"

repo co-timeout
    option ENV.JOBQ_TIMEOUT = "2s"
`

// treeEntry is one entry of a raw tree: git's octal mode, any name.
type treeEntry struct{ mode, name, hash string }

// rawPush builds objects in a fresh local repository as a hostile pusher
// would, with git hash-object --literally, and pushes the commit that
// build returns to ref of repo as alice. It returns the commit.
func rawPush(t *testing.T, repo, ref string, build func(blob func(string) string, tree func(...treeEntry) string) string) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	git := func(stdin []byte, args ...string) string {
		t.Helper()
		cmd := env.GitCmd(ctx, "alice", dir, args...)
		cmd.Stdin = strings.NewReader(string(stdin))
		r := testenv.Capture(cmd)
		if r.Code != 0 {
			t.Fatalf("git %v: %s", args, r)
		}
		return strings.TrimSpace(r.Stdout)
	}
	git(nil, "init", "-q", ".")
	blob := func(data string) string { return git([]byte(data), "hash-object", "-w", "--stdin") }
	tree := func(entries ...treeEntry) string {
		var b []byte
		for _, e := range entries {
			h, err := hex.DecodeString(e.hash)
			if err != nil {
				t.Fatal(err)
			}
			b = fmt.Appendf(b, "%s %s\x00", e.mode, e.name)
			b = append(b, h...)
		}
		return git(b, "hash-object", "--literally", "-t", "tree", "-w", "--stdin")
	}
	commit := git(nil, "commit-tree", build(blob, tree), "-m", "hostile tree")
	git(nil, "push", "-q", env.URL(repo), commit+":"+ref)
	return commit
}

// resultLine is the last line of a job's log, as its reader sees it.
func resultLine(t *testing.T, repo string, id int) string {
	t.Helper()
	r := follow(t, "alice", repo, id)
	lines := strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n")
	return lines[len(lines)-1]
}

// Trees whose entry names lead out of the checkout (a symlink entry,
// then a file entry under it) would give a shell as the hosting account.
// Each push fails its job with one line naming the entry and the commit,
// and nothing is written outside the checkout.
func TestCheckoutEscapesRefused(t *testing.T) {
	keys := filepath.Join(env.Home, ".ssh", "authorized_keys2")
	victim := filepath.Join(env.Home, "co-victim")
	if err := os.MkdirAll(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(victim, env.UID, env.GID)
	defer os.RemoveAll(victim)
	defer os.Remove(keys)
	rows := []struct {
		link, target, file string
		bad                string // the entry the result line names
	}{
		{"a", filepath.Join(env.Home, ".ssh"), "./a/authorized_keys2", "./a/authorized_keys2"},
		{"./a", victim, "a/x1", "./a"},
		{"a", victim, "d/../a/x2", "d/../a/x2"},
		{"a/", victim, "a/x3", "a/"},
	}
	commits := make([]string, len(rows))
	for i, row := range rows {
		commits[i] = rawPush(t, "co-escape", fmt.Sprintf("refs/heads/row%d", i), func(blob func(string) string, tree func(...treeEntry) string) string {
			return tree(treeEntry{"120000", row.link, blob(row.target)},
				treeEntry{"100644", row.file, blob("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostileHostileHostileHostileHostileHostile0 pwned\n")})
		})
	}
	jobs := waitFinal(t, "co-escape", len(rows))
	for i, row := range rows {
		// Listings are newest first.
		if j := jobs[len(rows)-1-i]; j.State != "failed" {
			t.Errorf("row %d (%s -> %s, %s): job %d %s", i, row.link, row.target, row.file, j.ID, j.State)
		}
		want := fmt.Sprintf("jobq: failed: checkout %s: unsafe tree entry %q in the top directory: ", commits[i][:12], row.bad)
		if line := resultLine(t, "co-escape", i); !strings.HasPrefix(line, want) || !strings.Contains(line, "; nothing was checked out, after ") {
			t.Errorf("row %d: result line\n%s\nwant it to start\n%s", i, line, want)
		}
	}
	if _, err := os.Lstat(keys); err == nil {
		t.Errorf("%s was written: ssh as the hosting account", keys)
	}
	if ents, _ := os.ReadDir(victim); len(ents) != 0 {
		t.Errorf("written outside the checkout, into %s: %v", victim, ents)
	}
	testenv.WaitUntil(t, "no checkout is left", time.Minute, func() bool { return len(accountCheckouts(t)) == 0 })
}

// bombTree is a tree bomb: width entries per directory, levels
// deep, every directory the same subtree (width^levels files from
// levels+1 objects).
func bombTree(blob func(string) string, tree func(...treeEntry) string, width, levels int) string {
	x := blob("x\n")
	var es []treeEntry
	for i := range width {
		es = append(es, treeEntry{"100644", fmt.Sprintf("f%d", i), x})
	}
	t := tree(es...)
	for range levels - 1 {
		es = es[:0]
		for i := range width {
			es = append(es, treeEntry{"40000", fmt.Sprintf("d%d", i), t})
		}
		t = tree(es...)
	}
	return t
}

// A 12-object tree of 10^10 files would hold a queue and a slot until
// /tmp was full. It fails at once on the file limit
// (JOBQ_CHECKOUT_FILES, a million by default), and a checkout that the
// limits allow still ends at the job's timeout.
func TestCheckoutTreeBomb(t *testing.T) {
	t.Run("default limit", func(t *testing.T) {
		commit := rawPush(t, "co-bomb", "refs/heads/master", func(blob func(string) string, tree func(...treeEntry) string) string {
			return bombTree(blob, tree, 10, 10)
		})
		if j := waitFinal(t, "co-bomb", 1); j[0].State != "failed" {
			t.Errorf("job %+v", j[0])
		}
		want := fmt.Sprintf("jobq: failed: checkout %s: the tree has 11111111110 entries (files, directories, symlinks), "+
			"over the limit of 1000000; JOBQ_CHECKOUT_FILES in the worker's environment sets it; nothing was checked out, after ", commit[:12])
		if line := resultLine(t, "co-bomb", 0); !strings.HasPrefix(line, want) {
			t.Errorf("result line\n%s\nwant it to start\n%s", line, want)
		}
	})
	t.Run("JOBQ_CHECKOUT_FILES", func(t *testing.T) {
		setRC(t, map[string]string{"JOBQ_CHECKOUT_FILES": "100"})
		rawPush(t, "co-limit", "refs/heads/master", func(blob func(string) string, tree func(...treeEntry) string) string {
			return bombTree(blob, tree, 10, 3)
		})
		if j := waitFinal(t, "co-limit", 1); j[0].State != "failed" {
			t.Errorf("job %+v", j[0])
		}
		if line := resultLine(t, "co-limit", 0); !strings.Contains(line, "the tree has 1110 entries (files, directories, symlinks), over the limit of 100; JOBQ_CHECKOUT_FILES") {
			t.Errorf("result line %s", line)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		setRC(t, map[string]string{"JOBQ_CHECKOUT_FILES": "1000000000000"})
		rawPush(t, "co-timeout", "refs/heads/master", func(blob func(string) string, tree func(...treeEntry) string) string {
			return bombTree(blob, tree, 10, 10)
		})
		if j := waitFinal(t, "co-timeout", 1); j[0].State != "timed-out" {
			t.Errorf("job %+v", j[0])
		}
		if line := resultLine(t, "co-timeout", 0); !strings.HasPrefix(line, "jobq: timed-out: exceeded JOBQ_TIMEOUT=2s, after ") {
			t.Errorf("result line %s", line)
		}
	})
	testenv.WaitUntil(t, "no checkout is left", 2*time.Minute, func() bool { return len(accountCheckouts(t)) == 0 })
}
