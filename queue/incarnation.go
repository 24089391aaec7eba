package queue

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A repository's job history belongs to one incarnation of it: a
// repository deleted and created again under the same name (by an admin,
// by gitolite's D command, by another wild-repository creator) must show
// none of the old one's jobs, whose logs only the old one's readers saw.
//
// The incarnation is a random token kept in the bare repository itself, in
// IncarnationFile, made by the first enqueue. It goes when the repository
// goes, and stays with it through a backup and restore or a move to another
// disk, which an inode number would not. The store keeps the token it last
// saw in repos/NAME/incarnation, each job records its own, and readers show
// a repository's jobs only while the two agree.

// IncarnationFile is the file in a bare repository that names its incarnation.
const IncarnationFile = "jobq-incarnation"

// readIncarnation reads the incarnation token of the bare repository
// gitDir; with create, it makes one if there is none.
func readIncarnation(gitDir string, create bool) (string, error) {
	path := filepath.Join(gitDir, IncarnationFile)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			if tok := strings.TrimSpace(string(b)); validToken(tok) {
				return tok, nil
			}
			return "", fmt.Errorf("%s: not a jobq incarnation token", path)
		}
		if !errors.Is(err, fs.ErrNotExist) || !create {
			return "", err
		}
		tok, err := createIncarnation(path)
		if !errors.Is(err, fs.ErrExist) {
			return tok, err
		}
		// Two first pushes at once: the other one made it; read it.
	}
}

// createIncarnation makes a new token file at path, whole or not at all: it
// is written aside and linked into place, which fails if path exists.
func createIncarnation(path string) (string, error) {
	var raw [16]byte
	rand.Read(raw[:])
	tok := hex.EncodeToString(raw[:])
	f, err := os.CreateTemp(filepath.Dir(path), "."+IncarnationFile+"-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(tok + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if err := os.Link(f.Name(), path); err != nil {
		return "", err
	}
	return tok, syncDir(filepath.Dir(path))
}

func validToken(tok string) bool {
	if len(tok) != 32 {
		return false
	}
	_, err := hex.DecodeString(tok)
	return err == nil
}

// stored is what repos/NAME/incarnation holds: the token and the bare
// repository it was read from.
type stored struct{ token, gitDir string }

func (s *Store) storedIncarnation(repo string) (stored, error) {
	b, err := os.ReadFile(filepath.Join(s.repoDir(repo), "incarnation"))
	if errors.Is(err, fs.ErrNotExist) {
		return stored{}, nil // history from before incarnations were kept
	}
	if err != nil {
		return stored{}, err
	}
	tok, dir, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if !validToken(tok) || !filepath.IsAbs(dir) {
		return stored{}, fmt.Errorf("%s: unreadable incarnation", repo)
	}
	return stored{tok, dir}, nil
}

// View says which of a repository's jobs may be shown: those of the
// repository's live incarnation. See Store.View.
type View struct {
	token string    // the live incarnation's; "" for history recorded before them
	born  time.Time // a job recorded without an incarnation shows only if queued since
}

// Incarnation is the repository's live incarnation, "" for history
// recorded before incarnations were: what a repository's other records
// (its caches) are kept under.
func (v View) Incarnation() string { return v.token }

// Shows reports whether j may be shown.
func (v View) Shows(j *Job) bool {
	if j.Incarnation != "" {
		return j.Incarnation == v.token
	}
	return !j.QueuedAt.Before(v.born)
}

