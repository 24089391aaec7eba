package podman

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/system"
	"github.com/containers/podman/v5/pkg/bindings/volumes"
	entitiesTypes "github.com/containers/podman/v5/pkg/domain/entities/types"
	"github.com/containers/podman/v5/pkg/specgen"

	"github.com/jobq/jobq/push"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner/cache"
)

// Caches (JOBQ_CACHE): each path a named volume of the repository's, of
// the job's scope (runner/cache), kept between jobs.
//
//   - One job at a time per cache: Reserve takes the scope's lock while
//     the job is queued (a job that finds it taken waits, or, with
//     nowait, runs without its caches), and Cleanup lets it go once the
//     container is removed.
//   - A job of an unprotected ref never has a main cache's volume in its
//     container. Its own cache starts as a copy of the main one: the
//     main cache's volumes are mounted in a helper container that is
//     created and never started, and their content streamed through
//     Podman's archive endpoints into the job's created container, as
//     the job's root; the main cache's lock is held meanwhile, so the
//     copy is never of a half-written cache. An overlay (Podman's :O) is
//     refused inside a job's own user namespace on these kernels (EPERM,
//     measured), and would put the main cache's files in the job's mount
//     namespace.
//   - Each job has an ID range of its own, and idmapped mounts are not
//     open to rootless Podman: a cache's volumes are mounted with U, for
//     which Podman lchowns their files (never through a symlink) to the
//     job's root before it starts. Every file of a cache is the job's
//     root's.
//   - After the job, the cache's size is read (du in the service's user
//     namespace: a job cannot hide files from it behind modes); a cache
//     over JOBQ_CACHE_SIZE loses its record, and its volumes go once no
//     container uses them (sweepCaches).

// DefaultCacheTotal is JOBQ_CACHE_TOTAL's default: what all the caches of
// a data directory may take before jobq gc drops the least recently used.
const DefaultCacheTotal = 10 << 30

// cacheLabel marks a cache volume, its value the repository.
const cacheLabel = "jobq.cache.repo"

// cacheVolumeTag begins the names of home's cache volumes.
func cacheVolumeTag(home string) string { return volumeTag(home) + "cache-" }

func newCacheVolume(home string) string {
	var b [10]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return cacheVolumeTag(home) + hex.EncodeToString(b[:])
}

// jobCaches is what a job holds of its caches from its reservation to its
// clean-up.
type jobCaches struct {
	scope string
	lock  *os.File // its scope's lock
	// main is the main cache's lock, held while the job's own cache is
	// copied from it: only for a job whose scope has no cache yet.
	main *os.File
	// without says why the job runs without its caches ("": it has them).
	without string
	// owner is the ID range the job's files belong to (cache.Record's
	// Owner); dropped: the job's cache was dropped after it (its size).
	owner   string
	dropped bool
}

func (c *jobCaches) release(clean bool) {
	if c == nil {
		return
	}
	cache.Unlock(c.main, true)
	c.main = nil
	cache.Unlock(c.lock, clean)
	c.lock = nil
}

func (r *Runner) caches() cache.Store { return cache.Open(r.cfg.Home) }

// lockCache takes repo's cache lock of scope for job j; nil if another
// job holds it, or if the job its file names died while its container
// may still run (a later worker adopts that job, and its lock).
func (r *Runner) lockCache(j *queue.Job, scope string) (*os.File, error) {
	return r.caches().Lock(j.Repo, j.Incarnation, scope, jobKey(j), func(last string) bool {
		return last == jobKey(j) || !r.stillRuns(last)
	})
}

// stillRuns reports whether the job a lock file names still runs.
func (r *Runner) stillRuns(key string) bool {
	i := strings.LastIndexByte(key, '/')
	if i < 0 || r.cfg.Active == nil {
		return false
	}
	id, err := strconv.ParseInt(key[i+1:], 10, 64)
	return err == nil && r.cfg.Active(key[:i], id)
}

