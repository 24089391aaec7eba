package podman

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/containers/podman/v5/pkg/specgen"
	storagetypes "github.com/containers/storage/types"
	spec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/jobq/jobq/push"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// Labels on every job container; the next worker finds leftovers by them.
const (
	LabelRepo  = "jobq.repo"
	LabelJob   = "jobq.job"
	LabelQueue = "jobq.queue"
	// LabelHome names the data directory the job belongs to: one Podman
	// service may serve several jobq data directories (several accounts),
	// and each cleans up only its own containers.
	LabelHome = "jobq.home"
	// LabelIDRange is the index of the job's ID range: a range whose last
	// holder died is reused only after its containers are removed.
	LabelIDRange = "jobq.idrange"
)

// cpuPeriod is the CFS period JOBQ_CPUS is expressed in, as podman --cpus.
const cpuPeriod = 100000

// nofile is every job process's limit on open files, soft and hard, where
// the service allows that many. Without it a job gets the Podman service's
// own (20,000 here, 2^20 on many hosts), and the kernel memory that many
// files take is charged to nobody the OOM killer would choose. 4096 is the
// kernel's default hard limit.
const nofile = 4096

// hardLimits are a Podman service's hard limits on open files and
// processes: a container's start fails if it is given more (no
// CAP_SYS_RESOURCE, as in a container or on these hosts). 0: not known.
type hardLimits struct{ nofile, nproc uint64 }

// LocalHard are the hard limits of the local service: the worker's own,
// which a service jobq starts inherits (connection.go), and which one the
// account started otherwise has as well, as a rule. On processes, at most
// jobsNproc, which a service jobq starts has as its hard limit (budget.go),
// and at most the kernel's pid_max, to which Podman 4 lowers its own
// (containers/common's default ulimits).
func LocalHard(jobsNproc uint64) hardLimits {
	var files, procs unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &files) != nil || unix.Getrlimit(unix.RLIMIT_NPROC, &procs) != nil {
		return hardLimits{}
	}
	if jobsNproc > 0 {
		procs.Max = min(procs.Max, jobsNproc)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			procs.Max = min(procs.Max, n)
		}
	}
	return hardLimits{nofile: files.Max, nproc: procs.Max}
}

// oomScoreAdj makes a job the OOM killer's first choice, before sshd, a
// worker or the Podman service: where the host cannot cap a job's memory,
// this is what keeps the rest of the host alive. An unprivileged process
// may raise its score.
const oomScoreAdj = 1000

// argv is j's image and its arguments: as the push split them
// (Options.Argv), or, for a job queued before jobs kept them, split here.
func argv(j *queue.Job) ([]string, error) {
	if len(j.Options.Argv) > 0 {
		return j.Options.Argv, nil
	}
	return push.ImageArgs(j.Options.Command)
}

