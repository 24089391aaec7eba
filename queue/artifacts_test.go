package queue

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestArtifacts(t *testing.T) {
	s := newStore(t)
	j := newJob("r", "q")
	if _, err := s.Enqueue(j); err != nil {
		t.Fatal(err)
	}
	if l, err := s.Artifacts("r", j.ID); err != nil || len(l) != 0 {
		t.Fatalf("before any: %v %v", l, err)
	}
	collect := func(files map[string]string) {
		t.Helper()
		dir, err := s.NewArtifacts(j)
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700)
			os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600)
		}
		if err := s.PublishArtifacts(j); err != nil {
			t.Fatal(err)
		}
	}
	collect(map[string]string{"dist/a.tar.gz": "aaa", "report/index.html": "<p>"})
	l, err := s.Artifacts("r", j.ID)
	if err != nil || len(l) != 2 || l[0] != (Artifact{"dist/a.tar.gz", 3}) || l[1] != (Artifact{"report/index.html", 3}) {
		t.Fatalf("listed %v %v", l, err)
	}
	f, err := s.OpenArtifact("r", j.ID, "dist/a.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "aaa" {
		t.Errorf("read %q", b)
	}
	// A second collection (an adopting worker's) replaces the first whole.
	collect(map[string]string{"new": "n"})
	if l, _ := s.Artifacts("r", j.ID); len(l) != 1 || l[0].Path != "new" {
		t.Errorf("after a second collection: %v", l)
	}
	// Hostile paths, and what is not a file, are missing.
	art := filepath.Join(s.jobDir("r", j.ID), "artifacts")
	os.Symlink("/etc/passwd", filepath.Join(art, "link"))
	os.Symlink("/etc", filepath.Join(art, "dirlink"))
	syscall.Mkfifo(filepath.Join(art, "fifo"), 0o600)
	os.Mkdir(filepath.Join(art, "d"), 0o700)
	for _, p := range []string{"../job.json", "/etc/passwd", "link", "dirlink/passwd", "fifo", "d", ".", "", "new/", "a\nb", "missing"} {
		if f, err := s.OpenArtifact("r", j.ID, p); !errors.Is(err, ErrNotFound) {
			t.Errorf("OpenArtifact(%q) = %v, %v; want ErrNotFound", p, f, err)
		}
	}
	if l, _ := s.Artifacts("r", j.ID); len(l) != 1 {
		t.Errorf("listed links or fifos: %v", l)
	}
	// An empty collection leaves none; and they go with their job.
	collect(nil)
	if l, _ := s.Artifacts("r", j.ID); len(l) != 0 {
		t.Errorf("after an empty collection: %v", l)
	}
	if _, err := os.Stat(art); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("artifacts/ still there: %v", err)
	}
}
