package podman

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/system"

	"github.com/jobq/jobq/internal/atomicfile"
	"github.com/jobq/jobq/queue"
)

// hostInfo is what a Podman service can do. Podman's info is slow (it
// runs conmon, the runtime and slirp4netns for their versions: 0.1 to 0.7 s
// here), so it is read once per service and boot and kept in the data
// directory; a remote service's for remoteInfoAge, as its boot is not
// known here.
type hostInfo struct {
	Boot        string   `json:"boot"` // the boot it was read in
	Rootless    bool     `json:"rootless"`
	Cgroup      string   `json:"cgroup"`      // "v1" or "v2"
	Controllers []string `json:"controllers"` // cgroup controllers a container can be limited by
	CPUs        int      `json:"cpus"`
	// SubUIDs and SubGIDs count the IDs the service's user namespace has
	// above 0: a rootless service's subordinate IDs, on its own machine.
	SubUIDs int       `json:"subuids,omitempty"`
	SubGIDs int       `json:"subgids,omitempty"`
	Read    time.Time `json:"read"`
}

const remoteInfoAge = 10 * time.Minute

func (r *Runner) infoFile(uri string) string {
	sum := sha256.Sum256([]byte(uri))
	return filepath.Join(r.cfg.Home, "podman-info", hex.EncodeToString(sum[:8])+".json")
}

// cachedHost is the service's info if it is known and fresh, else nil.
func (r *Runner) cachedHost(uri string) *hostInfo {
	r.mu.Lock()
	h := r.hosts[uri]
	r.mu.Unlock()
	if h != nil && h.fresh() {
		return h
	}
	if b, err := os.ReadFile(r.infoFile(uri)); err == nil && json.Unmarshal(b, &h) == nil && h != nil && h.fresh() {
		return r.keepHost(uri, h)
	}
	return nil
}

func (h *hostInfo) fresh() bool {
	if h.Boot == "" {
		return time.Since(h.Read) < remoteInfoAge
	}
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return h.Boot == string(boot)
}

func (r *Runner) host(conn context.Context, uri string, remote bool) (*hostInfo, error) {
	if h := r.cachedHost(uri); h != nil {
		return h, nil
	}
	info, err := system.Info(conn, nil)
	if err != nil {
		return nil, fmt.Errorf("podman system info: %w", err)
	}
	if info.Host == nil {
		return nil, fmt.Errorf("podman system info: no host section")
	}
	h := &hostInfo{Rootless: info.Host.Security.Rootless, Cgroup: info.Host.CgroupsVersion, Controllers: info.Host.CgroupControllers,
		CPUs: info.Host.CPUs, Read: time.Now()}
	if !remote {
		boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
		h.Boot = string(boot)
	}
	for _, m := range info.Host.IDMappings.UIDMap {
		if m.ContainerID > 0 {
			h.SubUIDs += m.Size
		}
	}
	for _, m := range info.Host.IDMappings.GIDMap {
		if m.ContainerID > 0 {
			h.SubGIDs += m.Size
		}
	}
	file := r.infoFile(uri)
	// Best effort: without the file, the next worker asks again.
	if b, err := json.Marshal(h); err == nil && os.MkdirAll(filepath.Dir(file), 0o700) == nil {
		atomicfile.Write(file, b, 0o600, false)
	}
	return r.keepHost(uri, h), nil
}

func (r *Runner) keepHost(uri string, h *hostInfo) *hostInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hosts == nil {
		r.hosts = map[string]*hostInfo{}
	}
	r.hosts[uri] = h
	return h
}

// cgroupApplies reports whether the host applies a limit of controller
// through the container's cgroup. Podman drops one it cannot apply with
// no more than a warning.
func (h *hostInfo) cgroupApplies(controller string) bool {
	return !h.Rootless || h.Cgroup == "v2" && slices.Contains(h.Controllers, controller)
}

