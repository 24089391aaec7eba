// Package metrics is what jobq-web serves a Prometheus scraper on its
// metrics listener: a data directory's jobs by state, how long those that
// end ran, and what the host's workers hold (slots, ID ranges, build
// hosts), in Prometheus' text format through its Go client library.
//
// A scrape must stay cheap however long the history: the collector keeps
// what it read of each repository's jobs and, at each scrape, reads again
// only what can have changed. A finished job's record never changes, so
// only the jobs it last saw queued or running are read again; a job added
// or removed changes its repository directory's stamp (queue.History),
// and only a repository whose stamp changed is listed again. The first
// scrape reads every record once.
//
// Repository names can be private: they are labels only where the
// administrator asks (Options.RepoLabels), for a trusted scraper.
package metrics

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jobq/jobq/internal/slottable"
	"github.com/jobq/jobq/queue"
)

// Options are what the administrator chooses of the metrics.
type Options struct {
	// RepoLabels adds a repo label to the metrics of jobs: repository
	// names, which a scraper may not otherwise learn.
	RepoLabels bool
	// NotificationsPending counts the notifications written and not yet
	// delivered or given up; nil leaves jobq_notifications_pending out.
	NotificationsPending func() (int, error)
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// unreadable is the state label of a record that cannot be decoded.
const unreadable = "unreadable"

// Collector is a prometheus.Collector of a data directory.
type Collector struct {
	store *queue.Store
	opts  Options

	jobs, oldest, slots, waiters, ranges, hosts, hostSlots, notifications *prometheus.Desc
	durations                                                             *prometheus.HistogramVec

	mu     sync.Mutex // one scrape at a time reads and changes what follows
	repos  map[string]*repoState
	primed bool // the first look is done: a job seen ended from now on ended since
}

// repoState is what the collector last read of one repository.
type repoState struct {
	looked bool
	stamp  queue.HistoryStamp
	taken  time.Time // when stamp was taken
	state  map[int64]string
	open   map[int64]time.Time // queued, running or unreadable: read again at each scrape; queued time
	counts map[string]int      // jobs by state
}

// States are the state label's values, in the order they are exported.
var states = []string{string(queue.Queued), string(queue.Running), string(queue.Succeeded), string(queue.Failed),
	string(queue.TimedOut), string(queue.Cancelled), string(queue.Lost), unreadable}

// durationBuckets span what jobq runs: checks of seconds to deployments
// of an hour and more (the default timeout is 600 s).
var durationBuckets = []float64{1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200}

// New is a collector of store's data directory.
func New(store *queue.Store, o Options) *Collector {
	if o.Now == nil {
		o.Now = time.Now
	}
	var repo []string
	if o.RepoLabels {
		repo = []string{"repo"}
	}
	return &Collector{
		store: store, opts: o, repos: map[string]*repoState{},
		jobs: prometheus.NewDesc("jobq_jobs", "Jobs in the kept history, by state: queued and running are those now.",
			append(repo, "state"), nil),
		oldest:  prometheus.NewDesc("jobq_oldest_queued_seconds", "How long the job queued longest has waited to start (0: none queued).", nil, nil),
		slots:   prometheus.NewDesc("jobq_slots_in_use", "The host's job slots held by running jobs (JOBQ_SLOTS caps them).", nil, nil),
		waiters: prometheus.NewDesc("jobq_slot_waiters", "Queues whose next job waits for a slot.", nil, nil),
		ranges: prometheus.NewDesc("jobq_id_ranges_in_use", "Subordinate ID ranges held by podman jobs, on this machine's service (local) or on build hosts.",
			[]string{"service"}, nil),
		hosts: prometheus.NewDesc("jobq_build_hosts", "Build hosts jobq has placed jobs on, by whether the last try reached them (unreachable: skipped for now).",
			[]string{"state"}, nil),
		hostSlots:     prometheus.NewDesc("jobq_build_host_slots_in_use", "Slots of build hosts held by jobs placed on them.", nil, nil),
		notifications: prometheus.NewDesc("jobq_notifications_pending", "Notifications written and not yet delivered or given up.", nil, nil),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jobq_job_duration_seconds",
			Help:    "How long jobs ran that ended while this process watched, by their end state.",
			Buckets: durationBuckets,
		}, append(repo, "state")),
	}
}

