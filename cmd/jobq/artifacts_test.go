package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
