package podman

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/errorhandling"

	"github.com/jobq/jobq/images"
	"github.com/jobq/jobq/internal/atomicfile"
	"github.com/jobq/jobq/internal/faults"
	"github.com/jobq/jobq/internal/gittree"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// Config configures the podman runner.
type Config struct {
	Service Service
	// Home is the data directory: its containers carry it as a label, and
	// only they are swept or cleaned up.
	Home  string
	Grace time.Duration
	// Active reports whether a job still runs (under any worker): the
	// sweep leaves that job's container alone.
	Active func(repo string, id int64) bool
	// Checkout bounds each job's checkout; a zero value means
	// gittree.DefaultLimits.
	Checkout gittree.Limits
	// SubUID and SubGID name the files the account's subordinate IDs are
	// read from, for the jobs' ID ranges: /etc/subuid and /etc/subgid when
	// empty.
	SubUID, SubGID string
	// HostSlots caps the jobs each build host runs at once, by the
	// connection's name, "*" for the others (ParseHostSlots); a host
	// with neither runs as many as it has CPUs.
	HostSlots map[string]int
	// ResumeFor is how long a job whose service went away waits for it to
	// come back (the container runs on meanwhile); 0: a minute.
	ResumeFor time.Duration
	// CacheTotal bounds the size of all caches (JOBQ_CACHE_TOTAL): jobq
	// gc drops the least recently used beyond it; 0: no bound.
	CacheTotal int64
	// Logf reports what jobq gc did to caches; nil: nothing is said.
	Logf func(format string, args ...any)
	// EnvHelper is the jobq-env binary, for jobs given a secret as a
	// variable; "": next to the running binary.
	EnvHelper string
}

// The contract of package runner, optional parts included.
var (
	_ runner.Runner   = (*Runner)(nil)
	_ runner.Placer   = (*Runner)(nil)
	_ runner.Reserver = (*Runner)(nil)
	_ runner.Sweeper  = (*Runner)(nil)
	_ io.Closer       = (*Runner)(nil)
)

// Runner is the podman runner: each job in a container of its own, on the
// Podman service its JOBQ_CONNECTION names.
type Runner struct {
	cfg Config

	mu    sync.Mutex
	swept map[string]bool      // by service URI: the sweep ran, and no Cleanup failed since
	hosts map[string]*hostInfo // by service URI: what the service can do
	held  map[string]*idRange  // by job: its ID range, until its Cleanup
	// reserved: by queued job, the ID range Reserve took for its Run.
	reserved map[string]*idRange
	slots    map[string]*os.File // by job: an adopted job's build host slot, until its Cleanup
	// reservedCaches, heldCaches: by job, its caches from Reserve to Run,
	// and from Run (or Adopt) to Cleanup (cache.go).
	reservedCaches, heldCaches map[string]*jobCaches
}

// needSweep reports whether leftovers may exist that no Cleanup will
// remove: at a worker's first job, and after a Cleanup failed.
func (r *Runner) needSweep(uri string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	need := !r.swept[uri]
	if r.swept == nil {
		r.swept = map[string]bool{}
	}
	r.swept[uri] = true
	return need
}

func (r *Runner) cleanupFailed() {
	r.mu.Lock()
	r.swept = nil
	r.mu.Unlock()
}

// NewPodman returns the podman runner.
func New(cfg Config) *Runner {
	if cfg.Checkout == (gittree.Limits{}) {
		cfg.Checkout = gittree.DefaultLimits()
	}
	cfg.Service.tunnels = &tunnels{}
	return &Runner{cfg: cfg}
}

// Close ends the runner's ssh connections to build hosts and removes
// their sockets: at the worker's exit.
func (r *Runner) Close() error {
	r.cfg.Service.tunnels.close()
	return nil
}