// reserveCaches takes queued job j's caches for its Run: "" and the
// caches (nil for a job without any), or why j waits for them.
func (r *Runner) reserveCaches(j *queue.Job) (*jobCaches, string, error) {
	if len(j.Options.Cache) == 0 {
		return nil, "", nil
	}
	// Reserved again by this worker, and never used: a flock is the open
	// file's, so the old one would keep the job from its own cache.
	r.mu.Lock()
	old := r.reservedCaches[jobKey(j)]
	delete(r.reservedCaches, jobKey(j))
	r.mu.Unlock()
	old.release(true)
	c := &jobCaches{scope: cache.Scope(j)}
	if j.Incarnation == "" {
		c.without = "the job was queued without its repository's incarnation"
		return c, "", nil
	}
	busy := func(what string) (*jobCaches, string, error) {
		c.release(true)
		if j.Options.CacheNoWait {
			return &jobCaches{scope: c.scope, without: what + " (JOBQ_CACHE nowait)"}, "", nil
		}
		return nil, "waiting for its cache: " + what, nil
	}
	var err error
	if c.lock, err = r.lockCache(j, c.scope); err != nil {
		return nil, "", err
	}
	if c.lock == nil {
		return busy("another job of " + scopeName(c.scope) + " uses it")
	}
	if c.scope == cache.Main {
		return c, "", nil
	}
	own, err := r.caches().Load(j.Repo, j.Incarnation, c.scope)
	if err != nil {
		c.release(true)
		return nil, "", err
	}
	if own != nil {
		// The lock stays held until the job ends: released even for an
		// instant, it could go to another holder (jobq gc), and the job
		// would run with its cache unlocked and unbounded.
		return c, "", nil
	}
	main, err := r.caches().Load(j.Repo, j.Incarnation, cache.Main)
	if err != nil || main == nil {
		return c, "", err
	}
	if c.main, err = r.lockCache(j, cache.Main); err != nil {
		c.release(true)
		return nil, "", err
	}
	if c.main == nil {
		return busy("its cache starts as a copy of the main cache, which another job uses")
	}
	return c, "", nil
}

func scopeName(scope string) string {
	if scope == cache.Main {
		return "the main cache"
	}
	return scope
}

// takeCaches is Run's share of the caches Reserve took for j; a job that
// Reserve did not see (its reservation could not tell) tries here, and
// runs without its caches if they are taken.
func (r *Runner) takeCaches(j *queue.Job) *jobCaches {
	if len(j.Options.Cache) == 0 {
		return nil
	}
	r.mu.Lock()
	c := r.reservedCaches[jobKey(j)]
	delete(r.reservedCaches, jobKey(j))
	r.mu.Unlock()
	if c == nil {
		var wait string
		var err error
		if c, wait, err = r.reserveCaches(j); err != nil || wait != "" {
			why := strings.TrimPrefix(wait, "waiting for its cache: ")
			if err != nil {
				why = err.Error()
			}
			c = &jobCaches{scope: cache.Scope(j), without: why}
		}
	}
	r.mu.Lock()
	if r.heldCaches == nil {
		r.heldCaches = map[string]*jobCaches{}
	}
	r.heldCaches[jobKey(j)] = c
	r.mu.Unlock()
	return c
}

// keepReservedCaches keeps c for j's Run, in place of an earlier
// reservation by this worker; the release returned undoes it unless Run
// took them.
func (r *Runner) keepReservedCaches(j *queue.Job, c *jobCaches) func() {
	if c == nil {
		return func() {}
	}
	key := jobKey(j)
	r.mu.Lock()
	if r.reservedCaches == nil {
		r.reservedCaches = map[string]*jobCaches{}
	}
	if old := r.reservedCaches[key]; old != nil && old != c {
		old.release(true)
	}
	r.reservedCaches[key] = c
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		own := r.reservedCaches[key] == c
		if own {
			delete(r.reservedCaches, key)
		}
		r.mu.Unlock()
		if own {
			c.release(true)
		}
	}
}

