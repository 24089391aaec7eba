package podman

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jobq/jobq/internal/atomicfile"
	"github.com/jobq/jobq/internal/slottable"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// Build hosts: JOBQ_CONNECTION may name a remote service (an ssh:// or
// tcp:// URI, or a connection of containers.conf) or a farm of them
// ([farms.list] of containers.conf): a pool. Each host runs at most its
// cap of jobs at once (JOBQ_HOST_SLOTS, else its CPU count); a job goes to
// the least busy host with a free slot. A slot is a flock on a file under
// the data directory's hosts/HOST/, held from the job's placement to the
// end of its clean-up, as queue's slots are for local jobs. A host that
// cannot be reached is marked down there for hostRetry, and skipped.

// hostRetry is how long a host that could not be reached is skipped.
const hostRetry = 30 * time.Second

// member is one host of a pool.
type member struct {
	name string // the connection's name, or its URI
	ep   endpoint
}

// pool resolves connection to its hosts: one for a URI or a connection,
// those of the farm it names otherwise.
func (s *Service) pool(connection string) ([]member, error) {
	if connection != "" && !strings.Contains(connection, "://") {
		cfg, err := s.config()
		if err != nil {
			return nil, fmt.Errorf("read containers.conf: %w", err)
		}
		if _, err := cfg.GetConnection(connection, false); err != nil {
			farm, ferr := cfg.GetFarmConnections(connection)
			if ferr != nil {
				return nil, fmt.Errorf("JOBQ_CONNECTION=%q is neither a connection nor a farm of containers.conf: %w", connection, ferr)
			}
			if len(farm) == 0 {
				return nil, fmt.Errorf("JOBQ_CONNECTION=%q: the farm has no connections", connection)
			}
			var ms []member
			for _, c := range farm {
				ms = append(ms, member{c.Name, endpoint{uri: c.URI, identity: expandHome(c.Identity)}})
			}
			return ms, nil
		}
	}
	ep, err := s.resolve(connection)
	if err != nil {
		return nil, err
	}
	name := connection
	if name == "" || strings.Contains(name, "://") {
		name = ep.uri
		if u, err := url.Parse(ep.uri); err == nil {
			name = u.Redacted()
		}
	}
	return []member{{name, ep}}, nil
}

func (m member) remote() bool { return !strings.HasPrefix(m.ep.uri, "unix:") }

// hostKey names a host's files: by its URI, so that renaming a connection
// keeps its slots.
func hostKey(uri string) string {
	sum := sha256.Sum256([]byte(uri))
	return hex.EncodeToString(sum[:8])
}

func (r *Runner) hostDir(m member) string {
	return filepath.Join(r.cfg.Home, "hosts", hostKey(m.ep.uri))
}

// Place implements the worker's Placer: it reserves a slot on a host of
// j's pool. For a job of the local service it returns host "" and no wait:
// the worker's own slots apply. With no host free it returns why j waits.
// release frees the slot, after the job's clean-up.
func (r *Runner) Place(ctx context.Context, j *queue.Job) (host string, release func(), wait string, err error) {
	ms, err := r.cfg.Service.pool(j.Options.Connection)
	if err != nil || len(ms) == 1 && !ms[0].remote() {
		return "", nil, "", nil // Run says what is wrong
	}
	var cands []hostCand
	var down []string
	full := 0
	for _, m := range ms {
		if why := r.isDown(m); why != "" {
			down = append(down, m.name+": "+why)
			continue
		}
		c, err := r.hostCap(ctx, m)
		if err != nil {
			r.markDown(m, err)
			down = append(down, m.name+": "+oneLine(err))
			continue
		}
		cands = append(cands, hostCand{m, c, countBusy(r.hostDir(m), c)})
	}
	orderHosts(cands, r.warmHost(j))
	for _, c := range cands {
		lock, err := takeSlot(r.hostDir(c.m), c.cap, jobKey(j))
		if err != nil {
			return "", nil, "", err
		}
		if lock == nil {
			full++
			continue
		}
		// The slot is ours: can the host be reached now?
		if _, err := r.cfg.Service.link(ctx, c.m.ep); err != nil {
			lock.Close()
			r.markDown(c.m, err)
			down = append(down, c.m.name+": "+oneLine(err))
			continue
		}
		return c.m.name, func() { lock.Close() }, "", nil
	}
	// The job's readers see why it waits: no address, account or path
	// (a known_hosts file), which only the worker's log gets.
	pool := j.Options.Connection
	if full == 0 {
		return "", nil, "", fmt.Errorf("no build host of %s can be reached (%s): %w", pool, strings.Join(down, "; "), runner.ErrUnreachable)
	}
	why := fmt.Sprintf("waiting for a build host: all %d busy", full)
	if len(ms) == 1 {
		why = "waiting for its build host: busy"
	}
	if len(down) > 0 {
		why += fmt.Sprintf(", %d unreachable", len(down))
	}
	return "", nil, why, nil
}

// hostCand is a host of a job's pool that can take jobs: its cap, and how
// many of its slots are held.
type hostCand struct {
	m         member
	cap, busy int
}