// Run checks the revision out, runs the container with the checkout at
// /source and copies its attach stream into log; Cleanup removes both,
// after the result is recorded.
func (r *Runner) Run(ctx context.Context, j runner.Job) (int, error) {
	log := j.Log
	args, err := argv(j.Job)
	if err != nil {
		return 0, err
	}
	m, err := r.member(j.Job)
	if err != nil {
		return 0, err
	}
	l, err := r.cfg.Service.link(ctx, m.ep)
	if err != nil {
		return 0, err
	}
	conn := l.conn
	// jobq's lines, recorded as such (queue.WriteOwn).
	var own strings.Builder
	if r.skipped(j.Job, &own); own.Len() > 0 {
		queue.WriteOwn(log, own.String())
		own.Reset()
	}
	// An image that is present costs no question to the service: create
	// finds out (a round trip less on every job); JOBQ_PULL=always pulls
	// first.
	if err := images.Check(args[0], j.Options.Pull); err != nil {
		return 0, err
	}
	if j.Options.Pull == images.PullAlways {
		if _, err := images.Ensure(conn, args[0], j.Options.Pull, log); err != nil {
			return 0, err
		}
	}
	host, err := r.host(conn, m.ep.uri, l.remote)
	if err != nil {
		return 0, err
	}
	var hard hardLimits
	if !l.remote {
		budget, err := serviceNproc(r.cfg.Service.Getenv)
		if err != nil {
			return 0, err
		}
		hard = LocalHard(budget)
	}
	notApplied(j.Job, host, hard, &own)
	if own.Len() > 0 {
		queue.WriteOwn(log, own.String())
		own.Reset()
	}
	hostDir := ""
	if l.remote {
		hostDir = r.hostDir(m)
	}
	ids, err := r.acquire(ctx, conn, j.Job, host, hostDir)
	if err != nil {
		return 0, err
	}
	caches := r.takeCaches(j.Job)
	// A remote service gets the source in the container (ship), not from
	// a directory here.
	var dir string
	if !l.remote {
		if dir, err = r.checkout(ctx, j); err != nil {
			return 0, err
		}
	}
	s, err := Spec(j.Job, r.cfg.Home, dir, r.cfg.Grace, selinuxEnabled(), ids, host, hard)
	if err != nil {
		return 0, err
	}
	cacheVols, seedFrom, err := r.cacheMounts(conn, j.Job, caches, ids, &own)
	if own.Len() > 0 {
		queue.WriteOwn(log, own.String())
		own.Reset()
	}
	if err != nil {
		return 0, err
	}
	s.Volumes = append(s.Volumes, cacheVols...)
	secrets, err := r.prepareSecrets(j, l.remote)
	if err != nil {
		return 0, err
	}
	if secrets != nil {
		var command []string
		if secrets.env != "" {
			if command, err = imageCommand(conn, j.Job, args, log); err != nil {
				return 0, err
			}
		}
		secrets.apply(s, selinuxEnabled(), command)
	}
	created, err := containers.CreateWithSpec(conn, s, nil)
	if err != nil && j.Options.Pull != images.PullAlways {
		// The image is missing, most likely: pull it (or say why not) and
		// try once more.
		pulled, perr := images.Ensure(conn, args[0], j.Options.Pull, log)
		if perr != nil {
			return 0, perr
		}
		if pulled {
			created, err = containers.CreateWithSpec(conn, s, nil)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("create container: %w", err)
	}
	id := created.ID
	os.WriteFile(record(j, "container"), []byte(id), 0o600)
	faults.Point("container-created")
	if err := secrets.shipEnv(conn, id); err != nil {
		return 0, err
	}
	if err := secrets.ship(conn, id); err != nil {
		return 0, err
	}
	if l.remote {
		if err := r.ship(ctx, conn, j.Job, id); err != nil {
			return 0, err
		}
	}
	if err := r.seedCache(conn, j.Job, caches, seedFrom, args[0], id); err != nil {
		return 0, err
	}
	code, err := r.attachStartWait(ctx, conn, j, id, !l.remote, log)
	if err == nil {
		r.afterCaches(conn, j.Job, caches, l.remote, log)
	}
	if err != nil && l.tunnel != nil && !l.tunnel.Alive(5*time.Second) {
		// The host went away (Wait then says code 0 and EOF): the job's
		// fate is not known.
		r.markDown(m, err)
		return 0, lostError(fmt.Sprintf("build host %s went away during the job: its ssh connection ended", m.name))
	}
	return code, err
}

// record is the path of j's record name in its run directory (the
// package doc lists them).
func record(j runner.Job, name string) string { return filepath.Join(j.Dir, name) }

// lostError is a job's end whose outcome is not known (runner.ErrLost).
type lostError string

func (e lostError) Error() string        { return string(e) }
func (e lostError) Is(target error) bool { return target == runner.ErrLost }

// checkout checks the job's revision out into a directory of its own,
// recorded for Cleanup.
func (r *Runner) checkout(ctx context.Context, j runner.Job) (string, error) {
	dir, err := os.MkdirTemp("", "jobq-checkout-")
	if err != nil {
		return "", fmt.Errorf("checkout: %w", err)
	}
	// Cleanup removes the checkout and the container, after the result.
	if err := os.WriteFile(record(j, "checkout"), []byte(dir), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("checkout: %w", err)
	}
	// Under the job's context: a timeout or cancel stops a tree bomb too.
	if err := gittree.Checkout(ctx, j.GitDir, j.NewRev, dir, r.cfg.Checkout); err != nil {
		return "", err
	}
	faults.Point("checked-out")
	return dir, nil
}

// ship streams the job's revision into the created container's /source,
// as a tar written from the tree walk (Archive).
func (r *Runner) ship(ctx context.Context, conn context.Context, j *queue.Job, id string) error {
	pr, pw := io.Pipe()
	archived := make(chan error, 1)
	go func() {
		err := gittree.Archive(ctx, j.GitDir, j.NewRev, pw, r.cfg.Checkout)
		pw.CloseWithError(err)
		archived <- err
	}()
	copyFn, err := containers.CopyFromArchive(conn, id, "/source", pr)
	if err == nil {
		err = copyFn()
	}
	pr.CloseWithError(errors.New("the copy ended")) // the writer must not block
	if aerr := <-archived; aerr != nil {
		return aerr
	}
	if err != nil {
		return fmt.Errorf("copy the source into the container: %w", err)
	}
	faults.Point("shipped")
	return nil
}

// attachStartWait attaches before it starts, so no output is lost; the
// exit code comes from wait, not from the stream. Just before the start it
// records at logstart where the container's output begins in log: byte k
// of the container's log is byte START+k of the job's (Adopt).
//
// If the stream breaks (the Podman service restarts: conmon keeps the
// container running, and its log), the job goes on from the container's
// log, as an adoption does (resume).
func (r *Runner) attachStartWait(ctx context.Context, conn context.Context, j runner.Job, id string, local bool, log *os.File) (int, error) {
	// The stream outlives the job's context: a stopping worker detaches
	// from it, and the container runs on.
	copyTo, err := openStream(context.WithoutCancel(conn), id, local)
	if err != nil {
		return 0, err
	}
	attached := make(chan error, 1)
	// One writer for both streams keeps them in the order they arrive.
	out := newBatchWriter(log)
	var w io.Writer = out
	var mask *maskStage
	copied := make(chan struct{})
	if values := secretValues(j); len(values) > 0 {
		mask = newMaskStage(out, values)
		w = mask
	}
	go func() {
		err := copyTo(w)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		close(copied) // before watch hears of it: the masker is free
		attached <- err
	}()
	start, err := log.Seek(0, io.SeekEnd)
	if err == nil {
		err = writeRecord(record(j, "logstart"), start)
	}
	if err != nil {
		out.detach()
		return 0, fmt.Errorf("record the log's start: %w", err)
	}
	if err := containers.Start(conn, id, nil); err != nil {
		// The container may run all the same (the service restarted
		// during the start), and conmon's stream outlives the service:
		// nothing of it goes into the log after the job's result.
		out.detach()
		return 0, fmt.Errorf("start container: %w", err)
	}
	faults.Point("container-started")
	code, logPath, err := r.watch(ctx, conn, id, out, attached)
	ends := logEndsWith(log)
	if mask != nil {
		ends = mask.endsWith
	}
	if err == nil && !out.discarded() && !tailHeld(conn, id, logPath, ends) {
		// The stream ended early though the service answered (it
		// restarted, and the container ended meanwhile): the log lacks
		// the end of the output.
		err = errResume
	}
	if err == nil && mask != nil && !out.discarded() {
		// All the output came: what the masker holds back ends the log
		// (after the batches, which the copy closed). A copy still at
		// work after all is left to resume.
		select {
		case <-copied:
			if err = mask.finish(log); err != nil {
				err = fmt.Errorf("log: %w", err)
			}
		default:
			err = errResume
		}
	}
	if errors.Is(err, errResume) {
		// Nothing more from the stream: the log is resume's from here.
		out.detach()
		return r.resume(ctx, j, id, log)
	}
	return code, err
}

// watch waits for a started container to exit, while its output (out,
// which the reader ending with outputDone writes) goes to the log; it stops
// the container when ctx ends, or leaves it running (runner.ErrStopping).
// It returns the container's exit code, and its k8s-file log's path where
// the look that saw it stopped told it.
func (r *Runner) watch(ctx context.Context, conn context.Context, id string, out *batchWriter, attached chan error) (int, string, error) {
	// Podman's wait polls the container's state, every 250 ms by default:
	// a quarter of a second lost on every job. Poll that slowly while the
	// job runs, and every 10 ms once its output has ended (it is exiting)
	// or it was told to stop.
	wait := func(interval string) (<-chan waitResult, context.CancelFunc) {
		wctx, cancel := context.WithCancel(conn)
		ch := make(chan waitResult, 1)
		go func() {
			code, err := containers.Wait(wctx, id, new(containers.WaitOptions).WithInterval(interval))
			ch <- waitResult{code: code, err: err}
		}()
		return ch, cancel
	}
	waited, cancelWait := wait("250ms")
	outputDone, stopping := attached, ctx.Done()
	var res waitResult
	for waiting := true; waiting; {
		select {
		case res = <-waited:
			waiting = false
		case err := <-outputDone:
			attached <- err // for the drain below
			outputDone = nil
			cancelWait()
			waited, cancelWait = exited(conn, id)
		case <-stopping:
			stopping = nil
			if errors.Is(context.Cause(ctx), runner.ErrStopping) {
				// The worker stops: the container runs on, for the next
				// worker, and nothing more goes into the log from here.
				cancelWait()
				out.detach()
				return 0, "", runner.ErrDetached
			}
			// Over the log limit: no grace, and nothing more is written.
			// A job that ignores SIGTERM could write hundreds of MiB
			// during a grace period.
			overLimit := errors.Is(context.Cause(ctx), runner.ErrLogLimit)
			if overLimit {
				out.discard()
			}
			g := uint(r.cfg.Grace.Seconds())
			if overLimit || containers.Stop(conn, id, new(containers.StopOptions).WithTimeout(g)) != nil {
				containers.Kill(conn, id, new(containers.KillOptions).WithSignal("KILL"))
			}
			cancelWait()
			waited, cancelWait = wait("10ms")
		}
	}
	cancelWait()
	if res.suspect || res.err != nil {
		// The service went away, or the output ended long before the
		// container: what the stream missed is in the container's log.
		return 0, "", errResume
	}
	// A wait cut short by a dying service can look like exit code 0: the
	// service sends its status before the code. Believe a code only from
	// a container that Podman says has stopped.
	if !res.verified {
		data, err := containers.Inspect(conn, id, nil)
		if err != nil {
			return 0, "", errResume
		}
		if data.State == nil || data.State.Running || data.State.FinishedAt.IsZero() {
			return 0, "", fmt.Errorf("wait for container: it returned, but the container has not stopped")
		}
		res.code, res.logPath = data.State.ExitCode, k8sLogPath(data)
	}
	// The stream ends when the container's output does; wait for its last
	// bytes, but not forever.
	select {
	case <-attached:
	case <-time.After(10 * time.Second):
	}
	return int(res.code), res.logPath, nil
}

// waitResult is how a container ended, or why that is not known.
type waitResult struct {
	code     int32
	err      error
	verified bool   // read from Inspect of the stopped container
	logPath  string // its k8s-file log, where that Inspect told
	// suspect: the service did not answer, or the container ran on 2 s
	// after its output ended; the output may have been cut short.
	suspect bool
}

// exited waits for a container whose output has ended to be seen stopped:
// Inspect reads conmon's exit file at once, where Podman's wait also waits
// for its own clean-up of the container. A service that does not answer,
// or a container still running after 2 s, makes the result suspect.
func exited(conn context.Context, id string) (<-chan waitResult, context.CancelFunc) {
	ctx, cancel := context.WithCancel(conn)
	ch := make(chan waitResult, 1)
	go func() {
		deadline := time.Now().Add(2 * time.Second)
		// Most jobs are seen stopped within a few ms of their output's end:
		// look every millisecond (a look takes about as long), then, after
		// 16 looks, less often: doubling from the first look sees the
		// stop later.
		for n, pause := 0, time.Millisecond; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
			if n >= 16 {
				pause = min(2*pause, 10*time.Millisecond)
			}
			data, err := containers.Inspect(ctx, id, nil)
			if err != nil && ctx.Err() == nil {
				break
			}
			if err == nil && data.State != nil && !data.State.Running && !data.State.FinishedAt.IsZero() {
				ch <- waitResult{code: data.State.ExitCode, verified: true, logPath: k8sLogPath(data)}
				return
			}
			time.Sleep(pause)
		}
		ch <- waitResult{suspect: true}
	}()
	return ch, cancel
}

