package podman

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/containers/storage/pkg/idtools"
	"github.com/jobq/jobq/internal/slottable"
)

// idRangeSize is how many user and group IDs each running job gets: the
// container's IDs 0..idRangeSize-1. Images rarely use IDs above 4095
// (nobody, 65534, is the usual exception, and shows as the overflow ID).
const idRangeSize = 4096

// idRange is the IDs a running job owns: no other running job gets them,
// so the kernel's checks between processes of different owners (ptrace,
// /proc/PID/*, signals, files) separate the two jobs.
type idRange struct {
	index      int
	uids, gids []idtools.IDMap // container ID -> the service's ID
	lock       *os.File        // flock held until the job's clean-up is done
}

// idRanges hands out ranges of the account's subordinate IDs, one per
// running job, under a flock per range in dir.
type idRanges struct {
	dir            string
	subuid, subgid string // /etc/subuid and /etc/subgid when empty
	// remote: the IDs are those of a service on another machine, uids
	// and gids, not the local account's.
	remote     bool
	uids, gids []idtools.IDMap
}

// remoteIDs are a remote rootless service's n subordinate IDs, as its
// user namespace numbers them (1..n).
func remoteIDs(n int) []idtools.IDMap {
	if n == 0 {
		return nil
	}
	return []idtools.IDMap{{HostID: 1, Size: n}}
}

// rootfulRemoteIDs are the host IDs jobs of a remote rootful service run
// as: its /etc/subuid is not known here, so a region above what useradd
// hands out to the first 16,000 accounts.
func rootfulRemoteIDs() []idtools.IDMap {
	return []idtools.IDMap{{HostID: 1 << 30, Size: 64 * idRangeSize}}
}

// acquire takes a free range, waiting for one (as long as ctx allows) when
// all are in use. rootless says how the service sees IDs: a rootless
// Podman's own user namespace has the account as 0 and its subordinate
// IDs, in order, as 1..N; a rootful one uses host IDs. stale is called for
// a range whose last holder died before its clean-up was done: it must
// remove what may still run with those IDs.
func (a idRanges) acquire(ctx context.Context, rootless bool, owner string, stale func(index int) error) (*idRange, error) {
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		r, n, staleErr, err := a.tryAcquire(rootless, owner, stale)
		if r != nil || err != nil {
			return r, err
		}
		select {
		case <-ctx.Done():
			if staleErr != nil {
				return nil, fmt.Errorf("ID range: all %d in use; %w", n, staleErr)
			}
			return nil, fmt.Errorf("ID range: all %d in use: %w", n, context.Cause(ctx))
		case <-time.After(wait):
		}
	}
}

// tryAcquire takes a free range, if one is: else nil, how many ranges there
// are, and the error of the last range whose clean-up after a dead holder
// failed. err is a failure to read or lock the ranges at all.
func (a idRanges) tryAcquire(rootless bool, owner string, stale func(index int) error) (r *idRange, n int, staleErr, err error) {
	uids, gids, err := a.ids(rootless)
	if err != nil {
		return nil, 0, nil, err
	}
	n = min(total(uids), total(gids)) / idRangeSize
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return nil, 0, nil, fmt.Errorf("ID range: %w", err)
	}
	for i := range n {
		f, err := a.try(i, owner, stale)
		if err != nil {
			staleErr = err
			continue
		}
		if f != nil {
			return &idRange{index: i, uids: slice(uids, i*idRangeSize), gids: slice(gids, i*idRangeSize), lock: f}, n, nil, nil
		}
	}
	return nil, n, staleErr, nil
}

// Ranges is how many jobs can run at once on this machine's Podman: the
// ID ranges the account's subordinate IDs hold (subuid and subgid: files
// in /etc/subuid's format; those when empty). jobq-worker caps JOBQ_SLOTS
// at it, so that a job given a slot finds a range.
func Ranges(subuid, subgid string) (int, error) {
	uids, gids, err := idRanges{subuid: subuid, subgid: subgid}.ids(false)
	if err != nil {
		return 0, err
	}
	return min(total(uids), total(gids)) / idRangeSize, nil
}