// orderHosts orders the hosts a job is offered in: the one that holds its
// warm cache first (a cache lives on the host where it was made), then
// the least busy, by the share of its cap in use; the pool's order among
// equals. A busy warm host is passed over for the next with a free slot:
// the job runs cold there rather than wait.
func orderHosts(cands []hostCand, warm string) {
	slices.SortStableFunc(cands, func(a, b hostCand) int {
		if aw, bw := warm != "" && a.m.name == warm, warm != "" && b.m.name == warm; aw != bw {
			if aw {
				return -1
			}
			return 1
		}
		return a.busy*b.cap - b.busy*a.cap
	})
}

// member finds j's host in its pool.
func (r *Runner) member(j *queue.Job) (member, error) {
	ms, err := r.cfg.Service.pool(j.Options.Connection)
	if err != nil {
		return member{}, err
	}
	if j.Host == "" {
		if len(ms) > 1 {
			return member{}, fmt.Errorf("JOBQ_CONNECTION=%q names a farm, and the job has no host", j.Options.Connection)
		}
		return ms[0], nil
	}
	for _, m := range ms {
		if m.name == j.Host {
			return m, nil
		}
	}
	return member{}, fmt.Errorf("build host %s is no longer in JOBQ_CONNECTION=%q", j.Host, j.Options.Connection)
}

// hostCap is how many jobs m runs at once: JOBQ_HOST_SLOTS, else its CPU
// count.
func (r *Runner) hostCap(ctx context.Context, m member) (int, error) {
	if n, ok := r.cfg.HostSlots[m.name]; ok {
		return n, nil
	}
	if n, ok := r.cfg.HostSlots["*"]; ok {
		return n, nil
	}
	if h := r.cachedHost(m.ep.uri); h != nil && h.CPUs > 0 {
		return h.CPUs, nil
	}
	l, err := r.cfg.Service.link(ctx, m.ep)
	if err != nil {
		return 0, err
	}
	h, err := r.host(l.conn, m.ep.uri, true)
	if err != nil {
		return 0, err
	}
	return max(h.CPUs, 1), nil
}

// ParseHostSlots reads JOBQ_HOST_SLOTS: "N" for every host, or
// "NAME=N,..." with "*=N" for the others.
func ParseHostSlots(v string) (map[string]int, error) {
	m := map[string]int{}
	if v == "" {
		return m, nil
	}
	for _, f := range strings.Split(v, ",") {
		name, n, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			name, n = "*", name
		}
		c, err := strconv.Atoi(n)
		if err != nil || c < 1 || name == "" {
			return nil, fmt.Errorf("JOBQ_HOST_SLOTS=%q: %q is not NAME=N or N with N a positive number", v, f)
		}
		m[name] = c
	}
	return m, nil
}

// countBusy counts the held slots below n.
func countBusy(dir string, n int) int {
	busy := 0
	for i := range n {
		if slottable.Held(dir, i) {
			busy++
		}
	}
	return busy
}

// takeSlot locks a free slot below n; nil, nil when all are held.
func takeSlot(dir string, n int, owner string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("host slots: %w", err)
	}
	f, err := slottable.Take(dir, n)
	if err != nil {
		return nil, fmt.Errorf("host slots: %w", err)
	}
	if f != nil {
		slottable.Write(f, owner+"\n") // for people: who holds it
	}
	return f, nil
}

// markDown records that m could not be reached: it is skipped for
// hostRetry. jobq-web's metrics (internal/metrics) read the file too.
func (r *Runner) markDown(m member, err error) {
	dir := r.hostDir(m)
	if os.MkdirAll(dir, 0o700) != nil {
		return
	}
	until := time.Now().Add(hostRetry)
	replace(filepath.Join(dir, "down"), fmt.Sprintf("%d\n%s\n", until.Unix(), oneLine(err)))
}

// isDown says why m is skipped, or returns "". The text stays the same
// from one look to the next, so that a waiting job's log says it once.
func (r *Runner) isDown(m member) string {
	why, _ := r.downUntil(m)
	return why
}

func (r *Runner) downUntil(m member) (string, time.Time) {
	b, err := os.ReadFile(filepath.Join(r.hostDir(m), "down"))
	if err != nil {
		return "", time.Time{}
	}
	until, why, _ := strings.Cut(string(b), "\n")
	t, err := strconv.ParseInt(until, 10, 64)
	if err != nil || time.Now().Unix() >= t {
		return "", time.Time{}
	}
	return strings.TrimSpace(why), time.Unix(t, 0)
}

// skipped writes to a job's log which hosts of its pool were skipped as
// unreachable.
func (r *Runner) skipped(j *queue.Job, log io.Writer) {
	ms, err := r.cfg.Service.pool(j.Options.Connection)
	if err != nil || len(ms) < 2 {
		return
	}
	for _, m := range ms {
		if m.name == j.Host {
			continue
		}
		// Why, with its address and paths, is the worker's log's.
		if why, until := r.downUntil(m); why != "" {
			fmt.Fprintf(log, "jobq: build host %s was skipped: it cannot be reached; it is tried again after %s\n",
				m.name, until.Local().Format("15:04:05"))
		}
	}
}

// replace writes a small file whole, by rename.
func replace(path, content string) {
	atomicfile.Write(path, []byte(content), 0o600, false)
}

// oneLine is err on one line, bounded.
func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
