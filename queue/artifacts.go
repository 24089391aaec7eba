package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A job's artifacts (JOBQ_ARTIFACTS) live in its directory, and go with
// it (Prune, retirement):
//
//	repos/NAME/ID/artifacts/      the files its runner collected, as named under /source
//	repos/NAME/ID/artifacts.new/  a collection under way; it replaces artifacts/ whole
//
// Only regular files and directories are in them (internal/safetar writes
// them), and readers open them through an os.Root all the same.

// Artifact is one file a job handed back: its path under /source, and its
// size.
type Artifact struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// NewArtifacts makes an empty directory for a collection of job j's
// artifacts, and returns it: what a cut-short collection left there is
// removed first. PublishArtifacts puts it in place.
func (s *Store) NewArtifacts(j *Job) (string, error) {
	dir := filepath.Join(s.jobDir(j.Repo, j.ID), "artifacts.new")
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("artifacts: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("artifacts: %w", err)
	}
	return dir, nil
}

// PublishArtifacts puts job j's new collection in place of its artifacts,
// at once (a reader sees the old set or the new one); an empty one
// leaves the job none.
func (s *Store) PublishArtifacts(j *Job) error {
	jd := s.jobDir(j.Repo, j.ID)
	cur, next := filepath.Join(jd, "artifacts"), filepath.Join(jd, "artifacts.new")
	ents, err := os.ReadDir(next)
	if err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	if len(ents) == 0 {
		return errors.Join(os.RemoveAll(next), os.RemoveAll(cur))
	}
	err = unix.Renameat2(unix.AT_FDCWD, next, unix.AT_FDCWD, cur, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOENT) {
		err = os.Rename(next, cur)
	}
	if err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	return os.RemoveAll(next) // the old set, if any
}

// Artifacts lists the artifacts of job id of repo, by path; none is an
// empty list.
func (s *Store) Artifacts(repo string, id int64) ([]Artifact, error) {
	if err := ValidName(repo); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(filepath.Join(s.jobDir(repo, id), "artifacts"))
	if errors.Is(err, fs.ErrNotExist) {
		return []Artifact{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	defer root.Close()
	list := []Artifact{}
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		list = append(list, Artifact{Path: p, Size: fi.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	slices.SortFunc(list, func(a, b Artifact) int { return strings.Compare(a.Path, b.Path) })
	return list, nil
}

// OpenArtifact opens the artifact at path (as Artifacts lists it) of job
// id of repo. A path that is not one (malformed, missing, not a regular
// file) is ErrNotFound.
func (s *Store) OpenArtifact(repo string, id int64, path string) (*os.File, error) {
	if err := ValidName(repo); err != nil {
		return nil, err
	}
	if !fs.ValidPath(path) || path == "." || strings.ContainsFunc(path, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, ErrNotFound
	}
	root, err := os.OpenRoot(filepath.Join(s.jobDir(repo, id), "artifacts"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	defer root.Close()
	f, err := root.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		// Only jobq's own troubles are errors; a name that leads out of
		// the directory (os.Root refuses it), through a symlink or a
		// file, is as missing as one that is not there.
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOMEM) {
			return nil, fmt.Errorf("artifact: %w", err)
		}
		return nil, ErrNotFound
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, ErrNotFound
	}
	return f, nil
}