// Handler serves the metrics: the collector's, and the process's own.
func (c *Collector) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// One metric that cannot be read leaves the others served.
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.jobs, c.oldest, c.slots, c.waiters, c.ranges, c.hosts, c.hostSlots} {
		ch <- d
	}
	if c.opts.NotificationsPending != nil {
		ch <- c.notifications
	}
	c.durations.Describe(ch)
}

// Collect implements prometheus.Collector: it brings what the collector
// knows up to date, then reports it.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.opts.Now()
	if err := c.refresh(now); err != nil {
		ch <- prometheus.NewInvalidMetric(c.jobs, err)
	} else {
		c.collectJobs(ch, now)
	}
	c.durations.Collect(ch)
	c.collectHolders(ch, now)
	if f := c.opts.NotificationsPending; f != nil {
		if n, err := f(); err != nil {
			ch <- prometheus.NewInvalidMetric(c.notifications, err)
		} else {
			ch <- prometheus.MustNewConstMetric(c.notifications, prometheus.GaugeValue, float64(n))
		}
	}
}

// Refresh brings what the collector knows of the jobs up to date, as a
// scrape does: jobq-web calls it once at its start, so that the first
// scrape does not read the whole history.
func (c *Collector) Refresh() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refresh(c.opts.Now())
}

func (c *Collector) refresh(now time.Time) error {
	repos, err := c.store.Repos()
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(repos))
	for _, r := range repos {
		seen[r] = true
		st := c.repos[r]
		if st == nil {
			st = &repoState{state: map[int64]string{}, open: map[int64]time.Time{}, counts: map[string]int{}}
			c.repos[r] = st
		}
		c.refreshRepo(r, st, now)
	}
	for r := range c.repos {
		if !seen[r] {
			delete(c.repos, r)
		}
	}
	c.primed = true
	return nil
}

// refreshRepo lists repo's jobs again if its stamp says some were added
// or removed, and reads again the records of those that had not ended.
func (c *Collector) refreshRepo(repo string, st *repoState, now time.Time) {
	// The stamp is taken before the listing: what changes after it
	// changes the stamp, and is seen at the next scrape.
	stamp, err := c.store.History(repo)
	if err != nil {
		*st = repoState{state: map[int64]string{}, open: map[int64]time.Time{}, counts: map[string]int{}}
		return
	}
	if !st.looked || stamp != st.stamp || !st.stamp.Settled(st.taken) {
		ids, err := c.store.IDs(repo)
		if err == nil {
			present := make(map[int64]bool, len(ids))
			for _, id := range ids {
				present[id] = true
				if _, known := st.state[id]; !known {
					c.read(repo, st, id)
				}
			}
			for id := range st.state {
				if !present[id] {
					st.remove(id)
				}
			}
			st.looked, st.stamp, st.taken = true, stamp, now
		}
	}
	for id := range st.open {
		c.read(repo, st, id)
	}
}

// read reads job id's record and records its state; a job seen ending
// (it was queued or running, or is new since the first look) has its
// duration observed, once.
func (c *Collector) read(repo string, st *repoState, id int64) {
	j, err := c.store.Job(repo, id)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		st.remove(id)
		return
	case err != nil:
		st.set(id, unreadable)
		st.open[id] = time.Time{}
		return
	}
	prev, known := st.state[id]
	st.set(id, string(j.State))
	if !j.State.Final() {
		st.open[id] = j.QueuedAt
		return
	}
	delete(st.open, id)
	ended := known && (prev == string(queue.Queued) || prev == string(queue.Running)) || !known && c.primed
	if ended && !j.StartedAt.IsZero() && !j.FinishedAt.IsZero() {
		c.durations.WithLabelValues(c.labels(repo, string(j.State))...).Observe(j.FinishedAt.Sub(j.StartedAt).Seconds())
	}
}