// View is what of repo's history may be shown. ErrNotFound: the repository
// it was recorded in has been deleted, or deleted and created again, since;
// none of it may be shown.
//
// History recorded before incarnations were (no repos/NAME/incarnation
// yet) shows only while the repository of its newest job exists, and only
// what was queued after that repository came to be (see born).
func (s *Store) View(repo string) (View, error) {
	if err := ValidName(repo); err != nil {
		return View{}, err
	}
	st, err := s.storedIncarnation(repo)
	if err != nil {
		return View{}, err
	}
	gone := fmt.Errorf("jobs of %s: %w", repo, ErrNotFound)
	if st.token != "" {
		live, err := readIncarnation(st.gitDir, false)
		if errors.Is(err, fs.ErrNotExist) || err == nil && live != st.token {
			return View{}, gone
		}
		return View{token: st.token}, err
	}
	ls, err := s.Jobs(repo, 1)
	if err != nil || len(ls) == 0 || ls[0].Job == nil || ls[0].Job.GitDir == "" {
		return View{}, err
	}
	b, err := born(ls[0].Job.GitDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return View{}, gone
	case err != nil:
		b = time.Now() // not known: hide it all, never show by mistake
	}
	return View{born: b}, nil
}

// born is when the bare repository gitDir came to be: its birth time where
// the filesystem records one, else its last change, which is later, so
// that a mistake hides history and never shows it.
func born(gitDir string) (time.Time, error) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, gitDir, 0, unix.STATX_BTIME|unix.STATX_CTIME, &st); err != nil {
		return time.Time{}, &fs.PathError{Op: "statx", Path: gitDir, Err: err}
	}
	t := st.Ctime
	if st.Mask&unix.STATX_BTIME != 0 {
		t = st.Btime
	}
	return time.Unix(t.Sec, int64(t.Nsec)), nil
}

// deletedSince reports whether the repository j was queued in has been
// deleted since: gone, or created again as another incarnation, whose
// first push would have retired j, but may not have pushed yet. Such a job
// must not run: it would run its pusher's command, options and variables
// against another user's repository.
func deletedSince(j *Job) bool {
	if j.Incarnation == "" || j.GitDir == "" {
		return false // from before incarnations were kept
	}
	live, err := readIncarnation(j.GitDir, false)
	return err != nil || live != j.Incarnation
}

// settleIncarnation makes token, read from gitDir, repo's current
// incarnation; under the repository lock. History of an earlier one is
// retired: see retire.
func (s *Store) settleIncarnation(repo, token, gitDir string) error {
	st, err := s.storedIncarnation(repo)
	if err != nil {
		// An unreadable record is treated as another incarnation's: hiding
		// history by mistake is better than showing it by mistake.
		st = stored{token: "unreadable"}
	}
	if st.token == token && st.gitDir == gitDir {
		return nil
	}
	switch {
	case st.token == "":
		// History from before incarnations were kept: what was queued
		// before this repository came to be is an earlier one's.
		b, err := born(gitDir)
		if err != nil {
			b = time.Now() // not known: retire it all, never show by mistake
		}
		err = s.retire(repo, legacyToken, func(j *Job) bool { return j != nil && j.Incarnation == "" && j.QueuedAt.Before(b) })
		if err != nil {
			return err
		}
	case st.token != token:
		if err := s.retire(repo, st.token, func(j *Job) bool { return j == nil || j.Incarnation != token }); err != nil {
			return err
		}
	}
	return writeFileAtomic(filepath.Join(s.repoDir(repo), "incarnation"), []byte(token+"\n"+gitDir+"\n"), 0o600)
}

// legacyToken names, in retired/, history recorded before incarnations
// were that belonged to a deleted repository.
const legacyToken = "00000000000000000000000000000000"