// remove removes a container, not-found counting as done. A container
// that has just exited may still be in Podman's own clean-up (conmon's
// exit command): a removal then can fail on its busy shm mount though the
// container goes all the same (8 jobs of 9 after 256 MiB or 1 GiB of
// output, in bench runs). So a failure is asked again, a few times, before
// it counts.
func remove(conn context.Context, id string) error {
	ctx, cancel := context.WithTimeout(conn, time.Minute)
	defer cancel()
	for pause := 100 * time.Millisecond; ; pause *= 2 {
		_, err := containers.Remove(ctx, id, new(containers.RemoveOptions).WithForce(true).WithVolumes(true).WithTimeout(0))
		if err == nil || notFound(err) {
			return nil
		}
		if pause > time.Second {
			return fmt.Errorf("remove container %s: %w", id[:min(12, len(id))], err)
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return fmt.Errorf("remove container %s: %w", id[:min(12, len(id))], err)
		}
	}
}

// Cleanup removes the job's checkout and its container: after every job,
// and for a job whose worker died. Each record goes only once what it
// names is gone, so that jobq gc can retry.
func (r *Runner) Cleanup(ctx context.Context, j runner.Job) (err error) {
	defer func() {
		if err != nil {
			r.cleanupFailed()
		}
		r.release(j.Job, err == nil)
		r.releaseCaches(j.Job, err == nil)
	}()
	// The checkout first, at once after the result, and whether or not the
	// service can be reached. Its removal never follows a symlink, so a
	// container that still runs (its worker died) cannot misdirect it.
	coerr := r.removeCheckoutOf(ctx, j)
	cerr := r.removeContainer(ctx, j)
	return errors.Join(coerr, cerr, r.removeSecrets(ctx, j, cerr == nil))
}

