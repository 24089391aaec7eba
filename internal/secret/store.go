package secret

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jobq/jobq/internal/atomicfile"
)

// Bounds of a value.
const (
	// MinLen is the shortest value the store takes, and the shortest line
	// of a multi-line value masked on its own.
	MinLen = 6
	// MaxLen is the longest value the store takes.
	MaxLen = 64 << 10
)

// Dir is the store's directory in the data directory dataDir.
func Dir(dataDir string) string { return filepath.Join(dataDir, "secrets") }

// tmpPrefix begins the name of atomicfile's temporary files.
const tmpPrefix = ".tmp-"

// Store is the host's secret store: one file per secret, in a directory
// only the hosting account may read.
type Store struct {
	dir string
}

// Open returns the store of the data directory dataDir. It touches
// nothing: Set makes the directory.
func Open(dataDir string) *Store { return &Store{dir: Dir(dataDir)} }

// Info describes a stored secret, without its value.
type Info struct {
	Name string
	Size int64
	Set  time.Time
}

// ValidName checks a secret's name: letters, digits, '_', '.', '-', not
// "." or "..", and not atomicfile's temporary names; at most 128 bytes.
func ValidName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 128 || strings.HasPrefix(name, tmpPrefix) {
		return fmt.Errorf("%q is not a secret name (letters, digits, '_', '.', '-')", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("%q is not a secret name (letters, digits, '_', '.', '-')", name)
		}
	}
	return nil
}

// ValidValue checks a value's length.
func ValidValue(value []byte) error {
	switch {
	case len(value) < MinLen:
		return fmt.Errorf("a secret's value must be at least %d bytes (a shorter one cannot be masked in logs)", MinLen)
	case len(value) > MaxLen:
		return fmt.Errorf("a secret's value must be at most %d bytes", MaxLen)
	}
	return nil
}

// Set stores value as name's, replacing any value it had, durably.
func (s *Store) Set(name string, value []byte) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := ValidValue(value); err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("secret store: %w", err)
	}
	// A directory made by hand, or by a umask, may be wider.
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return fmt.Errorf("secret store: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(s.dir, name), value, 0o600, true); err != nil {
		return fmt.Errorf("secret %s: %w", name, err)
	}
	return nil
}

// Get returns name's value; an error wrapping fs.ErrNotExist if there is
// none.
func (s *Store) Get(name string) ([]byte, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	v, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("secret %s is not in the store: %w", name, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return v, nil
}

// List describes the stored secrets, by name.
func (s *Store) List() ([]Info, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secret store: %w", err)
	}
	var infos []Info
	for _, e := range ents {
		if ValidName(e.Name()) != nil || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("secret store: %w", err)
		}
		infos = append(infos, Info{Name: e.Name(), Size: fi.Size(), Set: fi.ModTime()})
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	return infos, nil
}

// Remove deletes name's value; an error wrapping fs.ErrNotExist if there
// is none.
func (s *Store) Remove(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("secret %s is not in the store: %w", name, fs.ErrNotExist)
		}
		return fmt.Errorf("secret %s: %w", name, err)
	}
	return atomicfile.SyncDir(s.dir)
}