// retire moves the jobs of repo that belong to an old incarnation (old
// names it) out of the repository's history into retired/NAME/OLD/, for the
// host's administrator: queued ones cancelled first (their repository is
// gone). A running job, or one whose clean-up is still to be done, stays
// where its worker finds it, marked as old and hidden from readers; Prune
// moves it when it has ended and is clean. IDs are not handed
// out again: next keeps counting, so that no stale queue entry or worker of
// an old job can reach a new one. belongs is given nil for an unreadable
// record.
func (s *Store) retire(repo, old string, belongs func(*Job) bool) error {
	ents, err := os.ReadDir(s.repoDir(repo))
	if err != nil {
		return fmt.Errorf("retire %s: %w", repo, err)
	}
	for _, e := range ents {
		id, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || id < 0 || !e.IsDir() {
			continue
		}
		j, err := s.Job(repo, id)
		if err != nil {
			j = nil
		}
		if !belongs(j) {
			continue
		}
		// A job still running, or whose clean-up is still to be done
		// (jobq gc retries it there), stays where its worker finds it.
		stays := j != nil && (j.State == Running || s.runnerState(repo, id))
		if j != nil && (j.State == Queued || stays) {
			_, err = s.updateLocked(repo, id, func(j *Job) error {
				if j.State == Queued {
					j.State, j.FinishedAt = Cancelled, time.Now().UTC()
					j.Error = "its repository was deleted before it ran"
				}
				j.Incarnation = old // hidden from now on
				return nil
			})
			if err != nil {
				return fmt.Errorf("retire %s %d: %w", repo, id, err)
			}
			if stays {
				continue
			}
		}
		if err := s.moveRetired(repo, old, id); err != nil {
			return err
		}
	}
	return nil
}

// retiredDir holds the jobs of repo's incarnation token that ended after
// the repository was deleted.
func (s *Store) retiredDir(repo, token string) string {
	return filepath.Join(s.dir, "retired", escape(repo), token)
}

func (s *Store) moveRetired(repo, token string, id int64) error {
	dir := s.retiredDir(repo, token)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("retire %s %d: %w", repo, id, err)
	}
	if err := os.Rename(s.jobDir(repo, id), filepath.Join(dir, strconv.FormatInt(id, 10))); err != nil {
		return fmt.Errorf("retire %s %d: %w", repo, id, err)
	}
	return nil
}

// retiredMax is the highest job ID retired for repo, or -1: IDs are never
// handed out again, even when next is lost.
func (s *Store) retiredMax(repo string) int64 {
	max := int64(-1)
	incs, _ := os.ReadDir(filepath.Join(s.dir, "retired", escape(repo)))
	for _, inc := range incs {
		ents, _ := os.ReadDir(filepath.Join(s.dir, "retired", escape(repo), inc.Name()))
		for _, e := range ents {
			if id, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && id > max {
				max = id
			}
		}
	}
	return max
}

// Retired is what retired/ holds: jobs of repositories deleted since.
type Retired struct {
	Incarnations, Jobs, Removed int
}

// PruneRetired applies each retired incarnation's JOBQ_KEEP (that of its
// newest job) to retired/, and counts what is kept.
func (s *Store) PruneRetired() (Retired, error) {
	var r Retired
	root := filepath.Join(s.dir, "retired")
	repos, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	var errs []error
	for _, repo := range repos {
		incs, _ := os.ReadDir(filepath.Join(root, repo.Name()))
		for _, inc := range incs {
			dir := filepath.Join(root, repo.Name(), inc.Name())
			ents, _ := os.ReadDir(dir)
			var ids []int64
			for _, e := range ents {
				if id, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && id >= 0 {
					ids = append(ids, id)
				}
			}
			slices.Sort(ids)
			keep := DefaultKeep
			if len(ids) > 0 {
				if b, err := os.ReadFile(filepath.Join(dir, strconv.FormatInt(ids[len(ids)-1], 10), "job.json")); err == nil {
					if j, err := decodeJob(b); err == nil && j.Options.Keep > 0 {
						keep = j.Options.Keep
					}
				}
			}
			for _, id := range ids[:max(len(ids)-keep, 0)] {
				if err := os.RemoveAll(filepath.Join(dir, strconv.FormatInt(id, 10))); err != nil {
					errs = append(errs, err)
					continue
				}
				r.Removed++
			}
			r.Jobs += min(len(ids), keep)
			r.Incarnations++
		}
	}
	return r, errors.Join(errs...)
}