// removeCheckoutOf removes the job's checkout, then its record.
func (r *Runner) removeCheckoutOf(ctx context.Context, j runner.Job) error {
	rec := record(j, "checkout")
	dir, err := os.ReadFile(rec)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checkout record: %w", err)
	}
	if err := removeCheckout(ctx, string(dir)); err != nil {
		return err
	}
	return removeRecord(rec)
}

// removeRecord removes a record; gone already (a Cleanup at the same time)
// counts as done.
func removeRecord(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// removeContainer removes the job's container, by its record or, without
// one (the worker died before it was written), by its labels.
func (r *Runner) removeContainer(ctx context.Context, j runner.Job) error {
	m, err := r.member(j.Job)
	if err != nil {
		return err
	}
	l, err := r.cfg.Service.link(ctx, m.ep)
	if err != nil {
		return err
	}
	conn := l.conn
	// Strays that no Cleanup will remove, after the result, not before it.
	if r.needSweep(m.ep.uri) {
		r.sweep(conn, j.Job)
		if !m.remote() {
			r.sweepSecretDirs(j.Job)
		}
	}
	if r.droppedCache(j.Job) {
		// A cache dropped after the job goes with its container; others
		// (jobq cache rm, gc) with a worker's first clean-up.
		defer r.sweepCaches(conn)
	}
	cfile := record(j, "container")
	if id, err := os.ReadFile(cfile); err == nil {
		if err := remove(conn, string(id)); err != nil {
			return err
		}
		return errors.Join(atomicfile.Remove(record(j, "logstart")), removeRecord(cfile))
	}
	filters := map[string][]string{"label": {LabelHome + "=" + r.cfg.Home, LabelRepo + "=" + j.Repo, LabelJob + "=" + strconv.FormatInt(j.ID, 10)}}
	list, err := containers.List(conn, new(containers.ListOptions).WithAll(true).WithFilters(filters))
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	for _, c := range list {
		if err := remove(conn, c.ID); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		errs = append(errs, atomicfile.Remove(record(j, "logstart")))
	}
	return errors.Join(errs...)
}

// removeCheckout removes a checkout and what the job's container left in
// it: directories whose modes shut their owner out (chmod 000), which it
// opens up first, and, rootless, entries owned by the account's
// subordinate IDs (chown in the container), which only root of the user
// namespace may remove: podman unshare, a process, only when needed.
func removeCheckout(ctx context.Context, dir string) error {
	// Only what Run made: a corrupt record must not name anything else.
	if !filepath.IsAbs(dir) || !strings.HasPrefix(filepath.Base(dir), "jobq-checkout-") {
		return fmt.Errorf("checkout record names %q, not a checkout", dir)
	}
	if os.RemoveAll(dir) == nil {
		return nil
	}
	openUp(dir)
	err := os.RemoveAll(dir)
	if err == nil || os.Geteuid() == 0 {
		if err != nil {
			return fmt.Errorf("remove checkout: %w", err)
		}
		return nil
	}
	out, uerr := exec.CommandContext(ctx, "podman", "unshare", "rm", "-rf", "--", dir).CombinedOutput()
	if uerr != nil {
		return fmt.Errorf("remove checkout: %w; podman unshare rm: %v: %s", err, uerr, bytes.TrimSpace(out))
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove checkout %s: still there after podman unshare rm", dir)
	}
	return nil
}

// openUp gives the owner rwx on every directory of the tree at dir that
// the account owns. It works inside an os.Root: a symlink in the tree
// cannot take it outside.
func openUp(dir string) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		os.Chmod(dir, 0o700) // the top itself shut
		if root, err = os.OpenRoot(dir); err != nil {
			return
		}
	}
	defer root.Close()
	uid := os.Geteuid()
	var walk func(name string)
	walk = func(name string) {
		fi, err := root.Lstat(name)
		if err != nil || !fi.IsDir() {
			return
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && fi.Mode().Perm()&0o700 != 0o700 {
			root.Chmod(name, fi.Mode().Perm()|0o700)
		}
		d, err := root.Open(name)
		if err != nil {
			return
		}
		ents, _ := d.ReadDir(-1)
		d.Close()
		for _, e := range ents {
			if e.IsDir() {
				walk(filepath.Join(name, e.Name()))
			}
		}
	}
	walk(".")
}

