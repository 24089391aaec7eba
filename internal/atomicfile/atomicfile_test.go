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

// WriteOwned's temporary file has one name: what a writer killed between
// write and rename leaves is replaced by the next write, and Remove
// removes it with the file, so the directory ends empty.
func TestWriteOwned(t *testing.T) {
	tests := []struct {
		name  string
		stale bool // a killed writer left path.tmp
	}{
		{"clean", false},
		{"after a killed writer", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "exit")
			if tt.stale {
				os.WriteFile(path+".tmp", []byte("half"), 0o600)
			}
			if err := WriteOwned(path, []byte("7\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			fi, _ := os.Stat(path)
			if string(b) != "7\n" || fi.Mode().Perm() != 0o600 {
				t.Errorf("%q %v, want %q 0600", b, fi.Mode().Perm(), "7\n")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("left %v beside the file", ents)
			}
			os.WriteFile(path+".tmp", []byte("half"), 0o600) // killed again
			if err := Remove(path); err != nil {
				t.Fatal(err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("Remove left %v", ents)
			}
			if err := Remove(path); err != nil {
				t.Errorf("Remove of what is gone: %v", err)
			}
		})
	}
}