// notApplied writes to the job's log each limit it asks for that the
// host's cgroup cannot apply, and what bounds the job instead (rlimits).
func notApplied(j *queue.Job, h *hostInfo, hard hardLimits, log io.Writer) {
	limits := []struct {
		name, controller string
		set              bool
	}{
		{"JOBQ_MEMORY", "memory", j.Options.Memory > 0},
		{"JOBQ_CPUS", "cpu", j.Options.CPUs > 0},
		{"JOBQ_PIDS", "pids", j.Options.PIDs > 0},
	}
	for _, l := range limits {
		if !l.set || h.cgroupApplies(l.controller) {
			continue
		}
		why := "the " + l.controller + " cgroup controller is not delegated to this account"
		if h.Cgroup != "v2" {
			why = "rootless Podman cannot limit a container on cgroup " + h.Cgroup
		}
		switch l.controller {
		case "pids":
			n := nproc(j.Options.PIDs, h, hard)
			if n == uint64(j.Options.PIDs) {
				fmt.Fprintf(log, "jobq: JOBQ_PIDS=%d is applied to each user ID of the job (RLIMIT_NPROC), not by the pids cgroup: %s\n", n, why)
			} else {
				fmt.Fprintf(log, "jobq: JOBQ_PIDS=%d is applied as %d, the Podman service's own limit, to each user ID of the job (RLIMIT_NPROC), not by the pids cgroup: %s\n", j.Options.PIDs, n, why)
			}
		case "memory":
			fmt.Fprintf(log, "jobq: %s is not applied: %s; the job's memory is not capped, and the kernel's OOM killer takes the job first (oom_score_adj %d)\n", l.name, why, oomScoreAdj)
		default:
			fmt.Fprintf(log, "jobq: %s is not applied: %s\n", l.name, why)
		}
	}
}

func jobKey(j *queue.Job) string { return j.Repo + "/" + strconv.FormatInt(j.ID, 10) }

// acquire gives the job an ID range of its own, held until its Cleanup:
// the one Reserve took for it, else one it waits for here.
func (r *Runner) acquire(ctx context.Context, conn context.Context, j *queue.Job, h *hostInfo, hostDir string) (*idRange, error) {
	r.mu.Lock()
	ids := r.reserved[jobKey(j)]
	delete(r.reserved, jobKey(j))
	r.mu.Unlock()
	if ids == nil {
		var err error
		if ids, err = r.ranges(h, hostDir).acquire(ctx, h.Rootless, jobKey(j), r.stale(conn)); err != nil {
			return nil, err
		}
	}
	r.hold(j, ids)
	return ids, nil
}

// ranges are the ID ranges of the service h: a remote host's come from
// its own subordinate IDs (as its service reports them), under locks of
// its own in hostDir.
func (r *Runner) ranges(h *hostInfo, hostDir string) idRanges {
	a := idRanges{dir: filepath.Join(r.cfg.Home, "idranges"), subuid: r.cfg.SubUID, subgid: r.cfg.SubGID}
	if hostDir != "" {
		a.dir = rangesDir(hostDir)
		a.remote = true
		a.uids, a.gids = remoteIDs(h.SubUIDs), remoteIDs(h.SubGIDs)
		if !h.Rootless {
			a.uids, a.gids = rootfulRemoteIDs(), rootfulRemoteIDs()
		}
	}
	return a
}

// stale removes, through conn, what a worker that died holding a range
// left running in it; an error if its job still runs (to adopt).
func (r *Runner) stale(conn context.Context) func(index int) error {
	return func(index int) error {
		filters := map[string][]string{"label": {LabelHome + "=" + r.cfg.Home, LabelIDRange + "=" + strconv.Itoa(index)}}
		list, err := containers.List(conn, new(containers.ListOptions).WithAll(true).WithFilters(filters))
		if err != nil {
			return fmt.Errorf("list containers: %w", err)
		}
		for _, c := range list {
			// A job that still runs is adopted by the next worker, in
			// its range: not this job's to take.
			if id, err := strconv.ParseInt(c.Labels[LabelJob], 10, 64); err == nil && r.cfg.Active != nil && r.cfg.Active(c.Labels[LabelRepo], id) {
				return fmt.Errorf("its job %s %d still runs", c.Labels[LabelRepo], id)
			}
		}
		for _, c := range list {
			if err := remove(conn, c.ID); err != nil {
				return err
			}
		}
		return nil
	}
}

func (r *Runner) hold(j *queue.Job, ids *idRange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held == nil {
		r.held = map[string]*idRange{}
	}
	r.held[jobKey(j)] = ids
}