// sweep removes labelled containers of jobs that no longer run, then the
// volumes no container uses of those jobs: what a worker that died, or a
// service that went away, left. It never fails a job.
func (r *Runner) sweep(conn context.Context, current *queue.Job) {
	list, err := containers.List(conn, new(containers.ListOptions).WithAll(true).
		WithFilters(map[string][]string{"label": {LabelHome + "=" + r.cfg.Home}}))
	if err != nil {
		return
	}
	for _, c := range list {
		repo := c.Labels[LabelRepo]
		id, err := strconv.ParseInt(c.Labels[LabelJob], 10, 64)
		if err != nil || queue.ValidName(repo) != nil {
			continue // not ours to judge
		}
		if current != nil && repo == current.Repo && id == current.ID || r.cfg.Active != nil && r.cfg.Active(repo, id) {
			continue
		}
		remove(conn, c.ID)
	}
	r.sweepVolumes(conn, current)
	r.sweepCaches(conn)
}

func selinuxEnabled() bool {
	b, err := os.ReadFile("/sys/fs/selinux/enforce")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// notFound reports whether the service answered that what was asked for
// does not exist.
func notFound(err error) bool {
	var model *errorhandling.ErrorModel
	return errors.As(err, &model) && model.ResponseCode == http.StatusNotFound
}