// ids are the IDs to hand out, as the service sees them.
func (a idRanges) ids(rootless bool) (uids, gids []idtools.IDMap, err error) {
	if a.remote {
		if min(total(a.uids), total(a.gids)) < idRangeSize {
			return nil, nil, fmt.Errorf("ID range: the build host's user has %d subordinate UIDs and %d GIDs (its /etc/subuid and /etc/subgid); each running job needs %d of each", total(a.uids), total(a.gids), idRangeSize)
		}
		return a.uids, a.gids, nil
	}
	u, err := user.Current()
	if err != nil {
		return nil, nil, fmt.Errorf("ID range: %w", err)
	}
	uids, err = subIDs(cmp.Or(a.subuid, "/etc/subuid"), u.Username, u.Uid)
	if err != nil {
		return nil, nil, err
	}
	gids, err = subIDs(cmp.Or(a.subgid, "/etc/subgid"), u.Username, u.Uid)
	if err != nil {
		return nil, nil, err
	}
	if min(total(uids), total(gids)) < idRangeSize {
		return nil, nil, fmt.Errorf("ID range: %s has %d subordinate UIDs and %d GIDs in /etc/subuid and /etc/subgid; each running job needs %d of each (usermod --add-subuids FIRST-LAST --add-subgids FIRST-LAST %s)",
			u.Username, total(uids), total(gids), idRangeSize, u.Username)
	}
	if rootless {
		uids = []idtools.IDMap{{HostID: 1, Size: total(uids)}}
		gids = []idtools.IDMap{{HostID: 1, Size: total(gids)}}
	}
	return uids, gids, nil
}

// try locks range i; nil, nil when another job holds it. The lock file
// names its holder until the holder's clean-up is done: a name left there
// means a holder that died with its container possibly still running.
func (a idRanges) try(i int, owner string, stale func(int) error) (*os.File, error) {
	f, err := slottable.Try(a.dir, i)
	if err != nil {
		return nil, fmt.Errorf("ID range %d: %w", i, err)
	}
	if f == nil {
		return nil, nil
	}
	last, err := slottable.Text(f)
	if err == nil && len(last) > 0 {
		err = stale(i)
	}
	if err == nil {
		err = slottable.Write(f, owner+"\n")
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ID range %d, left by %s: %w", i, strings.TrimSpace(last), err)
	}
	return f, nil
}

// take locks range i for owner, whatever holder its file names (an adopted
// job's own range); nil if another job holds it.
func (a idRanges) take(i int, owner string) *idRange {
	f, err := slottable.Try(a.dir, i)
	if err != nil || f == nil {
		return nil
	}
	slottable.Write(f, owner+"\n")
	return &idRange{index: i, lock: f}
}

// release frees the range. Only a complete clean-up clears the holder's
// name: otherwise the next holder first removes what is left.
func (r *idRange) release(cleanedUp bool) {
	if cleanedUp {
		r.lock.Truncate(0)
	}
	r.lock.Close()
}

// subIDs reads the ranges of a user (by name or uid) from a subuid or
// subgid file, in the file's order: the order newuidmap maps them in.
func subIDs(file, name, uid string) ([]idtools.IDMap, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ID range: %w", err)
	}
	defer f.Close()
	var ranges []idtools.IDMap
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Split(strings.TrimSpace(s.Text()), ":")
		if len(fields) != 3 || fields[0] != name && fields[0] != uid {
			continue
		}
		start, err1 := strconv.ParseUint(fields[1], 10, 32)
		size, err2 := strconv.ParseUint(fields[2], 10, 32)
		if err1 != nil || err2 != nil || size == 0 || start+size > 1<<32 {
			return nil, fmt.Errorf("ID range: %s: bad line %q", file, s.Text())
		}
		ranges = append(ranges, idtools.IDMap{HostID: int(start), Size: int(size)})
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("ID range: %s: %w", file, err)
	}
	return ranges, nil
}

func total(ranges []idtools.IDMap) int {
	n := 0
	for _, r := range ranges {
		n += r.Size
	}
	return n
}

// slice maps container IDs 0..idRangeSize-1 to the IDs from offset on in
// ranges, which may take pieces of several ranges.
func slice(ranges []idtools.IDMap, offset int) []idtools.IDMap {
	var out []idtools.IDMap
	next := 0 // container ID
	for _, r := range ranges {
		if offset >= r.Size {
			offset -= r.Size
			continue
		}
		size := min(r.Size-offset, idRangeSize-next)
		out = append(out, idtools.IDMap{ContainerID: next, HostID: r.HostID + offset, Size: size})
		next += size
		offset = 0
		if next == idRangeSize {
			break
		}
	}
	return out
}
