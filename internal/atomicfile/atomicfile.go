// Package atomicfile replaces small files whole: it writes a temporary
// file beside the target and renames it over the target, so that a
// reader, or another process writing at the same time, sees the old
// content or the new, never a part, and never a file another writer is
// still filling. The temporary file's name begins with ".tmp-" and the
// target's name; it is removed if the write fails.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data, with permissions perm. With durable, the
// content and the rename survive a power loss once Write returns (the
// file and its directory are synced); without, the file is a hint whose
// loss at a power loss costs little, and the write costs no disk flush.
func Write(path string, data []byte, perm os.FileMode, durable bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if durable {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if durable {
		return SyncDir(dir)
	}
	return nil
}

// SyncDir makes the entries of dir (a rename, a create, a remove) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