// droppedCache reports whether j's cache was dropped after it: its
// volumes go once its container is.
func (r *Runner) droppedCache(j *queue.Job) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.heldCaches[jobKey(j)]
	return c != nil && c.dropped
}

// releaseCaches lets j's caches go, at its clean-up.
func (r *Runner) releaseCaches(j *queue.Job, clean bool) {
	r.mu.Lock()
	c := r.heldCaches[jobKey(j)]
	delete(r.heldCaches, jobKey(j))
	r.mu.Unlock()
	c.release(clean)
}

// adoptCaches takes the cache lock of an adopted job again: its dead
// worker's went with it.
func (r *Runner) adoptCaches(j *queue.Job) {
	if len(j.Options.Cache) == 0 || j.Incarnation == "" {
		return
	}
	scope := cache.Scope(j)
	f, err := r.caches().Lock(j.Repo, j.Incarnation, scope, jobKey(j), nil)
	if err != nil || f == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.heldCaches == nil {
		r.heldCaches = map[string]*jobCaches{}
	}
	if old := r.heldCaches[jobKey(j)]; old != nil {
		old.release(false)
	}
	r.heldCaches[jobKey(j)] = &jobCaches{scope: scope, lock: f}
}

// cacheMounts is what Run adds to j's container for its caches: the
// volumes, made where new, the record saved first (a volume no record
// names is removed), and the record of the main cache to copy from, if
// any. ids: the job has a user namespace of its own (U). Lines for the
// job's log go to own.
func (r *Runner) cacheMounts(conn context.Context, j *queue.Job, c *jobCaches, ids *idRange, own io.Writer) ([]*specgen.NamedVolume, *cache.Record, error) {
	if c == nil {
		return nil, nil, nil
	}
	paths := strings.Join(j.Options.Cache, " ")
	if c.without != "" {
		fmt.Fprintf(own, "jobq: runs without its caches (%s): %s\n", paths, c.without)
		return nil, nil, nil
	}
	st := r.caches()
	rec, err := st.Load(j.Repo, j.Incarnation, c.scope)
	if err != nil {
		return nil, nil, err
	}
	if rec != nil && rec.Host != j.Host {
		// It lives on another build host, which was busy: this job runs
		// cold here, and the cache follows it (the other host's volumes
		// go with its next sweep).
		fmt.Fprintf(own, "jobq: the cache of %s lives on %s, which was busy: this job runs cold on %s, and its cache is kept there from now on\n", scopeName(c.scope), hostName(rec.Host), hostName(j.Host))
		rec = nil
	}
	var from *cache.Record
	if rec == nil {
		rec = &cache.Record{Repo: j.Repo, Incarnation: j.Incarnation, Scope: c.scope, Host: j.Host, Created: time.Now()}
		if c.main != nil {
			if from, err = st.Load(j.Repo, j.Incarnation, cache.Main); err != nil {
				return nil, nil, err
			}
			if from != nil && from.Host != j.Host {
				fmt.Fprintf(own, "jobq: the main cache lives on %s, not on %s: this job's cache starts empty\n", hostName(from.Host), hostName(j.Host))
				from = nil
			}
			rec.Seeded = from != nil
		}
	}
	// The record follows JOBQ_CACHE as it is now: a path no longer named
	// leaves the record, and its volume goes with the sweep.
	vols := make([]cache.Volume, 0, len(j.Options.Cache))
	var fresh []string
	for _, p := range j.Options.Cache {
		if v := rec.Volume(p); v != nil {
			vols = append(vols, *v)
			continue
		}
		name := newCacheVolume(r.cfg.Home)
		vols = append(vols, cache.Volume{Path: p, Name: name})
		fresh = append(fresh, name)
	}
	rec.Volumes = vols
	rec.LastJob = j.ID
	// The files are the last job's range's: a job in another one has them
	// chowned (U), and until it ends the record names no owner, so that a
	// job after one that died mid-way chowns them again.
	if ids != nil {
		c.owner = fmt.Sprintf("%d:%d", ids.uids[0].HostID, ids.gids[0].HostID)
	}
	chown := ids != nil && rec.Owner != c.owner
	rec.Owner = ""
	if err := st.Save(rec); err != nil {
		return nil, nil, err
	}
	for _, name := range fresh {
		_, err := volumes.Create(conn, entitiesTypes.VolumeCreateOptions{Name: name, IgnoreIfExists: true,
			Labels: map[string]string{LabelHome: r.cfg.Home, cacheLabel: j.Repo}}, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("create cache volume: %w", err)
		}
	}
	var mounts []*specgen.NamedVolume
	for _, v := range rec.Volumes {
		// nocopy: a cache starts empty, not with what the image has there.
		opts := []string{"nocopy"}
		if chown || ids != nil && slices.Contains(fresh, v.Name) {
			opts = append(opts, "U")
		}
		mounts = append(mounts, &specgen.NamedVolume{Name: v.Name, Dest: v.Path, Options: opts})
	}
	switch {
	case c.scope == cache.Main:
		fmt.Fprintf(own, "jobq: caches %s: the main cache, which this job may change\n", paths)
	case from != nil:
		fmt.Fprintf(own, "jobq: caches %s: %s's own, started as a copy of the main cache\n", paths, c.scope)
	default:
		fmt.Fprintf(own, "jobq: caches %s: %s's own; the main cache is not changed by this job\n", paths, c.scope)
	}
	return mounts, from, nil
}

