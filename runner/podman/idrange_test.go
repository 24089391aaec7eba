package podman

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containers/storage/pkg/idtools"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSubIDs(t *testing.T) {
	file := filepath.Join(t.TempDir(), "subuid")
	os.WriteFile(file, []byte("other:100000:65536\njobq:200000:4096\n1001:300000:10000\n\njunk\njobq:500000:70000\n"), 0o644)
	got, err := subIDs(file, "jobq", "1001")
	if err != nil {
		t.Fatal(err)
	}
	want := []idtools.IDMap{{HostID: 200000, Size: 4096}, {HostID: 300000, Size: 10000}, {HostID: 500000, Size: 70000}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got, err := subIDs(filepath.Join(t.TempDir(), "none"), "jobq", "1"); err != nil || got != nil {
		t.Errorf("a missing file: %v, %v", got, err)
	}
	// Hostile lines: a range past the 32-bit ID space, not a number.
	for _, line := range []string{"jobq:4294967000:4096", "jobq:x:4096", "jobq:1:-5"} {
		os.WriteFile(file, []byte(line+"\n"), 0o644)
		if _, err := subIDs(file, "jobq", "1"); err == nil || !strings.Contains(err.Error(), "bad line") {
			t.Errorf("%q: %v", line, err)
		}
	}
}

func TestSlice(t *testing.T) {
	ranges := []idtools.IDMap{{HostID: 100000, Size: 5000}, {HostID: 900000, Size: 10000}}
	tests := []struct {
		offset int
		want   []idtools.IDMap
	}{
		{0, []idtools.IDMap{{ContainerID: 0, HostID: 100000, Size: 4096}}},
		// The second range straddles the two: two pieces, contiguous inside.
		{4096, []idtools.IDMap{{ContainerID: 0, HostID: 104096, Size: 904}, {ContainerID: 904, HostID: 900000, Size: 3192}}},
		{8192, []idtools.IDMap{{ContainerID: 0, HostID: 903192, Size: 4096}}},
	}
	for _, tt := range tests {
		if got := slice(ranges, tt.offset); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("offset %d: got %+v, want %+v", tt.offset, got, tt.want)
		}
	}
}

// testRanges is an allocator over n ranges of the current account.
func testRanges(t *testing.T, n int) idRanges {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "subid")
	os.WriteFile(file, []byte("someone:1:999999\n"+u.Username+":300000:"+itoa(int64(n*idRangeSize+100))+"\n"), 0o644)
	return idRanges{dir: filepath.Join(dir, "idranges"), subuid: file, subgid: file}
}

func noStale(int) error { return errors.New("no stale range expected") }

func TestIDRangesDisjoint(t *testing.T) {
	a := testRanges(t, 3)
	ctx := context.Background()
	var held []*idRange
	seen := map[int]bool{}
	for i := range 3 {
		r, err := a.acquire(ctx, false, "job"+itoa(int64(i)), noStale)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, r)
		if r.uids[0].HostID != 300000+r.index*idRangeSize || r.uids[0].Size != idRangeSize || seen[r.index] {
			t.Errorf("range %d: %+v", r.index, r.uids)
		}
		seen[r.index] = true
	}
	// Rootless: the same ranges, counted in the service's user namespace.
	held[0].release(true)
	r, err := a.acquire(ctx, true, "rootless", noStale)
	if err != nil {
		t.Fatal(err)
	}
	if want := []idtools.IDMap{{HostID: 1 + r.index*idRangeSize, Size: idRangeSize}}; !reflect.DeepEqual(r.uids, want) || !reflect.DeepEqual(r.gids, want) {
		t.Errorf("rootless: %+v %+v", r.uids, r.gids)
	}
	// All taken: a job waits as long as its context lets it, then says so.
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := a.acquire(wctx, false, "waits", noStale); err == nil || !strings.Contains(err.Error(), "all 3 in use") {
		t.Errorf("all taken: %v", err)
	}
	// A job that waits gets the range freed meanwhile.
	got := make(chan *idRange)
	go func() {
		r, err := a.acquire(ctx, false, "waits", noStale)
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	held[1].release(true)
	if r := <-got; r == nil || r.index != held[1].index {
		t.Errorf("the waiting job got %+v, want range %d", r, held[1].index)
	}
}