// Reserve implements the worker's Reserver: it takes queued job j's ID
// range now, if one is free, for Run; the worker asks only once j has its
// slot or build host. Anything that keeps it from telling (the service
// does not answer, the account has no subordinate IDs) is Run's to
// report: it reserves nothing then.
func (r *Runner) Reserve(ctx context.Context, j *queue.Job) (release func(), wait string, err error) {
	m, err := r.member(j)
	if err != nil {
		return nil, "", nil
	}
	// A connection only when needed: the service's info is usually kept,
	// and a range's last holder usually cleaned up after itself.
	var conn context.Context
	connect := func() (context.Context, error) {
		if conn == nil {
			l, err := r.cfg.Service.link(ctx, m.ep)
			if err != nil {
				return nil, err
			}
			conn = l.conn
		}
		return conn, nil
	}
	h := r.cachedHost(m.ep.uri)
	if h == nil {
		c, err := connect()
		if err != nil {
			return nil, "", nil
		}
		if h, err = r.host(c, m.ep.uri, m.remote()); err != nil {
			return nil, "", nil
		}
	}
	hostDir := ""
	if m.remote() {
		hostDir = r.hostDir(m)
	}
	stale := func(index int) error {
		c, err := connect()
		if err != nil {
			return err
		}
		return r.stale(c)(index)
	}
	// Its caches first: a job that waits for one holds no ID range.
	caches, wait, err := r.reserveCaches(j)
	if err != nil || wait != "" {
		return nil, wait, nil // an error is Run's to report
	}
	ids, n, _, err := r.ranges(h, hostDir).tryAcquire(h.Rootless, jobKey(j), stale)
	switch {
	case err != nil:
		caches.release(true)
		return nil, "", nil
	case ids == nil:
		caches.release(true)
		return nil, fmt.Sprintf("waiting for an ID range: all %d in use", n), nil
	}
	releaseCaches := r.keepReservedCaches(j, caches)
	key := jobKey(j)
	r.mu.Lock()
	if r.reserved == nil {
		r.reserved = map[string]*idRange{}
	}
	if old := r.reserved[key]; old != nil {
		old.release(true) // reserved again by this worker; never used
	}
	r.reserved[key] = ids
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		own := r.reserved[key] == ids
		if own {
			delete(r.reserved, key)
		}
		r.mu.Unlock()
		if own {
			ids.release(true) // Run never took it: nothing ran in it
		}
		releaseCaches()
	}, "", nil
}

// adoptRange takes over the ID range of an adopted job's container (its
// label) among the ranges in dir (rangesDir), held until the job's Cleanup
// as Run's is: no other job gets it while the container runs. A range
// already held stays its holder's.
func (r *Runner) adoptRange(j *queue.Job, label string, dir string) {
	i, err := strconv.Atoi(label)
	if err != nil || i < 0 {
		return
	}
	a := idRanges{dir: dir}
	ids := a.take(i, jobKey(j))
	if ids == nil {
		return
	}
	r.hold(j, ids)
}

func (r *Runner) release(j *queue.Job, cleanedUp bool) {
	r.mu.Lock()
	ids := r.held[jobKey(j)]
	delete(r.held, jobKey(j))
	slot := r.slots[jobKey(j)]
	delete(r.slots, jobKey(j))
	r.mu.Unlock()
	if ids != nil {
		ids.release(cleanedUp)
	}
	if slot != nil {
		slot.Close()
	}
}

// rangesDir is where the ID ranges of a build host's jobs are locked: the
// host's own, under hostDir.
func rangesDir(hostDir string) string { return filepath.Join(hostDir, "idranges") }

// maxAdoptedSlots bounds the slot files an adoption looks through.
const maxAdoptedSlots = 1024

// adoptSlot holds a slot of build host m for adopted job j until its
// Cleanup, as Place holds one for a job it placed: its dead worker's slot
// went with it, and without one more jobs than the cap would run there.
// The job runs already: past the cap if every slot is taken, as queue's
// AdoptSlot.
func (r *Runner) adoptSlot(m member, j *queue.Job) {
	f, err := takeSlot(r.hostDir(m), maxAdoptedSlots, jobKey(j))
	if err != nil || f == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.slots == nil {
		r.slots = map[string]*os.File{}
	}
	if old := r.slots[jobKey(j)]; old != nil {
		old.Close() // adopted again by this worker
	}
	r.slots[jobKey(j)] = f
}
