// Package atomicfile replaces small files whole: it writes a temporary
// file beside the target and renames it over the target, so that a
// reader, or another process writing at the same time, sees the old
// content or the new, never a part, and never a file another writer is
// still filling. Write's temporary file has a name of its own (".tmp-",
// the target's name, a random suffix) and is removed if the write fails;
// WriteOwned's has a fixed one, for a file that one writer owns.
package atomicfile

import (
	"errors"
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

// WriteOwned replaces path with data, with permissions perm, for a file
// that one process at a time writes (a job's record in its run
// directory). Its temporary file is path+".tmp", always the same: a
// writer killed mid-way leaves at most that one file, which the next
// write replaces and Remove removes, where a random name would be left
// for ever in a directory that must end empty. Not durable: such records
// are rewritten or removed within the job's life.
func WriteOwned(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// Remove removes a file that WriteOwned writes, and the temporary file a
// killed writer may have left beside it; gone already counts as done.
func Remove(path string) error {
	var errs []error
	for _, p := range []string{path + ".tmp", path} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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