func TestIDRangeStale(t *testing.T) {
	a := testRanges(t, 1)
	ctx := context.Background()
	r, err := a.acquire(ctx, false, "dies", noStale)
	if err != nil {
		t.Fatal(err)
	}
	r.release(false) // as if its worker died before the clean-up was done
	var removed []int
	failing := func(i int) error { removed = append(removed, i); return errors.New("service down") }
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := a.acquire(wctx, false, "next", failing); err == nil || !strings.Contains(err.Error(), "service down") {
		t.Errorf("a stale range whose containers could not be removed was reused: %v", err)
	}
	removed = nil
	r, err = a.acquire(ctx, false, "next", func(i int) error { removed = append(removed, i); return nil })
	if err != nil || !slices.Equal(removed, []int{0}) {
		t.Fatalf("stale range: %v, removed %v", err, removed)
	}
	r.release(true)
	if _, err := a.acquire(ctx, false, "after", noStale); err != nil {
		t.Errorf("after a complete clean-up: %v", err)
	}
}

func TestIDRangeNoSubIDs(t *testing.T) {
	a := testRanges(t, 0)
	if _, err := a.acquire(context.Background(), false, "x", noStale); err == nil || !strings.Contains(err.Error(), "each running job needs 4096") {
		t.Errorf("no subordinate IDs: %v", err)
	}
}

func TestSpecIDRange(t *testing.T) {
	ids := &idRange{index: 2, uids: []idtools.IDMap{{HostID: 8193, Size: 4096}}, gids: []idtools.IDMap{{HostID: 9000, Size: 4096}}}
	s, err := Spec(testJob("/r", "a", "img"), "/data", "/tmp/co", time.Second, false, ids, &hostInfo{}, hardLimits{nofile: 20000, nproc: 32768})
	if err != nil {
		t.Fatal(err)
	}
	if s.UserNS.NSMode != "private" || s.IDMappings == nil || !reflect.DeepEqual(s.IDMappings.UIDMap, ids.uids) ||
		!reflect.DeepEqual(s.IDMappings.GIDMap, ids.gids) || s.IDMappings.HostUIDMapping || s.IDMappings.HostGIDMapping {
		t.Errorf("userns %+v mappings %+v", s.UserNS, s.IDMappings)
	}
	if !slices.Contains(s.Mounts[0].Options, "U") || s.Labels[LabelIDRange] != "2" {
		t.Errorf("mount %+v labels %v", s.Mounts[0], s.Labels)
	}
}

// Where the cgroup cannot limit processes, JOBQ_PIDS is the job's
// RLIMIT_NPROC. Every job has a bound on open files where the service's
// hard limit is known, and the highest OOM score. Nothing goes over the
// service's hard limits, and a rootful service is never left to fill in
// one of its own choice (2^20, over the hard limit where it lacks
// CAP_SYS_RESOURCE).
func TestSpecRlimits(t *testing.T) {
	v1 := hostInfo{Rootless: true, Cgroup: "v1"}
	v2 := hostInfo{Rootless: true, Cgroup: "v2", Controllers: []string{"cpu", "memory", "pids"}}
	v2NoPids := hostInfo{Rootless: true, Cgroup: "v2", Controllers: []string{"memory"}}
	rootful := hostInfo{Cgroup: "v1"}
	here := hardLimits{nofile: 20000, nproc: 32768}
	low := hardLimits{nofile: 1024, nproc: 64}
	remote := hardLimits{}
	lim := func(files, procs uint64) []rspec.POSIXRlimit {
		return []rspec.POSIXRlimit{{Type: "nofile", Soft: files, Hard: files}, {Type: "nproc", Soft: procs, Hard: procs}}
	}
	tests := []struct {
		name string
		host hostInfo
		hard hardLimits
		pids int64
		want []rspec.POSIXRlimit
	}{
		{"rootless, cgroup v1", v1, here, 100, lim(4096, 100)},
		{"rootless, pids not delegated", v2NoPids, here, 100, lim(4096, 100)},
		{"rootless, pids cgroup", v2, here, 100, lim(4096, 32768)},
		{"rootless, unlimited", v1, here, 0, lim(4096, 32768)},
		{"rootless, low hard limits", v1, low, 100, lim(1024, 64)},
		{"rootful", rootful, here, 100, lim(4096, 100)},
		{"rootful, unlimited", rootful, here, 0, lim(4096, 32768)},
		{"build host, rootless, cgroup v1", v1, remote, 100, []rspec.POSIXRlimit{{Type: "nproc", Soft: 100, Hard: 100}}},
		{"build host, rootless, pids cgroup", v2, remote, 100, nil},
		{"build host, rootful", rootful, remote, 100, nil},
	}
	for _, tt := range tests {
		j := testJob("/r", "a", "img")
		j.Options.PIDs = tt.pids
		s, err := Spec(j, "/data", "/tmp/co", time.Second, false, nil, &tt.host, tt.hard)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s.Rlimits, tt.want) {
			t.Errorf("%s: rlimits %+v, want %+v", tt.name, s.Rlimits, tt.want)
		}
		if s.OOMScoreAdj == nil || *s.OOMScoreAdj != 1000 {
			t.Errorf("%s: oom_score_adj %v", tt.name, s.OOMScoreAdj)
		}
	}
}