func (c *Collector) labels(repo, state string) []string {
	if c.opts.RepoLabels {
		return []string{repo, state}
	}
	return []string{state}
}

func (st *repoState) set(id int64, state string) {
	if old, ok := st.state[id]; ok {
		st.counts[old]--
	}
	st.state[id] = state
	st.counts[state]++
}

func (st *repoState) remove(id int64) {
	if old, ok := st.state[id]; ok {
		st.counts[old]--
		delete(st.state, id)
	}
	delete(st.open, id)
}

func (c *Collector) collectJobs(ch chan<- prometheus.Metric, now time.Time) {
	var oldest time.Time
	total := map[string]int{}
	for repo, st := range c.repos {
		for _, s := range states {
			if c.opts.RepoLabels {
				ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(st.counts[s]), repo, s)
			}
			total[s] += st.counts[s]
		}
		for id, queued := range st.open {
			if st.state[id] == string(queue.Queued) && (oldest.IsZero() || queued.Before(oldest)) {
				oldest = queued
			}
		}
	}
	if !c.opts.RepoLabels {
		for _, s := range states {
			ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(total[s]), s)
		}
	}
	wait := 0.0
	if !oldest.IsZero() {
		wait = max(now.Sub(oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, wait)
}

// collectHolders reports what the host's workers hold. Each is a flock
// (slottable): a holder is seen by probing its file with a shared lock,
// which takes nothing a worker would want for longer than the probe.
func (c *Collector) collectHolders(ch chan<- prometheus.Metric, now time.Time) {
	dir := c.store.Dir()
	gauge := func(d *prometheus.Desc, n int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n), labels...)
	}
	gauge(c.slots, heldSlots(filepath.Join(dir, "slots")))
	gauge(c.waiters, heldFiles(filepath.Join(dir, "slots", "wait")))
	gauge(c.ranges, heldSlots(filepath.Join(dir, "idranges")), "local")
	remoteRanges, hostSlots, up, down := 0, 0, 0, 0
	hosts, _ := os.ReadDir(filepath.Join(dir, "hosts"))
	for _, h := range hosts {
		if !h.IsDir() {
			continue
		}
		hd := filepath.Join(dir, "hosts", h.Name())
		remoteRanges += heldSlots(filepath.Join(hd, "idranges"))
		hostSlots += heldSlots(hd)
		if markedDown(hd, now) {
			down++
		} else {
			up++
		}
	}
	gauge(c.ranges, remoteRanges, "build-host")
	gauge(c.hosts, up, "reachable")
	gauge(c.hosts, down, "unreachable")
	gauge(c.hostSlots, hostSlots)
}

// heldSlots counts the held slots of a slot table (N.lock files).
func heldSlots(dir string) int {
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		num, ok := strings.CutSuffix(e.Name(), ".lock")
		if i, err := strconv.Atoi(num); ok && err == nil && i >= 0 && strconv.Itoa(i) == num && slottable.Held(dir, i) {
			n++
		}
	}
	return n
}

// heldFiles counts the files of dir someone holds a flock on.
func heldFiles(dir string) int {
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		if e.Type().IsRegular() && held(filepath.Join(dir, e.Name())) {
			n++
		}
	}
	return n
}

// held probes path's flock as slottable.Held does: with a shared lock.
func held(path string) bool {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) != nil
}

// markedDown reads a build host's down file, which the podman runner
// writes when it cannot reach the host ("UNIX-TIME\nWHY\n": skipped until
// then).
func markedDown(hostDir string, now time.Time) bool {
	b, err := os.ReadFile(filepath.Join(hostDir, "down"))
	if err != nil {
		return false
	}
	until, _, _ := strings.Cut(string(b), "\n")
	t, err := strconv.ParseInt(strings.TrimSpace(until), 10, 64)
	return err == nil && now.Unix() < t
}