// Spec translates a job of the data directory home into the container to
// create: no I/O. checkout is mounted at /source; selinux adds the private
// relabel option. Without a checkout (a remote service) /source is a
// volume of the job's own (sourceVolume, whose random part is all that is
// not pure here), filled before start and removed with the container. ids,
// if set, is the job's own ID range: the container's IDs map to it, in a
// user namespace of the job's own, and Podman chowns the checkout to it.
// h is what the service can do (nil: a rootful service), and hard its hard
// limits: where its cgroup cannot apply JOBQ_PIDS, JOBQ_PIDS becomes the
// job's RLIMIT_NPROC (rlimits).
func Spec(j *queue.Job, home, checkout string, grace time.Duration, selinux bool, ids *idRange, h *hostInfo, hard hardLimits) (*specgen.SpecGenerator, error) {
	args, err := argv(j)
	if err != nil {
		return nil, fmt.Errorf("JOBQ_COMMAND %q: %w", j.Options.Command, err)
	}
	s := specgen.NewSpecGenerator(args[0], false)
	if len(args) > 1 {
		s.Command = args[1:]
	}
	s.Env = map[string]string{}
	for _, kv := range runner.Env(j) {
		k, v, _ := strings.Cut(kv, "=")
		s.Env[k] = v
	}
	s.Labels = map[string]string{
		LabelRepo:  j.Repo,
		LabelJob:   strconv.FormatInt(j.ID, 10),
		LabelQueue: j.Queue,
		LabelHome:  home,
	}
	opts := []string{"rbind", "rw"}
	if selinux {
		opts = append(opts, "Z")
	}
	if ids != nil {
		// As podman run --uidmap: IDs are those of the service's user
		// namespace, which for a rootless service are not host IDs.
		s.UserNS = specgen.Namespace{NSMode: specgen.Private}
		s.IDMappings = &storagetypes.IDMappingOptions{UIDMap: ids.uids, GIDMap: ids.gids}
		s.Labels[LabelIDRange] = strconv.Itoa(ids.index)
		// U: Podman chowns the checkout to the container's root, so that
		// the job may write its source and no other job may.
		opts = append(opts, "U")
	}
	if checkout != "" {
		s.Mounts = []spec.Mount{{Type: "bind", Source: checkout, Destination: "/source", Options: opts}}
	} else {
		// nocopy: the image's /source, if any, is not copied in first.
		// The copy into it is chowned to the container's root. Named, and
		// anonymous all the same: see sourceVolume.
		s.Volumes = []*specgen.NamedVolume{{Name: sourceVolume(home, j), Dest: "/source", Options: []string{"nocopy"}, IsAnonymous: true}}
	}
	s.WorkDir = "/source"
	// The output is taken from the attach stream; the container's own log
	// (k8s-file, no size limit of jobq's: conmon truncates a file that
	// reaches one) is what a worker that adopts the job reads the output
	// it missed from.
	s.LogConfiguration = &specgen.LogConfig{Driver: "k8s-file"}
	g := uint(math.Ceil(grace.Seconds()))
	s.StopTimeout = &g
	// conmon's own limit: stops the container even if the worker died. Later
	// than the worker's, so that the worker's stop normally comes first.
	s.Timeout = uint(math.Ceil((j.Options.Timeout + grace + 30*time.Second).Seconds()))

	var res spec.LinuxResources
	set := false
	if m := j.Options.Memory; m > 0 {
		res.Memory = &spec.LinuxMemory{Limit: &m}
		set = true
	}
	if c := j.Options.CPUs; c > 0 {
		period, quota := uint64(cpuPeriod), int64(c*cpuPeriod)
		res.CPU = &spec.LinuxCPU{Period: &period, Quota: &quota}
		set = true
	}
	if p := j.Options.PIDs; p > 0 {
		res.Pids = &spec.LinuxPids{Limit: p}
		set = true
	}
	if set {
		s.ResourceLimits = &res
	}
	s.Rlimits = rlimits(j.Options.PIDs, h, hard)
	adj := oomScoreAdj
	s.OOMScoreAdj = &adj
	if n := j.Options.Network; n != "" {
		ns, nets, netOpts, err := specgen.ParseNetworkFlag([]string{n})
		if err != nil {
			return nil, fmt.Errorf("JOBQ_NETWORK=%q: %w", n, err)
		}
		s.NetNS, s.Networks, s.NetworkOptions = ns, nets, netOpts
	}
	return s, nil
}

// rlimits are the job's resource limits (ulimit). Podman gives a container
// whose spec names any rlimit the maximum of each one it does not name: a
// rootless service its own (32,768 processes here), a rootful one 2^20,
// which fails where the service lacks CAP_SYS_RESOURCE. So where the
// service's hard limits are known (a local service), both are named, at
// most those; where not (a build host), only what bounds the job, and only
// on a rootless service, whose own limits Podman fills in.
//
// Where the cgroup cannot limit the job's processes, JOBQ_PIDS becomes its
// RLIMIT_NPROC; otherwise a job could take every process the account may
// have, and sshd's sessions as the account (pushes), workers and the
// Podman service with them. The kernel counts RLIMIT_NPROC per user ID
// within a user namespace (since Linux 5.14; per user ID on the whole host
// before), and each job has a namespace and an ID range of its own (a job
// never runs without: acquire fails instead), so the limit holds each of
// the job's user IDs to JOBQ_PIDS processes and threads. A job that is root
// in its container may switch to more of its IDs and have JOBQ_PIDS for
// each: what bounds it then is the Podman service's own limit, which all
// jobs share (JOBQ_JOBS_NPROC for a service jobq starts: budget.go). Where the cgroup applies JOBQ_PIDS to all of the job's
// processes, RLIMIT_NPROC never binds first.
func rlimits(pids int64, h *hostInfo, hard hardLimits) []spec.POSIXRlimit {
	procs := nproc(pids, h, hard)
	if hard.nofile == 0 || hard.nproc == 0 {
		if procs == 0 || h == nil || !h.Rootless {
			return nil
		}
		return []spec.POSIXRlimit{{Type: "nproc", Soft: procs, Hard: procs}}
	}
	if procs == 0 {
		procs = hard.nproc // what Podman gives a rootless container
	}
	files := min(nofile, hard.nofile)
	return []spec.POSIXRlimit{{Type: "nofile", Soft: files, Hard: files}, {Type: "nproc", Soft: procs, Hard: procs}}
}

// nproc is the job's RLIMIT_NPROC (see rlimits), 0 for the service's own:
// JOBQ_PIDS where the cgroup cannot apply it, and on a rootful service,
// where Podman would otherwise fill in its own; at most the service's hard
// limit, where known.
func nproc(pids int64, h *hostInfo, hard hardLimits) uint64 {
	if pids <= 0 || h != nil && h.Rootless && h.cgroupApplies("pids") {
		return 0
	}
	if hard.nproc > 0 {
		return min(uint64(pids), hard.nproc)
	}
	return uint64(pids)
}
