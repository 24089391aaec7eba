package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq/jobq/runner/cache"
)

func init() { confParts = append(confParts, cacheConf) }

// cacheConf: alice may push anything; carol only dev (and so reads the
// repository); bob nothing.
const cacheConf = `
repo cachepod cacheattack cacherace
    RW+     = alice
    RW  dev = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"
    option ENV.JOBQ_CACHE = "/root/.cache /source/deps"

repo cacherace
    option ENV.JOBQ_QUEUE = "cr-master"

repo cachebad-proc cachebad-dots cachebad-source cachebad-dup
    RW+     = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest true"

repo cachebad-proc
    option ENV.JOBQ_CACHE = "/proc/self"
repo cachebad-dots
    option ENV.JOBQ_CACHE = "/root/../../home"
repo cachebad-source
    option ENV.JOBQ_CACHE = "/source"
repo cachebad-dup
    option ENV.JOBQ_CACHE = "/c /c"

repo cacherange cacheholder
    RW+     = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"

repo cacherange
    option ENV.JOBQ_CACHE = "/root/.cache"

repo cacheholder
    RW+     = carol

repo cachesize
    RW+     = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"
    option ENV.JOBQ_CACHE = "/root/.cache"
    option ENV.JOBQ_CACHE_SIZE = "1m"
`

// cacheScript says what the job found in its caches, is slow without one
// (as a cold build is), and leaves its ref and job ID in both.
const cacheScript = `set -e
if [ -f /root/.cache/stamp ]; then echo "cache warm: $(cat /root/.cache/stamp)"; else echo "cache cold"; sleep 3; fi
echo "deps: $(cat /source/deps/d 2>/dev/null || echo none)"
echo "$GIT_REF $JOBQ_JOB_ID" > /root/.cache/stamp
echo "$GIT_REF $JOBQ_JOB_ID" > /source/deps/d
`

// pushFilesAs is push as user, to ref.
func pushFilesAs(t *testing.T, user, repo, ref string, files map[string]string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if r := env.Git(ctx, user, dir, "clone", "-q", env.URL(repo), "w"); r.Code != 0 {
		t.Fatalf("clone %s: %s", repo, r)
	}
	w := filepath.Join(dir, "w")
	// On top of ref where it exists: carol may not force-push.
	if branch, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		env.Git(ctx, user, w, "checkout", "-q", "-B", branch, "origin/"+branch)
	}
	files["nonce"] = time.Now().String()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(w, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", "change"}, {"push", "-q", "origin", "HEAD:" + ref}} {
		if r := env.Git(ctx, user, w, args...); r.Code != 0 {
			t.Fatalf("git %v: %s", args, r)
		}
	}
}

// followOK follows job id of repo to its end and returns its log; the job
// must succeed.
func followOK(t *testing.T, repo string, id int) string {
	t.Helper()
	r := follow(t, "alice", repo, id)
	if r.Code != 0 {
		t.Fatalf("jobq %s %d: %s", repo, id, r)
	}
	return r.Stdout
}

func wantIn(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
}

