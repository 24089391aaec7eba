package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/jobq/jobq/internal/slottable"
	"github.com/jobq/jobq/queue"
)

// scrape GETs the handler's metrics and parses them with the client
// library's own parser of the text format.
func scrape(t testing.TB, h http.Handler) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	return fams, body
}

// value is the value of the family's series with the given labels (name,
// value pairs), and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
series:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) != len(labels)/2 {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if got[labels[i]] != labels[i+1] {
				continue series
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// storeCounts reads every record of the store: the truth a scrape must
// match.
func storeCounts(t *testing.T, s *queue.Store) (total map[string]int, byRepo map[string]map[string]int) {
	t.Helper()
	total, byRepo = map[string]int{}, map[string]map[string]int{}
	repos, err := s.Repos()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range repos {
		byRepo[r] = map[string]int{}
		jobs, err := s.Jobs(r, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range jobs {
			state := unreadable
			if l.Job != nil {
				state = string(l.Job.State)
			}
			total[state]++
			byRepo[r][state]++
		}
	}
	return total, byRepo
}

func enqueue(t testing.TB, s *queue.Store, repo string) int64 {
	t.Helper()
	j := &queue.Job{Repo: repo, Queue: repo, Ref: "refs/heads/main", NewRev: strings.Repeat("a", 40), User: "alice",
		Options: queue.Options{Command: "x", Timeout: time.Minute, Keep: 1000}}
	if _, err := s.Enqueue(j); err != nil {
		t.Fatal(err)
	}
	return j.ID
}

// finish brings a job through running to state, having run d.
func finish(t testing.TB, s *queue.Store, repo string, id int64, state queue.State, d time.Duration) {
	t.Helper()
	_, err := s.Update(repo, id, func(j *queue.Job) error {
		j.StartedAt = time.Now().UTC().Add(-d)
		j.State = state
		if state.Final() {
			j.FinishedAt = j.StartedAt.Add(d)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// After a burst of jobs from many goroutines, through every state, the
// scrape's jobs by state are the store's, and each job that ended since
// the first scrape is in the duration histogram once, in its bucket.
func TestScrapeMatchesTheStore(t *testing.T) {
	s, err := queue.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repos := []string{"app", "team/web", "lib"}
	// History from before the first scrape: counted, not observed.
	for _, r := range repos[:2] {
		for range 5 {
			finish(t, s, r, enqueue(t, s, r), queue.Succeeded, time.Second)
		}
	}
	waiting := enqueue(t, s, "app") // queued at the first scrape, ends later
	c := New(s, Options{})
	h := c.Handler()
	fams, _ := scrape(t, h)
	if v, _ := value(fams, "jobq_jobs", "state", "succeeded"); v != 10 {
		t.Errorf("first scrape: %v succeeded, want 10", v)
	}
	if v, _ := value(fams, "jobq_jobs", "state", "queued"); v != 1 {
		t.Errorf("first scrape: %v queued, want 1", v)
	}

	ends := []struct {
		state queue.State
		d     time.Duration
	}{{queue.Succeeded, 2 * time.Second}, {queue.Failed, 45 * time.Second}, {queue.TimedOut, 700 * time.Second},
		{queue.Cancelled, 3 * time.Second}, {queue.Lost, time.Second}, {queue.Running, 0}, {queue.Queued, 0}}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := repos[g%len(repos)]
			for i := range 7 {
				e := ends[(g+i)%len(ends)]
				id := enqueue(t, s, r)
				if e.state != queue.Queued {
					finish(t, s, r, id, e.state, e.d)
				}
				if i%3 == 0 {
					scrape(t, h) // scrapes meanwhile see jobs at any stage
				}
			}
		}()
	}
	wg.Wait()
	finish(t, s, "app", waiting, queue.Failed, 10*time.Second)
	// A job removed (as Prune removes one), and one whose record cannot
	// be read.
	if err := os.RemoveAll(filepath.Join(s.Dir(), "repos", "app", "0")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(s.Dir(), "repos", "lib", "999"), 0o700)
	os.WriteFile(filepath.Join(s.Dir(), "repos", "lib", "999", "job.json"), []byte("{garbage"), 0o600)

	fams, body := scrape(t, h)
	total, _ := storeCounts(t, s)
	for _, st := range states {
		if v, ok := value(fams, "jobq_jobs", "state", st); !ok || v != float64(total[st]) {
			t.Errorf("jobq_jobs{state=%q} = %v (%v), the store has %d", st, v, ok, total[st])
		}
	}
	// Ended since the first scrape: 6 goroutines × 7 jobs, of which those
	// left queued or running did not end; and the job that waited.
	want := map[string]int{}
	for g := range 6 {
		for i := range 7 {
			if e := ends[(g+i)%len(ends)]; e.state.Final() {
				want[string(e.state)]++
			}
		}
	}
	want["failed"]++
	for _, st := range []string{"succeeded", "failed", "timed-out", "cancelled", "lost"} {
		if v, _ := value(fams, "jobq_job_duration_seconds", "state", st); int(v) != want[st] {
			t.Errorf("jobq_job_duration_seconds{state=%q} counts %v, want %d", st, v, want[st])
		}
	}
	if !strings.Contains(body, `jobq_job_duration_seconds_bucket{state="timed-out",le="600"} 0`) ||
		!strings.Contains(body, `jobq_job_duration_seconds_bucket{state="timed-out",le="1200"} `) {
		t.Errorf("a 700 s job is not in the 1200 s bucket:\n%s", body)
	}
	if v, _ := value(fams, "jobq_oldest_queued_seconds"); v <= 0 || v > 60 {
		t.Errorf("jobq_oldest_queued_seconds = %v", v)
	}
	for _, r := range repos {
		if strings.Contains(body, r) {
			t.Errorf("the scrape names repository %s without --metrics-repo-labels:\n%s", r, body)
		}
	}
}

// A scrape right after a change that leaves a repository directory's
// stamp as it was (the same clock tick) still sees it, at the latest
// within the settling time.
func TestChangeWithinOneTick(t *testing.T) {
	s, _ := queue.Open(t.TempDir())
	enqueue(t, s, "r")
	c := New(s, Options{})
	h := c.Handler()
	dir := filepath.Join(s.Dir(), "repos", "r")
	scrape(t, h)
	// Another job, with the directory's times put back: a change the
	// stamp does not show but for the link count...
	fi, _ := os.Stat(dir)
	id := enqueue(t, s, "r")
	os.Chtimes(dir, fi.ModTime(), fi.ModTime())
	fams, _ := scrape(t, h)
	if v, _ := value(fams, "jobq_jobs", "state", "queued"); v != 2 {
		t.Errorf("%v queued, want 2", v)
	}
	// ...and one that keeps the link count too: one job removed, one added.
	fi, _ = os.Stat(dir)
	os.RemoveAll(filepath.Join(dir, strconv.FormatInt(id, 10)))
	enqueue(t, s, "r")
	os.Chtimes(dir, fi.ModTime(), fi.ModTime())
	fams, _ = scrape(t, h)
	total, _ := storeCounts(t, s)
	if v, _ := value(fams, "jobq_jobs", "state", "queued"); v != float64(total["queued"]) {
		t.Errorf("%v queued, the store has %d", v, total["queued"])
	}
}

// --metrics-repo-labels: each repository's jobs by state, labelled with
// its name; without it, no name anywhere.
func TestRepoLabels(t *testing.T) {
	s, _ := queue.Open(t.TempDir())
	finish(t, s, "team/web", enqueue(t, s, "team/web"), queue.Failed, time.Second)
	enqueue(t, s, "team/web")
	enqueue(t, s, "app")
	for _, labels := range []bool{false, true} {
		c := New(s, Options{RepoLabels: labels})
		h := c.Handler()
		scrape(t, h)
		finish(t, s, "app", enqueue(t, s, "app"), queue.Succeeded, time.Second)
		fams, body := scrape(t, h)
		_, byRepo := storeCounts(t, s)
		if !labels {
			if strings.Contains(body, "team/web") || strings.Contains(body, `"app"`) || strings.Contains(body, "repo=") {
				t.Errorf("names without the flag:\n%s", body)
			}
			continue
		}
		for r, counts := range byRepo {
			for _, st := range states {
				if v, ok := value(fams, "jobq_jobs", "repo", r, "state", st); !ok || v != float64(counts[st]) {
					t.Errorf("jobq_jobs{repo=%q,state=%q} = %v (%v), want %d", r, st, v, ok, counts[st])
				}
			}
		}
		if v, _ := value(fams, "jobq_job_duration_seconds", "repo", "app", "state", "succeeded"); v != 1 {
			t.Errorf("app's durations count %v, want 1", v)
		}
	}
}

// What the workers hold: slots, waiters, ID ranges, build hosts and their
// slots, each seen through its flock; a build host marked down is
// unreachable until the mark's time.
func TestHolders(t *testing.T) {
	s, _ := queue.Open(t.TempDir())
	dir := s.Dir()
	now := time.Now()
	hold := func(d string, i int) {
		os.MkdirAll(d, 0o700)
		f, err := slottable.Try(d, i)
		if err != nil || f == nil {
			t.Fatalf("hold %s %d: %v", d, i, err)
		}
		t.Cleanup(func() { f.Close() })
	}
	free := func(d string, i int) {
		f, _ := slottable.Try(d, i)
		f.Close()
	}
	hold(filepath.Join(dir, "slots"), 0)
	hold(filepath.Join(dir, "slots"), 2)
	free(filepath.Join(dir, "slots"), 1)
	os.MkdirAll(filepath.Join(dir, "slots", "wait"), 0o700)
	w, _ := os.Create(filepath.Join(dir, "slots", "wait", "000001-q"))
	defer w.Close()
	if err := syscall.Flock(int(w.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "slots", "wait", "000002-q"), nil, 0o600) // its worker died
	hold(filepath.Join(dir, "idranges"), 3)
	free(filepath.Join(dir, "idranges"), 0)
	h1, h2, h3 := filepath.Join(dir, "hosts", "aaaa"), filepath.Join(dir, "hosts", "bbbb"), filepath.Join(dir, "hosts", "cccc")
	hold(h1, 0)
	hold(h1, 1)
	hold(filepath.Join(h1, "idranges"), 0)
	os.MkdirAll(h2, 0o700)
	os.WriteFile(filepath.Join(h2, "down"), fmt.Appendf(nil, "%d\nssh: connect refused\n", now.Add(time.Minute).Unix()), 0o600)
	os.MkdirAll(h3, 0o700)
	os.WriteFile(filepath.Join(h3, "down"), fmt.Appendf(nil, "%d\nold\n", now.Add(-time.Minute).Unix()), 0o600)

	fams, _ := scrape(t, New(s, Options{Now: func() time.Time { return now }}).Handler())
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"jobq_slots_in_use", nil, 2},
		{"jobq_slot_waiters", nil, 1},
		{"jobq_id_ranges_in_use", []string{"service", "local"}, 1},
		{"jobq_id_ranges_in_use", []string{"service", "build-host"}, 1},
		{"jobq_build_hosts", []string{"state", "reachable"}, 2},
		{"jobq_build_hosts", []string{"state", "unreachable"}, 1},
		{"jobq_build_host_slots_in_use", nil, 2},
	} {
		if v, ok := value(fams, tt.name, tt.labels...); !ok || v != tt.want {
			t.Errorf("%s%v = %v (%v), want %v", tt.name, tt.labels, v, ok, tt.want)
		}
	}
	if _, ok := fams["jobq_notifications_pending"]; ok {
		t.Error("jobq_notifications_pending without a count to give")
	}
}

// The notifications' count comes from the function the program wires in;
// a count that cannot be had leaves the other metrics served.
func TestNotificationsPending(t *testing.T) {
	s, _ := queue.Open(t.TempDir())
	enqueue(t, s, "r")
	n, fail := 3, false
	c := New(s, Options{NotificationsPending: func() (int, error) {
		if fail {
			return 0, fmt.Errorf("cannot count")
		}
		return n, nil
	}})
	h := c.Handler()
	fams, _ := scrape(t, h)
	if v, ok := value(fams, "jobq_notifications_pending"); !ok || v != 3 {
		t.Errorf("jobq_notifications_pending = %v (%v), want 3", v, ok)
	}
	fail = true
	fams, _ = scrape(t, h)
	if _, ok := fams["jobq_notifications_pending"]; ok {
		t.Error("a count that failed is served")
	}
	if v, _ := value(fams, "jobq_jobs", "state", "queued"); v != 1 {
		t.Errorf("with the count failing, jobq_jobs{state=queued} = %v", v)
	}
}

// seedHistory writes n finished jobs into each of repos repositories, as
// bench/seed does: the records queue.Enqueue would leave, without its
// fsyncs.
func seedHistory(tb testing.TB, s *queue.Store, repos, n int) {
	tb.Helper()
	code := 0
	start := time.Now().Add(-time.Hour).UTC()
	for r := range repos {
		repo := fmt.Sprintf("repo%03d", r)
		dir := filepath.Join(s.Dir(), "repos", repo)
		os.MkdirAll(dir, 0o700)
		for id := range n {
			j := queue.Job{Repo: repo, ID: int64(id), Queue: repo, Ref: "refs/heads/main", NewRev: strings.Repeat("b", 40), User: "seed",
				Options: queue.Options{Command: "true", Runner: "exec", Timeout: time.Minute, Keep: n},
				State:   queue.Succeeded, QueuedAt: start, StartedAt: start, FinishedAt: start.Add(time.Duration(id%600) * time.Second), ExitCode: &code}
			data, _ := json.MarshalIndent(j, "", "  ")
			jd := filepath.Join(dir, strconv.Itoa(id))
			os.Mkdir(jd, 0o700)
			if err := os.WriteFile(filepath.Join(jd, "job.json"), data, 0o600); err != nil {
				tb.Fatal(err)
			}
		}
		os.WriteFile(filepath.Join(dir, "next"), []byte(strconv.Itoa(n)+"\n"), 0o600)
	}
}

// BenchmarkScrape is a scrape of a data directory with 100,000 jobs of
// history (100 repositories of 1,000), a few of them queued, after the
// first: the cost the ≤ 50 ms target is about.
func BenchmarkScrape(b *testing.B) {
	s, _ := queue.Open(b.TempDir())
	seedHistory(b, s, 100, 1000)
	for r := range 5 {
		enqueue(b, s, fmt.Sprintf("repo%03d", r))
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	h := New(s, Options{}).Handler()
	start := time.Now()
	fams, _ := scrape(b, h)
	first := time.Since(start)
	if v, _ := value(fams, "jobq_jobs", "state", "succeeded"); v != 100_000 {
		b.Fatalf("%v succeeded, want 100000", v)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		io.Copy(io.Discard, rec.Body)
	}
	// What the collector keeps of the history, and the first scrape,
	// which reads it all.
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "kept-MiB")
	b.ReportMetric(float64(first.Milliseconds()), "first-ms")
}
