package secret

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStore(t *testing.T) {
	home := t.TempDir()
	s := Open(home)
	if infos, err := s.List(); err != nil || len(infos) != 0 {
		t.Fatalf("empty store: %v %v", infos, err)
	}
	key := []byte("-----BEGIN KEY-----\nabc\n-----END KEY-----\n")
	if err := s.Set("deploy_key", key); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("token.v-2", []byte("first-value")); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("token.v-2", []byte("rotated-value")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get("deploy_key"); err != nil || !bytes.Equal(v, key) {
		t.Fatalf("Get: %q %v", v, err)
	}
	if v, err := s.Get("token.v-2"); err != nil || string(v) != "rotated-value" {
		t.Fatalf("Get after a second Set: %q %v", v, err)
	}
	infos, err := s.List()
	if err != nil || len(infos) != 2 || infos[0].Name != "deploy_key" || infos[0].Size != int64(len(key)) ||
		infos[1].Name != "token.v-2" || infos[1].Size != 13 || infos[0].Set.IsZero() {
		t.Fatalf("List: %+v %v", infos, err)
	}
	// The hosting account's only: the directory 0700, the files 0600.
	if fi, _ := os.Stat(Dir(home)); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(Dir(home), "deploy_key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v", fi.Mode())
	}
	if err := s.Remove("deploy_key"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("deploy_key"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get of a removed secret: %v", err)
	}
	if err := s.Remove("deploy_key"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Remove of a removed secret: %v", err)
	}
	// Nothing but the values: no temporary file left.
	ents, _ := os.ReadDir(Dir(home))
	if len(ents) != 1 || ents[0].Name() != "token.v-2" {
		t.Fatalf("store holds %v", ents)
	}
}

// A directory made wider by hand is made the account's own again.
func TestStoreTightensItsDirectory(t *testing.T) {
	home := t.TempDir()
	os.MkdirAll(Dir(home), 0o755)
	os.Chmod(Dir(home), 0o755)
	if err := Open(home).Set("name", []byte("value1")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(Dir(home)); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v", fi.Mode())
	}
}

// Hostile names and values are refused with one line, and touch nothing.
func TestStoreRefuses(t *testing.T) {
	home := t.TempDir()
	s := Open(home)
	os.WriteFile(filepath.Join(home, "outside"), []byte("not a secret"), 0o600)
	for _, name := range []string{"", ".", "..", "../outside", "a/b", "/etc/passwd", "a b", "a\nb", "a:b", "a@b", ".tmp-x", "é", strings.Repeat("a", 129)} {
		if err := s.Set(name, []byte("value1")); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("Set(%q): %v", name, err)
		}
		if _, err := s.Get(name); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Get(%q): %v", name, err)
		}
		if err := s.Remove(name); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Remove(%q): %v", name, err)
		}
	}
	for _, v := range [][]byte{nil, []byte("12345"), make([]byte, MaxLen+1)} {
		if err := s.Set("name", v); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("Set of %d bytes: %v", len(v), err)
		}
	}
	for _, v := range [][]byte{[]byte("123456"), make([]byte, MaxLen)} {
		if err := s.Set("name", v); err != nil {
			t.Errorf("Set of %d bytes: %v", len(v), err)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "outside")); err != nil {
		t.Fatal(err)
	}
}
