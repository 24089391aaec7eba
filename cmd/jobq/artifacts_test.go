package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/jobq/jobq/queue"
)

// collected stores artifacts for job id of repo, as a collection would.
func collected(t *testing.T, s *queue.Store, j *queue.Job, files map[string]string) {
	t.Helper()
	dir, err := s.NewArtifacts(j)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PublishArtifacts(j); err != nil {
		t.Fatal(err)
	}
}

func TestArtifactsCommand(t *testing.T) {
	home, base := t.TempDir(), t.TempDir()
	a, _ := bareRepo(t, base, "r")
	g := newFakeGitolite(t, "r alice R any", "r carol R any")
	s, _ := queue.Open(home)
	id := queueJob(t, s, "r", "refs/heads/master", a, filepath.Join(base, "r.git"))
	j, _ := s.Job("r", id)
	collected(t, s, j, map[string]string{"dist/app.tar.gz": "\x1f\x8b binary", "report/index.html": "<script>alert(1)</script>"})
	vars := func(user string) map[string]string {
		return map[string]string{"JOBQ_HOME": home, "GL_USER": user, "GL_BINDIR": g.dir, "GL_REPO_BASE": base}
	}

	code, out, stderr := invoke(t, vars("carol"), "", "artifacts", "r", "0")
	if code != 0 || out != "PATH               SIZE\ndist/app.tar.gz    9 bytes\nreport/index.html  25 bytes\n" {
		t.Errorf("list: %d\n%s%s", code, out, stderr)
	}
	code, out, _ = invoke(t, vars("carol"), "", "artifacts", "r", "0", "--json")
	if code != 0 || !strings.Contains(out, `"path": "dist/app.tar.gz",`) || !strings.Contains(out, `"size": 25`) {
		t.Errorf("--json: %d\n%s", code, out)
	}
	code, out, _ = invoke(t, vars("carol"), "", "artifacts", "r", "0", "dist/app.tar.gz")
	if code != 0 || out != "\x1f\x8b binary" {
		t.Errorf("one file: %d %q", code, out)
	}
	code, out, _ = invoke(t, vars("carol"), "", "artifacts", "r", "0", "--tar")
	if code != 0 {
		t.Fatalf("--tar: %d", code)
	}
	tr := tar.NewReader(bytes.NewReader([]byte(out)))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		names = append(names, h.Name+"="+string(b))
	}
	if strings.Join(names, "|") != "dist/app.tar.gz=\x1f\x8b binary|report/index.html=<script>alert(1)</script>" {
		t.Errorf("--tar holds %q", names)
	}

	// Hostile paths are missing artifacts, said in one line.
	for _, p := range []string{"../job.json", "../../../../etc/passwd", "/etc/passwd", "dist", "nosuch"} {
		code, out, stderr := invoke(t, vars("carol"), "", "artifacts", "r", "0", p)
		if code != 1 || out != "" || !strings.Contains(stderr, "job 0 of r has no artifact") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q: %d %q %q", p, code, out, stderr)
		}
	}
	// A reader of another repository guessing: the answer a missing
	// repository gets, whatever the job or path.
	for _, args := range [][]string{{"r", "0"}, {"r", "0", "dist/app.tar.gz"}, {"r", "0", "--tar"}, {"r", "7"}} {
		code, out, stderr := invoke(t, vars("bob"), "", append([]string{"artifacts"}, args...)...)
		miss := append([]string{"artifacts", "nosuch"}, args[1:]...)
		code2, out2, stderr2 := invoke(t, vars("bob"), "", miss...)
		if code != 1 || out != "" || code2 != code || out2 != out || strings.ReplaceAll(stderr, `"r"`, `"nosuch"`) != stderr2 {
			t.Errorf("bob %v: %d %q %q; missing repository: %d %q %q", args, code, out, stderr, code2, out2, stderr2)
		}
	}
	// Usage.
	for _, args := range [][]string{{"r"}, {"r", "0", "a", "b"}, {"r", "0", "a", "--tar"}, {"r", "0", "a", "--json"}, {"r", "x"}} {
		if code, _, stderr := invoke(t, vars("carol"), "", append([]string{"artifacts"}, args...)...); code != 2 || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: %d %q", args, code, stderr)
		}
	}
}

// openPty returns the two ends of a new pseudo-terminal.
func openPty(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptm, pts
}

// An artifact's bytes, or a tar, are refused to a terminal, in one line;
// the list is shown there.
func TestArtifactsNotToATerminal(t *testing.T) {
	home := t.TempDir()
	s, _ := queue.Open(home)
	j := &queue.Job{Repo: "r", Queue: "r", Ref: "refs/heads/main", NewRev: strings.Repeat("c", 40), Options: queue.Options{Command: "x", Keep: 5}}
	if _, err := s.Enqueue(j); err != nil {
		t.Fatal(err)
	}
	collected(t, s, j, map[string]string{"bin": "\x1b]0;pwned\x07\x1b[2J"})
	_, pts := openPty(t)
	for _, tt := range []struct {
		args []string
		code int
	}{{[]string{"artifacts", "r", "0", "bin"}, 2}, {[]string{"artifacts", "r", "0", "--tar"}, 2}, {[]string{"artifacts", "r", "0"}, 0}} {
		var errb bytes.Buffer
		e := env{args: append([]string{"jobq"}, tt.args...), stdin: strings.NewReader(""), stdout: pts, stderr: &errb,
			getenv: func(k string) string { return map[string]string{"JOBQ_HOME": home}[k] },
			lookup: func(k string) (string, bool) { return "", false }}
		code := run(context.Background(), e)
		if code != tt.code || tt.code == 2 && errb.String() != "jobq: an artifact's bytes: stdout is a terminal; redirect it (> FILE) or pipe it\n" && errb.String() != "jobq: a tar: stdout is a terminal; redirect it (> FILE) or pipe it\n" {
			t.Errorf("%v: %d %q", tt.args, code, errb.String())
		}
	}
}