func TestNotApplied(t *testing.T) {
	j := testJob("/r", "a", "img")
	j.Options.Memory, j.Options.CPUs, j.Options.PIDs = 64<<20, 0, 40
	here := hardLimits{nofile: 20000, nproc: 32768}
	tests := []struct {
		host hostInfo
		hard hardLimits
		want string
	}{
		{hostInfo{Rootless: false, Cgroup: "v1"}, here, ""},
		{hostInfo{Rootless: true, Cgroup: "v2", Controllers: []string{"memory", "pids"}}, here, ""},
		{hostInfo{Rootless: true, Cgroup: "v1"}, here, "jobq: JOBQ_MEMORY is not applied: rootless Podman cannot limit a container on cgroup v1; " +
			"the job's memory is not capped, and the kernel's OOM killer takes the job first (oom_score_adj 1000)\n" +
			"jobq: JOBQ_PIDS=40 is applied to each user ID of the job (RLIMIT_NPROC), not by the pids cgroup: rootless Podman cannot limit a container on cgroup v1\n"},
		{hostInfo{Rootless: true, Cgroup: "v1"}, hardLimits{}, "jobq: JOBQ_MEMORY is not applied: rootless Podman cannot limit a container on cgroup v1; " +
			"the job's memory is not capped, and the kernel's OOM killer takes the job first (oom_score_adj 1000)\n" +
			"jobq: JOBQ_PIDS=40 is applied to each user ID of the job (RLIMIT_NPROC), not by the pids cgroup: rootless Podman cannot limit a container on cgroup v1\n"},
		{hostInfo{Rootless: true, Cgroup: "v2", Controllers: []string{"memory", "pids"}}, hardLimits{nofile: 1024, nproc: 20}, ""},
		{hostInfo{Rootless: true, Cgroup: "v2", Controllers: []string{"memory"}}, hardLimits{nofile: 1024, nproc: 20},
			"jobq: JOBQ_PIDS=40 is applied as 20, the Podman service's own limit, to each user ID of the job (RLIMIT_NPROC), not by the pids cgroup: the pids cgroup controller is not delegated to this account\n"},
		{hostInfo{Rootless: true, Cgroup: "v2", Controllers: []string{"memory"}}, here, "jobq: JOBQ_PIDS=40 is applied to each user ID of the job (RLIMIT_NPROC), not by the pids cgroup: the pids cgroup controller is not delegated to this account\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		notApplied(j, &tt.host, tt.hard, &b)
		if b.String() != tt.want {
			t.Errorf("%+v: got %q, want %q", tt.host, b.String(), tt.want)
		}
	}
}

// Podman's info is read once per service and boot: a worker finds it in
// the data directory.
func TestHostInfoKept(t *testing.T) {
	home := t.TempDir()
	r := &Runner{cfg: Config{Home: home}}
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	sum := sha256.Sum256([]byte("unix:///s"))
	file := filepath.Join(home, "podman-info", hex.EncodeToString(sum[:8])+".json")
	os.MkdirAll(filepath.Dir(file), 0o700)
	tests := []struct {
		boot string
		ok   bool
	}{
		{string(boot), true},
		{"an earlier boot", false}, // asks the service, which is not there
	}
	for _, tt := range tests {
		os.WriteFile(file, []byte(`{"boot":`+strconv.Quote(tt.boot)+`,"rootless":true,"cgroup":"v1"}`), 0o600)
		r.hosts = nil
		h, err := r.host(context.Background(), "unix:///s", false)
		if tt.ok && (err != nil || !h.Rootless || h.Cgroup != "v1") {
			t.Errorf("boot %q: %+v, %v", tt.boot, h, err)
		}
		if !tt.ok && err == nil {
			t.Errorf("boot %q: the kept info was used", tt.boot)
		}
	}
}