func hostName(h string) string {
	if h == "" {
		return "this machine"
	}
	return h
}

// seedCache copies the main cache (from) into job container id's own
// cache, which is empty: from's volumes are mounted in a helper container
// that is created and never started, and each path's content is streamed
// from it into the job's container, whose root it then belongs to. The
// main cache's lock is let go afterwards. Nothing of the job's container
// is read or written outside its cache's paths.
func (r *Runner) seedCache(conn context.Context, j *queue.Job, c *jobCaches, from *cache.Record, image, id string) (err error) {
	if c == nil {
		return nil
	}
	defer func() {
		cache.Unlock(c.main, true)
		c.main = nil
		if err != nil {
			// Half a copy is no start: the next job begins again.
			r.caches().Remove(j.Repo, j.Incarnation, c.scope)
		}
	}()
	if from == nil {
		return nil
	}
	s := specgen.NewSpecGenerator(image, false)
	s.Command = []string{"true"}
	s.Labels = map[string]string{LabelRepo: j.Repo, LabelJob: strconv.FormatInt(j.ID, 10), LabelQueue: j.Queue, LabelHome: r.cfg.Home}
	var copies [][2]string // helper's path, job's path
	for i, v := range from.Volumes {
		if !slices.Contains(j.Options.Cache, v.Path) {
			continue
		}
		src := fmt.Sprintf("/jobq-seed/%d", i)
		s.Volumes = append(s.Volumes, &specgen.NamedVolume{Name: v.Name, Dest: src, Options: []string{"ro", "nocopy"}})
		// "/.": the directory's content, as podman cp takes it.
		copies = append(copies, [2]string{src + "/.", v.Path})
	}
	if len(copies) == 0 {
		return nil
	}
	helper, err := containers.CreateWithSpec(conn, s, nil)
	if err != nil {
		return fmt.Errorf("copy the main cache: create its container: %w", err)
	}
	defer remove(conn, helper.ID)
	for _, cp := range copies {
		pr, pw := io.Pipe()
		read, err := containers.CopyToArchive(conn, helper.ID, cp[0], pw)
		if err != nil {
			pw.Close()
			return fmt.Errorf("copy the main cache: %w", err)
		}
		done := make(chan error, 1)
		go func() {
			err := read()
			pw.CloseWithError(err)
			done <- err
		}()
		write, err := containers.CopyFromArchive(conn, id, cp[1], pr)
		if err == nil {
			err = write()
		}
		pr.CloseWithError(errors.New("the copy ended"))
		if rerr := <-done; err == nil {
			err = rerr
		}
		if err != nil {
			return fmt.Errorf("copy the main cache into %s: %w", cp[1], err)
		}
	}
	return nil
}