type times struct {
	QueuedAt   time.Time `json:"queued_at"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

// jobTimes are job id of repo's times, from its record.
func jobTimes(t *testing.T, repo string, id int) times {
	t.Helper()
	var rec times
	b, err := os.ReadFile(filepath.Join(env.DataDir(), "repos", repo, fmt.Sprint(id), "job.json"))
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// jobDuration is how long job id of repo ran.
func jobDuration(t *testing.T, repo string, id int) time.Duration {
	rec := jobTimes(t, repo, id)
	return rec.FinishedAt.Sub(rec.StartedAt)
}

// mainVolume is the host path of the volume of the main cache's path p.
func mainVolume(t *testing.T, repo, p string) string {
	t.Helper()
	recs := cacheRecords(t, repo)
	for _, r := range recs {
		if r.Scope != cache.Main {
			continue
		}
		if v := r.Volume(p); v != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := env.AsUser(ctx, nil, "podman", "volume", "inspect", "--format", "{{.Mountpoint}}", v.Name)
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(out)
		}
	}
	t.Fatalf("%s has no main cache of %s: %+v", repo, p, recs)
	return ""
}

func cacheRecords(t *testing.T, repo string) []*cache.Record {
	t.Helper()
	all, err := cache.Open(env.DataDir()).All()
	if err != nil {
		t.Fatal(err)
	}
	var out []*cache.Record
	for _, r := range all {
		if r.Repo == repo {
			out = append(out, r)
		}
	}
	return out
}

// A master job warms the main cache and the next one finds it, faster; a
// dev job starts from the main cache and cannot change it; dev's own
// cache is kept for its next job.
func TestCacheWarmsAndScopes(t *testing.T) {
	files := func() map[string]string { return map[string]string{"ci.sh": cacheScript} }
	pushFilesAs(t, "alice", "cachepod", "refs/heads/master", files())
	log0 := followOK(t, "cachepod", 0)
	wantIn(t, "job 0", log0, "jobq: caches /root/.cache /source/deps: the main cache, which this job may change", "cache cold", "deps: none")

	pushFilesAs(t, "alice", "cachepod", "refs/heads/master", files())
	log1 := followOK(t, "cachepod", 1)
	wantIn(t, "job 1", log1, "cache warm: refs/heads/master 0", "deps: refs/heads/master 0")
	if cold, warm := jobDuration(t, "cachepod", 0), jobDuration(t, "cachepod", 1); warm >= cold || cold-warm < 2*time.Second {
		t.Errorf("warm job took %v, cold %v: the cache did not save the cold job's 3 s", warm, cold)
	}

	pushFilesAs(t, "carol", "cachepod", "refs/heads/dev", files())
	log2 := followOK(t, "cachepod", 2)
	wantIn(t, "dev job 2", log2, "jobq: caches /root/.cache /source/deps: refs/heads/dev's own, started as a copy of the main cache",
		"cache warm: refs/heads/master 1", "deps: refs/heads/master 1")

	pushFilesAs(t, "carol", "cachepod", "refs/heads/dev", files())
	log3 := followOK(t, "cachepod", 3)
	wantIn(t, "dev job 3", log3, "refs/heads/dev's own; the main cache is not changed by this job", "cache warm: refs/heads/dev 2")

	pushFilesAs(t, "alice", "cachepod", "refs/heads/master", files())
	log4 := followOK(t, "cachepod", 4)
	wantIn(t, "master job 4", log4, "cache warm: refs/heads/master 1", "deps: refs/heads/master 1")

	// The listing, to readers; others get a missing repository's answer.
	ls := ssh("carol", "jobq", "cache", "cachepod")
	if ls.Code != 0 {
		t.Fatalf("jobq cache: %s", ls)
	}
	wantIn(t, "jobq cache cachepod", ls.Stdout, "SCOPE", "main", "refs/heads/dev", "/root/.cache", "/source/deps")
	var rows []struct {
		Scope    string    `json:"scope"`
		Path     string    `json:"path"`
		Size     int64     `json:"size"`
		LastUsed time.Time `json:"last_used"`
	}
	js := ssh("carol", "jobq", "cache", "cachepod", "--json")
	if err := json.Unmarshal([]byte(js.Stdout), &rows); err != nil || len(rows) != 4 {
		t.Fatalf("jobq cache --json: %v: %s", err, js)
	}
	for _, r := range rows {
		if r.Size <= 0 || r.LastUsed.IsZero() {
			t.Errorf("row %+v: no size or last use", r)
		}
	}
	missing := ssh("bob", "jobq", "cache", "nosuchrepo")
	if denied := ssh("bob", "jobq", "cache", "cachepod"); denied.Code != 1 || denied.Code != missing.Code ||
		denied.Stderr != strings.ReplaceAll(missing.Stderr, "nosuchrepo", "cachepod") {
		t.Errorf("a non-reader's jobq cache: %s; a missing repository's: %s", denied, missing)
	}
	checkNothingLeft(t, "cachepod")
}

// Dropping a cache: W on the ref, + for a protected one; a non-reader gets
// a missing repository's answer.
func TestCacheRemoveRights(t *testing.T) {
	if len(cacheRecords(t, "cachepod")) < 2 {
		pushFilesAs(t, "alice", "cachepod", "refs/heads/master", map[string]string{"ci.sh": cacheScript})
		pushFilesAs(t, "carol", "cachepod", "refs/heads/dev", map[string]string{"ci.sh": cacheScript})
		waitIdle(t, "cachepod")
	}
	scopes := func() string {
		var s []string
		for _, r := range cacheRecords(t, "cachepod") {
			s = append(s, r.Scope)
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		user   string
		args   []string
		code   int
		output string
	}{
		{"bob", []string{"cachepod", "master"}, 1, `"cachepod": no such repository with jobs, or no access`},
		{"bob", []string{"nosuchrepo", "master"}, 1, `"nosuchrepo": no such repository with jobs, or no access`},
		{"carol", []string{"cachepod", "master"}, 1, "carol may not drop the cache of refs/heads/master in cachepod: that needs write access (W) on it"},
		{"carol", []string{"cachepod"}, 1, "carol may not drop the cache of refs/heads/master in cachepod"},
		{"carol", []string{"cachepod", "bad%ref"}, 2, "is not a ref name"},
	} {
		r := ssh(tc.user, append([]string{"jobq", "cache", "rm"}, tc.args...)...)
		if r.Code != tc.code || !strings.Contains(r.Stderr, tc.output) {
			t.Errorf("%s: jobq cache rm %v: %s; want exit %d, %q", tc.user, tc.args, r, tc.code, tc.output)
		}
	}
	if s := scopes(); !strings.Contains(s, "main") || !strings.Contains(s, "refs/heads/dev") {
		t.Fatalf("a refused rm dropped a cache: left %q", s)
	}
	if r := ssh("carol", "jobq", "cache", "rm", "cachepod", "dev"); r.Code != 0 || !strings.Contains(r.Stdout, "dropped the cache of refs/heads/dev of cachepod") {
		t.Errorf("carol drops dev's cache: %s", r)
	}
	if r := ssh("alice", "jobq", "cache", "rm", "cachepod"); r.Code != 0 || !strings.Contains(r.Stdout, "dropped the main cache of cachepod") {
		t.Errorf("alice drops the main cache: %s", r)
	}
	if s := scopes(); s != "" {
		t.Errorf("caches left after rm: %q", s)
	}
	// The next job starts cold, and its clean-up removes the dropped
	// caches' volumes.
	pushFilesAs(t, "alice", "cachepod", "refs/heads/master", map[string]string{"ci.sh": cacheScript})
	id := lastJob(t, "cachepod")
	wantIn(t, "job after rm", followOK(t, "cachepod", id), "cache cold")
	waitIdle(t, "cachepod")
	checkCacheVolumes(t)
}

// lastJob is the newest job of repo.
func lastJob(t *testing.T, repo string) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(env.DataDir(), "repos", repo))
	if err != nil {
		t.Fatal(err)
	}
	last := -1
	for _, e := range ents {
		var n int
		if _, err := fmt.Sscanf(e.Name(), "%d", &n); err == nil && fmt.Sprint(n) == e.Name() && n > last {
			last = n
		}
	}
	return last
}

// waitIdle waits until repo's jobs have ended and been cleaned up.
func waitIdle(t *testing.T, repo string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		busy := false
		for id := 0; id <= lastJob(t, repo); id++ {
			var rec struct {
				State string `json:"state"`
			}
			b, _ := os.ReadFile(filepath.Join(env.DataDir(), "repos", repo, fmt.Sprint(id), "job.json"))
			if json.Unmarshal(b, &rec) == nil && (rec.State == "queued" || rec.State == "running") {
				busy = true
			}
		}
		if !busy && containers(t, repo) == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's jobs still busy", repo)
		}
	}
}

// checkCacheVolumes: every cache volume of the account is one a record
// names (a dropped cache's volumes are gone), and every record's volumes
// exist.
func checkCacheVolumes(t *testing.T) {
	t.Helper()
	named, err := cache.Open(env.DataDir()).Named()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := env.AsUser(ctx, nil, "podman", "volume", "ls", "-q", "--filter", "label=jobq.cache.repo")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, v := range strings.Fields(out) {
		have[v] = true
		if !named[v] {
			t.Errorf("cache volume %s left, no record names it", v)
		}
	}
	for v := range named {
		if !have[v] {
			t.Errorf("record names volume %s, which does not exist", v)
		}
	}
}

// hostileDev is a dev job that tries to change the main cache: directly,
// and through symlinks left in its own cache for a later step on the host
// (the chown of the next job's mount, the size's du, the copy) to follow:
// towards the main cache's volume and a file of the hosting account.
const hostileDev = `echo poison > /root/.cache/stamp
echo poison > /source/deps/d
ls MAIN >/dev/null 2>&1 && echo SEES-MAIN-VOLUME
grep -q jobq-seed /proc/self/mountinfo && echo SEES-SEED-MOUNT
mount -t tmpfs none /tmp 2>/dev/null && echo MOUNTED
ln -sfn MAIN /root/.cache/to-main
ln -sfn MAIN/stamp /root/.cache/to-main-stamp
ln -sfn VICTIM /root/.cache/victim
mkdir -p /root/.cache/sub && ln -sfn MAIN /root/.cache/sub/deep
ln -sfn VICTIM /source/deps/victim
echo poison > /root/.cache/to-main-stamp 2>/dev/null
echo hostile-done
`

// A dev job cannot change the main cache, directly or through symlinks
// placed in its own cache, and cannot reach the hosting account's files
// through them.
func TestCacheAttackDev(t *testing.T) {
	pushFilesAs(t, "alice", "cacheattack", "refs/heads/master", map[string]string{"ci.sh": cacheScript})
	followOK(t, "cacheattack", 0)
	waitIdle(t, "cacheattack")
	main := mainVolume(t, "cacheattack", "/root/.cache")
	victim := filepath.Join(env.Home, "victim")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := env.AsUser(ctx, nil, "sh", "-c", "echo untouched > "+victim); err != nil {
		t.Fatal(err)
	}
	// What the main cache holds, owners and all, as the service sees it.
	snapshot := func() string {
		out, err := env.AsUser(ctx, nil, "podman", "unshare", "sh", "-c", "cd "+main+" && find . -exec stat -c '%n %u:%g %a %s' {} + | sort && cat stamp")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := snapshot()
	script := strings.NewReplacer("MAIN", main, "VICTIM", victim).Replace(hostileDev)
	for range 2 { // the second runs over the first's symlinks
		pushFilesAs(t, "carol", "cacheattack", "refs/heads/dev", map[string]string{"ci.sh": script})
		id := lastJob(t, "cacheattack")
		log := followOK(t, "cacheattack", id)
		wantIn(t, "hostile dev job", log, "hostile-done")
		for _, bad := range []string{"SEES-MAIN-VOLUME", "SEES-SEED-MOUNT", "MOUNTED"} {
			if strings.Contains(log, bad) {
				t.Errorf("dev job %d: %s:\n%s", id, bad, log)
			}
		}
		waitIdle(t, "cacheattack")
	}
	if after := snapshot(); after != before {
		t.Errorf("the main cache changed under dev jobs:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	fi, err := os.Stat(victim)
	b, _ := os.ReadFile(victim)
	if err != nil || string(b) != "untouched\n" || fi.Mode().Perm() != 0o644 {
		t.Errorf("victim: %v %q %v", err, b, fi.Mode())
	}
	if st, ok := statOwner(victim); !ok || st != env.UID {
		t.Errorf("victim's owner is %d, not the account's %d", st, env.UID)
	}
	pushFilesAs(t, "alice", "cacheattack", "refs/heads/master", map[string]string{"ci.sh": cacheScript})
	wantIn(t, "master job after dev's", followOK(t, "cacheattack", lastJob(t, "cacheattack")), "cache warm: refs/heads/master 0", "deps: refs/heads/master 0")
	waitIdle(t, "cacheattack")
	checkCacheVolumes(t)
}

// raceScript: a master job writes a half state, then, seconds later, its
// final one; a dev job says what it saw and writes poison into its cache.
const raceScript = `if [ "$GIT_REF" = refs/heads/master ]; then
  echo partial > /root/.cache/stamp; echo master-started; sleep 8; echo "master-final $JOBQ_JOB_ID" > /root/.cache/stamp
else
  echo "dev saw: $(cat /root/.cache/stamp)"; echo poison > /root/.cache/stamp; echo dev-done
fi
`

// A dev job racing a master job (another queue, both at once): its first
// job waits for the main cache to copy it whole, never a half-written
// one; later ones run beside master's and cannot change its cache.
func TestCacheRaceMaster(t *testing.T) {
	queue := func(q string) {
		t.Helper()
		var all strings.Builder
		for _, c := range confParts {
			all.WriteString(strings.ReplaceAll(c, "%[1]s", env.Bin) + "\n")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := env.Configure(ctx, strings.ReplaceAll(all.String(), `"cr-master"`, `"`+q+`"`)); err != nil {
			t.Fatal(err)
		}
	}
	defer queue("cr-master")
	started := func(id int) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !strings.Contains(readLog("cacherace", id), "master-started"); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("master job %d did not start:\n%s", id, readLog("cacherace", id))
			}
		}
	}
	files := map[string]string{"ci.sh": raceScript}
	for round, want := range []string{"dev saw: master-final 0", "dev saw: poison"} {
		queue("cr-master")
		pushFilesAs(t, "alice", "cacherace", "refs/heads/master", files)
		master := lastJob(t, "cacherace")
		started(master)
		queue("cr-dev")
		pushFilesAs(t, "carol", "cacherace", "refs/heads/dev", files)
		dev := lastJob(t, "cacherace")
		devLog := followOK(t, "cacherace", dev)
		followOK(t, "cacherace", master)
		wantIn(t, fmt.Sprintf("round %d: dev job", round), devLog, want, "dev-done")
		if round == 0 {
			// It copies the main cache whole: it starts only once
			// master's job has ended, and, queued while it ran, says why
			// it waits.
			m, d := jobTimes(t, "cacherace", master), jobTimes(t, "cacherace", dev)
			if d.StartedAt.Before(m.FinishedAt) {
				t.Errorf("the first dev job started at %v, before master's ended at %v", d.StartedAt, m.FinishedAt)
			}
			if d.QueuedAt.Before(m.FinishedAt) {
				wantIn(t, "the first dev job", devLog, "waits to start: waiting for its cache: its cache starts as a copy of the main cache, which another job uses")
			}
		} else if strings.Contains(devLog, "waits to start") {
			// Its own cache exists: it runs beside master's job.
			t.Errorf("a dev job with a cache of its own waited:\n%s", devLog)
		}
		waitIdle(t, "cacherace")
	}
	queue("cr-master")
	pushFilesAs(t, "alice", "cacherace", "refs/heads/master", map[string]string{"ci.sh": "cat /root/.cache/stamp\n"})
	wantIn(t, "master after the races", followOK(t, "cacherace", lastJob(t, "cacherace")), "master-final 2")
	waitIdle(t, "cacherace")
}

func statOwner(p string) (int, bool) {
	fi, err := os.Lstat(p)
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// A cache over JOBQ_CACHE_SIZE after its job is dropped, and the log says
// so; its volume goes; the next job starts cold. jobq gc drops the least
// recently used caches beyond JOBQ_CACHE_TOTAL.
func TestCacheSizeBounds(t *testing.T) {
	script := func(kb int) map[string]string {
		return map[string]string{"ci.sh": fmt.Sprintf(`test -f /root/.cache/stamp && echo "cache warm" || echo "cache cold"
touch /root/.cache/stamp
dd if=/dev/zero of=/root/.cache/blob bs=1024 count=%d 2>/dev/null
`, kb)}
	}
	pushFilesAs(t, "alice", "cachesize", "refs/heads/master", script(100))
	wantIn(t, "small job", followOK(t, "cachesize", 0), "cache cold")
	pushFilesAs(t, "alice", "cachesize", "refs/heads/master", script(2048))
	log := followOK(t, "cachesize", 1)
	wantIn(t, "big job", log, "cache warm", "jobq: the cache of the main cache is 2", "over JOBQ_CACHE_SIZE=1m: dropped; the next job starts it empty")
	waitIdle(t, "cachesize")
	checkCacheVolumes(t)
	pushFilesAs(t, "alice", "cachesize", "refs/heads/master", script(100))
	wantIn(t, "job after the drop", followOK(t, "cachesize", 2), "cache cold")
	waitIdle(t, "cachesize")
	if len(cacheRecords(t, "cachesize")) != 1 {
		t.Fatalf("cachesize has no cache: %v", cacheRecords(t, "cachesize"))
	}

	// Over the host's total: gc drops the least recently used (the
	// other repositories' caches, older), until the total fits.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all, err := cache.Open(env.DataDir()).All()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, r := range all {
		total += r.Size()
	}
	out, err := env.AsUser(ctx, []string{"JOBQ_CACHE_TOTAL=" + fmt.Sprint(cacheRecords(t, "cachesize")[0].Size())}, filepath.Join(env.Bin, "jobq"), "gc")
	if err != nil {
		t.Fatalf("jobq gc: %v: %s", err, out)
	}
	left, _ := cache.Open(env.DataDir()).All()
	if len(all) > 1 && (len(left) != 1 || left[0].Repo != "cachesize") {
		t.Errorf("after gc (total %d over %d caches): %d caches left, want only the newest (cachesize's)", total, len(all), len(left))
	}
	checkCacheVolumes(t)
}

// A hostile JOBQ_CACHE fails no push: the pusher gets one line, and no
// job is queued.
func TestCacheHostileOption(t *testing.T) {
	for repo, want := range map[string]string{
		"cachebad-proc":   `jobq: JOBQ_CACHE="/proc/self" holds /proc/self: a cache cannot be in /proc`,
		"cachebad-dots":   `jobq: JOBQ_CACHE="/root/../../home" holds /root/../../home, not a clean absolute path`,
		"cachebad-source": `jobq: JOBQ_CACHE="/source" holds /source: a cache cannot be the container's root or its /source`,
		"cachebad-dup":    `jobq: JOBQ_CACHE="/c /c" names /c twice`,
	} {
		r, _ := push(t, repo, nil)
		if !strings.Contains(r.Stderr, "remote: "+want) || !strings.Contains(r.Stderr, "no job queued") {
			t.Errorf("%s: push output lacks %q:\n%s", repo, want, r.Stderr)
		}
		if _, err := os.Stat(filepath.Join(env.DataDir(), "repos", repo, "0")); err == nil {
			t.Errorf("%s: a job was queued", repo)
		}
	}
}

