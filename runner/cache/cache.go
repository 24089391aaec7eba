// Package cache keeps the records of the repositories' caches
// (JOBQ_CACHE): which volumes hold a repository's cache of one scope, on
// which build host, how large they were and when a job last used them;
// and the lock that lets one job at a time use a cache. The backend that
// runs jobs (runner/podman) makes the volumes; jobq's commands read and
// drop the records without any Podman, and the backend removes a volume
// that no record names.
//
// Scopes: jobs of protected refs (JOBQ_CACHE_PROTECTED) use the
// repository's main cache, Main; a job of any other ref uses a cache of
// its ref's own, started as a copy of the main one, so that no writer of
// an unprotected ref can put anything into what a protected ref's job
// reads.
//
// On disk, under the data directory:
//
//	caches/R/S.json   the record of repository R's cache of scope S
//	caches/R/S.lock   its lock: held (flock) by the job that uses the
//	                  cache, from its reservation until its clean-up; it
//	                  names that job while held, and is emptied by a
//	                  clean release
//
// R is a digest of the repository's name, S of its incarnation and the
// scope: a repository deleted and created again finds none of the old
// one's caches. Records are replaced whole (atomicfile).
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jobq/jobq/internal/atomicfile"
	"github.com/jobq/jobq/push"
	"github.com/jobq/jobq/queue"
)

// Main is the scope of the repository's main cache, which protected refs'
// jobs read and write.
const Main = "main"

// Volume is one path of a cache and the volume that holds it.
type Volume struct {
	Path string `json:"path"`
	Name string `json:"name"`
	Size int64  `json:"size"` // bytes on disk after the last job; 0: not known
	// Mountpoint is where the volume's service keeps its files, once
	// known: its size is read there.
	Mountpoint string `json:"mountpoint,omitempty"`
}

// Record is one cache of a repository.
type Record struct {
	Repo        string `json:"repo"`
	Incarnation string `json:"incarnation"`
	Scope       string `json:"scope"` // Main or a ref
	// Host is the build host the volumes live on, "" for this machine's
	// service.
	Host     string    `json:"host,omitempty"`
	Volumes  []Volume  `json:"volumes"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
	LastJob  int64     `json:"last_job"`
	// Seeded: the scope's cache was started as a copy of the main one.
	Seeded bool `json:"seeded,omitempty"`
	// Owner names the ID range the cache's files belong to after its last
	// job ended ("" while a job runs, or when not known): a job in that
	// range needs no chown of them.
	Owner string `json:"owner,omitempty"`
}

// Size is the cache's size on disk after its last job.
func (r *Record) Size() int64 {
	var n int64
	for _, v := range r.Volumes {
		n += v.Size
	}
	return n
}

// Volume is the volume of path p, or nil.
func (r *Record) Volume(p string) *Volume {
	for i := range r.Volumes {
		if r.Volumes[i].Path == p {
			return &r.Volumes[i]
		}
	}
	return nil
}

// Scope is the scope of job j's cache: Main for a protected ref, else the
// ref itself.
func Scope(j *queue.Job) string {
	return ScopeOf(j.Ref, j.Options.CacheProtected)
}

// ScopeOf is ref's scope under the protected patterns protected (as
// JOBQ_CACHE_PROTECTED; "" for the default). Patterns that do not parse
// protect nothing: the push refused them already.
func ScopeOf(ref, protected string) string {
	if Protected(ref, protected) {
		return Main
	}
	return ref
}

// Protected reports whether ref writes the main cache.
func Protected(ref, protected string) bool {
	f, err := push.ParseProtected(protected)
	return err == nil && f.Match(ref)
}

// Store is the records of the caches of one data directory.
type Store struct{ dir string }

// Open is the store of the data directory home.
func Open(home string) Store { return Store{dir: filepath.Join(home, "caches")} }

func digest(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:16])
}

func (s Store) repoDir(repo string) string { return filepath.Join(s.dir, digest(repo)) }

func (s Store) path(repo, inc, scope, ext string) string {
	return filepath.Join(s.repoDir(repo), digest(inc, scope)+ext)
}

// Lock takes the lock of repo's cache of scope, without waiting, for
// holder (a job, named in the file while it holds it): the file, held
// until closed, or nil when another holder has it. The file may name a
// holder that died before a clean release: keep says whether the lock is
// taken all the same (nil: it is); if not, the file still names that one.
func (s Store) Lock(repo, inc, scope, holder string, keep func(last string) bool) (*os.File, error) {
	if err := os.MkdirAll(s.repoDir(repo), 0o700); err != nil {
		return nil, fmt.Errorf("cache lock: %w", err)
	}
	f, err := os.OpenFile(s.path(repo, inc, scope, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("cache lock: %w", err)
	}
	b := make([]byte, 256)
	n, _ := f.ReadAt(b, 0)
	if last := strings.TrimSpace(string(b[:n])); last != "" && keep != nil && !keep(last) {
		f.Close()
		return nil, nil
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(holder+"\n"), 0)
	}
	return f, nil
}

// Unlock releases a lock Lock took; clean says its holder's clean-up is
// done, and empties the file.
func Unlock(f *os.File, clean bool) {
	if f == nil {
		return
	}
	if clean {
		f.Truncate(0)
	}
	f.Close()
}

// Load reads repo's record of scope; nil, nil if there is none.
func (s Store) Load(repo, inc, scope string) (*Record, error) {
	return readRecord(s.path(repo, inc, scope, ".json"))
}

func readRecord(path string) (*Record, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cache record: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("cache record %s: %w", filepath.Base(path), err)
	}
	return &r, nil
}

// Save writes r whole.
func (s Store) Save(r *Record) error {
	if err := os.MkdirAll(s.repoDir(r.Repo), 0o700); err != nil {
		return fmt.Errorf("cache record: %w", err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.path(r.Repo, r.Incarnation, r.Scope, ".json"), b, 0o600, false); err != nil {
		return fmt.Errorf("cache record: %w", err)
	}
	return nil
}

// Remove drops repo's record of scope: from then on no job uses its
// volumes, which the backend removes once no container uses them. It
// reports whether there was one.
func (s Store) Remove(repo, inc, scope string) (bool, error) {
	err := os.Remove(s.path(repo, inc, scope, ".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("drop cache: %w", err)
	}
	return true, nil
}

// List is repo's caches of incarnation inc: the main one first, then by
// scope.
func (s Store) List(repo, inc string) ([]*Record, error) {
	all, err := s.records(s.repoDir(repo))
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, r := range all {
		if r.Repo == repo && r.Incarnation == inc {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *Record) int {
		switch {
		case a.Scope == b.Scope:
			return 0
		case a.Scope == Main:
			return -1
		case b.Scope == Main:
			return 1
		}
		return strings.Compare(a.Scope, b.Scope)
	})
	return out, nil
}

// All is every record of the data directory.
func (s Store) All() ([]*Record, error) {
	dirs, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		rs, err := s.records(filepath.Join(s.dir, d.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

func (s Store) records(dir string) ([]*Record, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		r, err := readRecord(filepath.Join(dir, e.Name()))
		if err != nil || r == nil {
			continue // a record that does not read names nothing to keep
		}
		out = append(out, r)
	}
	return out, nil
}

// Named is the set of volume names the records name, by build host ("" for
// this machine): a cache volume outside it is dropped.
func (s Store) Named() (map[string]bool, error) {
	all, err := s.All()
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, r := range all {
		for _, v := range r.Volumes {
			names[v.Name] = true
		}
	}
	return names, nil
}