// cacheSizeBound is j's JOBQ_CACHE_SIZE.
func cacheSizeBound(j *queue.Job) int64 {
	if j.Options.CacheSize > 0 {
		return j.Options.CacheSize
	}
	return push.DefaultCacheSize
}

// afterCaches records, once j's container has exited, when its cache was
// used and how large it is; a cache over its bound loses its record (its
// volumes go once the container is removed), and j's log says so.
func (r *Runner) afterCaches(conn context.Context, j *queue.Job, c *jobCaches, remote bool, log *os.File) {
	if c == nil || c.without != "" || c.lock == nil {
		return
	}
	st := r.caches()
	rec, err := st.Load(j.Repo, j.Incarnation, c.scope)
	if err != nil || rec == nil || rec.LastJob != j.ID {
		return // dropped meanwhile (jobq cache rm)
	}
	sizes, err := r.volumeSizes(conn, rec.Volumes, remote)
	rec.Owner = c.owner
	if err != nil {
		queue.WriteOwn(log, fmt.Sprintf("jobq: the size of the cache of %s is not known: %v\n", scopeName(c.scope), oneLine(err)))
	}
	for i := range rec.Volumes {
		if n, ok := sizes[rec.Volumes[i].Name]; ok {
			rec.Volumes[i].Size = n
		}
	}
	rec.LastUsed = time.Now()
	if bound := cacheSizeBound(j); rec.Size() > bound {
		st.Remove(j.Repo, j.Incarnation, c.scope)
		c.dropped = true
		queue.WriteOwn(log, fmt.Sprintf("jobq: the cache of %s is %s, over JOBQ_CACHE_SIZE=%s: dropped; the next job starts it empty\n",
			scopeName(c.scope), push.FormatBytes(rec.Size()), push.FormatBytes(bound)))
		return
	}
	st.Save(rec)
}

// volumeSizes reads the sizes on disk of the volumes vs, by name: on this
// machine with du in the service's user namespace (as root of it: no mode
// a job set hides a file), on a build host from Podman's disk usage (the
// bytes of its files).
func (r *Runner) volumeSizes(conn context.Context, vs []cache.Volume, remote bool) (map[string]int64, error) {
	sizes := map[string]int64{}
	if remote {
		df, err := system.DiskUsage(conn, nil)
		if err != nil {
			return nil, err
		}
		for _, v := range df.Volumes {
			sizes[v.VolumeName] = v.Size
		}
		return sizes, nil
	}
	args := []string{"-sk", "--one-file-system"}
	for i, v := range vs {
		if v.Mountpoint == "" {
			data, err := volumes.Inspect(conn, v.Name, nil)
			if err != nil {
				return nil, err
			}
			vs[i].Mountpoint = data.Mountpoint
		}
		args = append(args, vs[i].Mountpoint)
		sizes[v.Name] = 0
	}
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("du", args...)
	} else {
		cmd = exec.Command("podman", append([]string{"unshare", "du"}, args...)...)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("du: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	for i, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if i >= len(vs) || len(f) < 1 {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("du: %q", line)
		}
		sizes[vs[i].Name] = kb << 10
	}
	return sizes, nil
}

// sweepCaches removes home's cache volumes that no record names and no
// container uses: dropped caches (a size over its bound, jobq cache rm,
// jobq gc), and paths JOBQ_CACHE no longer names. It never fails a job.
func (r *Runner) sweepCaches(conn context.Context) {
	named, err := r.caches().Named()
	if err != nil {
		return
	}
	list, err := volumes.List(conn, new(volumes.ListOptions).WithFilters(map[string][]string{"dangling": {"true"}}))
	if err != nil {
		return
	}
	for _, v := range list {
		if strings.HasPrefix(v.Name, cacheVolumeTag(r.cfg.Home)) && !named[v.Name] {
			volumes.Remove(conn, v.Name, nil)
		}
	}
}

