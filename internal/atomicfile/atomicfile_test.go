package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// Write replaces a file whole with the given permissions, durable or not,
// and leaves no temporary file behind, also when it fails.
func TestWrite(t *testing.T) {
	for _, durable := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "f")
		os.WriteFile(path, []byte("old content"), 0o644)
		if err := Write(path, []byte("new"), 0o600, durable); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		fi, _ := os.Stat(path)
		if string(b) != "new" || fi.Mode().Perm() != 0o600 {
			t.Errorf("durable %v: %q %v, want %q 0600", durable, b, fi.Mode().Perm(), "new")
		}
		// A directory in the way: the rename fails.
		if err := Write(dir, []byte("x"), 0o600, durable); err == nil {
			t.Errorf("durable %v: replacing a directory succeeded", durable)
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Errorf("durable %v: left %v", durable, ents)
		}
	}
}