// cacheRangeScript shows the job's ID range (its uid_map), reads what the last
// job left in the cache, private modes and all, and leaves the same.
const cacheRangeScript = `echo "range: $(awk '{print $2}' /proc/self/uid_map)"
cat /root/.cache/private/secret 2>&1 || true
touch /root/.cache/private/again && echo "wrote into the last job's directory"
mkdir -p /root/.cache/private && chmod 700 /root/.cache/private
echo "secret of $JOBQ_JOB_ID" > /root/.cache/private/secret && chmod 600 /root/.cache/private/secret
`

// A cache's files stay the next job's though its ID range is another: a
// job holding the first range makes the next one take another, which
// still reads and writes a directory and a file the first made private.
func TestCacheAcrossIDRanges(t *testing.T) {
	pushFilesAs(t, "alice", "cacherange", "refs/heads/master", map[string]string{"ci.sh": cacheRangeScript})
	first := followOK(t, "cacherange", 0)
	waitIdle(t, "cacherange")
	// Its range let go (its file emptied, after the clean-up): the holder
	// takes the first range, job 0's.
	testenvWait(t, "the ranges are free", func() bool {
		ents, _ := os.ReadDir(filepath.Join(env.DataDir(), "idranges"))
		for _, e := range ents {
			if fi, err := e.Info(); err != nil || fi.Size() > 0 {
				return false
			}
		}
		return true
	})
	// Another pusher's: a pusher has every slot but one.
	pushFilesAs(t, "carol", "cacheholder", "refs/heads/master", map[string]string{"ci.sh": "echo holding\nsleep 15\n"})
	for deadline := time.Now().Add(time.Minute); !strings.Contains(readLog("cacheholder", 0), "\nholding\n"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the holder did not start:\n%s", readLog("cacheholder", 0))
		}
	}
	pushFilesAs(t, "alice", "cacherange", "refs/heads/master", map[string]string{"ci.sh": cacheRangeScript})
	second := followOK(t, "cacherange", 1)
	rangeOf := func(log string) string {
		_, after, _ := strings.Cut(log, "range: ")
		r, _, _ := strings.Cut(after, "\n")
		return r
	}
	if a, b := rangeOf(first), rangeOf(second); a == "" || a == b {
		t.Fatalf("the two jobs ran in ranges %q and %q: the test needs two", a, b)
	}
	wantIn(t, "the job in another range", second, "secret of 0", "wrote into the last job's directory")
	follow(t, "alice", "cacheholder", 0)
	waitIdle(t, "cacheholder")
}

func testenvWait(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute: %s", what)
		}
	}
}