// gcCaches drops the records of caches of repositories whose live
// incarnation (live: by repository, from their newest jobs) is another,
// then the least recently used ones until the total is within r's bound
// (Config.CacheTotal); a cache in use is left. What it dropped goes to
// logf.
func (r *Runner) gcCaches(live map[string]string, logf func(string, ...any)) {
	st := r.caches()
	all, err := st.All()
	if err != nil {
		return
	}
	var kept []*cache.Record
	for _, rec := range all {
		if inc, ok := live[rec.Repo]; ok && inc == rec.Incarnation {
			kept = append(kept, rec)
			continue
		}
		if r.dropUnused(rec) {
			logf("jobq gc: dropped the cache of %s of %s: its repository is gone", scopeName(rec.Scope), rec.Repo)
		}
	}
	if r.cfg.CacheTotal <= 0 {
		return
	}
	var total int64
	for _, rec := range kept {
		total += rec.Size()
	}
	slices.SortFunc(kept, func(a, b *cache.Record) int { return a.LastUsed.Compare(b.LastUsed) })
	for _, rec := range kept {
		if total <= r.cfg.CacheTotal {
			break
		}
		if r.dropUnused(rec) {
			total -= rec.Size()
			logf("jobq gc: dropped the cache of %s of %s (%s, last used %s): the caches' total was over JOBQ_CACHE_TOTAL=%s",
				scopeName(rec.Scope), rec.Repo, push.FormatBytes(rec.Size()), rec.LastUsed.Format(queue.TimeFormat), push.FormatBytes(r.cfg.CacheTotal))
		}
	}
}

// dropUnused removes rec's record unless a job holds its cache.
func (r *Runner) dropUnused(rec *cache.Record) bool {
	st := r.caches()
	f, err := st.Lock(rec.Repo, rec.Incarnation, rec.Scope, "jobq gc", func(last string) bool { return !r.stillRuns(last) })
	if err != nil || f == nil {
		return false
	}
	defer cache.Unlock(f, true)
	ok, err := st.Remove(rec.Repo, rec.Incarnation, rec.Scope)
	return ok && err == nil
}

// sweepCacheRecords is jobq gc's share of the caches: it drops the records
// gcCaches finds, then removes the volumes no record names on this
// machine's service, where any job of jobs keeps caches there (a build
// host's go with its next job's clean-up).
func (r *Runner) sweepCacheRecords(ctx context.Context, jobs []*queue.Job) {
	live := map[string]string{}
	for _, j := range jobs {
		live[j.Repo] = j.Incarnation
	}
	logf := r.cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	r.gcCaches(live, logf)
	for _, j := range jobs {
		if len(j.Options.Cache) == 0 {
			continue
		}
		m, err := r.member(j)
		if err != nil || m.remote() {
			continue
		}
		if l, err := r.cfg.Service.link(ctx, m.ep); err == nil {
			r.sweepCaches(l.conn)
		}
		return
	}
}

// warmHost is the build host that holds the cache job j would use (its
// scope's, else, for a ref's first job, the main one it starts from); ""
// for none, or this machine.
func (r *Runner) warmHost(j *queue.Job) string {
	if len(j.Options.Cache) == 0 || j.Incarnation == "" {
		return ""
	}
	scope := cache.Scope(j)
	rec, err := r.caches().Load(j.Repo, j.Incarnation, scope)
	if err == nil && rec == nil && scope != cache.Main {
		rec, err = r.caches().Load(j.Repo, j.Incarnation, cache.Main)
	}
	if err != nil || rec == nil {
		return ""
	}
	return rec.Host
}
