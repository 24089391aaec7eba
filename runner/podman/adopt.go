package podman

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containers/podman/v5/libpod/define"
	"github.com/containers/podman/v5/pkg/bindings/containers"

	"github.com/jobq/jobq/internal/atomicfile"
	"github.com/jobq/jobq/internal/faults"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// Adopt takes over a job whose worker died or stopped while its container
// ran. The container's log (k8s-file, read through the logs endpoint: one
// stream, stdout and stderr in the order they were written, partial lines
// kept) holds all its output; the job's log holds it from the start the
// run recorded (logstart) up to where the last worker got. Adopt appends
// the notice, then the rest: live while the container runs, then once more
// without follow after it exited, since a follow can end early (podman
// #21914). Not attach with logs=true: it connects before it replays the
// log, and output made during the replay comes twice (HTTPAttach, libpod).
// A container that is gone, or never started (a host reboot leaves them
// "configured"), is runner.ErrGone.
func (r *Runner) Adopt(ctx context.Context, j runner.Job, notice string) (int, error) {
	log := j.Log
	rec, err := os.ReadFile(record(j, "container"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, runner.ErrGone // never created
	}
	if err != nil {
		return 0, fmt.Errorf("container record: %w", err)
	}
	id := string(rec)
	data, err := r.inspect(ctx, j.Job, id)
	if notFound(err) {
		return 0, runner.ErrGone
	}
	if err != nil {
		return 0, fmt.Errorf("inspect container: %w", err)
	}
	if data.State == nil || data.State.StartedAt.IsZero() {
		return 0, runner.ErrGone
	}
	switch data.State.Status {
	case "created", "configured", "initialized", "removing":
		return 0, runner.ErrGone
	}
	m, err := r.member(j.Job)
	if err != nil {
		return 0, err
	}
	r.adoptCaches(j.Job)
	// A build host's job takes over its range and a slot there, not on
	// this machine.
	ranges := filepath.Join(r.cfg.Home, "idranges")
	if m.remote() {
		ranges = rangesDir(r.hostDir(m))
		r.adoptSlot(m, j.Job)
	}
	if data.Config != nil {
		r.adoptRange(j.Job, data.Config.Labels[LabelIDRange], ranges)
	}
	logstart := record(j, "logstart")
	start, _, err := r.logHeld(j, log)
	if err != nil {
		return 0, err
	}
	// The notice goes between the output held and the rest: the rest begins
	// that much later in the log.
	n := runner.WriteNotice(log, notice)
	if err := writeRecord(logstart, start+int64(n)); err != nil {
		return 0, fmt.Errorf("record the log's start: %w", err)
	}
	faults.Point("adopt-noticed")

	return r.resume(ctx, j, id, log)
}

// inspect inspects container id of job j, waiting for its service as
// resume does (a worker may start while the service restarts).
func (r *Runner) inspect(ctx context.Context, j *queue.Job, id string) (*define.InspectContainerData, error) {
	var data *define.InspectContainerData
	answered, err := r.retry(ctx, j, func(conn context.Context) (bool, error) {
		d, err := containers.Inspect(conn, id, nil)
		if err == nil || notFound(err) {
			data = d
			return true, err
		}
		return false, err
	})
	if !answered {
		return nil, err
	}
	return data, err
}

// retry calls try with a connection to job j's service until try says it
// is done, every half second for Config.ResumeFor, and returns whether it
// was and its last error.
func (r *Runner) retry(ctx context.Context, j *queue.Job, try func(conn context.Context) (done bool, err error)) (bool, error) {
	var err error
	for deadline, n := time.Now().Add(r.resumeFor()), 0; n == 0 || time.Now().Before(deadline); n++ {
		if n > 0 {
			time.Sleep(500 * time.Millisecond)
		}
		conn, cerr := r.connect(context.WithoutCancel(ctx), j)
		if cerr != nil {
			err = cerr
			continue
		}
		var done bool
		if done, err = try(conn); done {
			return true, err
		}
	}
	return false, err
}

// logHeld is where job j's container output begins in its log (the run's
// record), and how many bytes of that output the log holds.
func (r *Runner) logHeld(j runner.Job, log *os.File) (start, held int64, err error) {
	start, err = readRecord(record(j, "logstart"))
	if err != nil {
		return 0, 0, fmt.Errorf("where its output begins in the log: %w", runner.ErrGone)
	}
	end, err := log.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, 0, fmt.Errorf("log: %w", err)
	}
	if end < start {
		return 0, 0, fmt.Errorf("the log (%d bytes) is shorter than where its output began (%d)", end, start)
	}
	return start, end - start, nil
}

// connect reaches the service job j runs on: its build host (Job.Host) in
// a pool, as Run chose it.
func (r *Runner) connect(ctx context.Context, j *queue.Job) (context.Context, error) {
	m, err := r.member(j)
	if err != nil {
		return nil, err
	}
	l, err := r.cfg.Service.link(ctx, m.ep)
	if err != nil {
		return nil, err
	}
	return l.conn, nil
}

func (r *Runner) resumeFor() time.Duration {
	if r.cfg.ResumeFor > 0 {
		return r.cfg.ResumeFor
	}
	return time.Minute
}

// errResume: a job's output stream broke while its container may still
// run (the Podman service went away); the output goes on from the
// container's log (resume).
var errResume = errors.New("the output stream broke")

// resume goes on with started job j in container id: it appends to log
// the output the log does not hold yet, from the container's log, until
// the container exits, and returns its exit code. While the service cannot
// be reached it tries again, every half second, for Config.ResumeFor.
func (r *Runner) resume(ctx context.Context, j runner.Job, id string, log *os.File) (int, error) {
	var code int
	done, err := r.retry(ctx, j.Job, func(conn context.Context) (bool, error) {
		var err error
		code, err = r.stream(ctx, conn, j, id, log)
		return !errors.Is(err, errResume), err
	})
	if done {
		return code, err
	}
	// A container that no longer runs and whose output cannot be read
	// (its host restarted under it: conmon died with it) ended unseen: its
	// fate is not known.
	if conn, cerr := r.connect(context.WithoutCancel(ctx), j.Job); cerr == nil {
		if data, ierr := containers.Inspect(conn, id, nil); ierr == nil && data.State != nil && !data.State.Running {
			return 0, fmt.Errorf("its output cannot be read after it stopped (%s; %v): %w", data.State.Status, err, runner.ErrGone)
		}
	}
	return 0, fmt.Errorf("the Podman service went away while the job ran: %w", err)
}

// stream is one try of resume, through the service conn.
func (r *Runner) stream(ctx, conn context.Context, j runner.Job, id string, log *os.File) (int, error) {
	data, err := containers.Inspect(conn, id, nil)
	if notFound(err) {
		return 0, runner.ErrGone
	}
	if err != nil || data.State == nil {
		return 0, errResume
	}
	if data.HostConfig != nil && data.HostConfig.LogConfig != nil && data.HostConfig.LogConfig.Type == "none" {
		// Made by a jobq from before adoption: its output is nowhere.
		return 0, fmt.Errorf("its container keeps no log: %w", runner.ErrGone)
	}
	_, held, err := r.logHeld(j, log)
	if err != nil {
		return 0, err
	}
	out := newBatchWriter(log)
	// With secrets, the log holds held bytes of masked output: the
	// container's log is masked again from its start (see maskStage).
	var w io.Writer = out
	var mask *maskStage
	skip := held
	if values := secretValues(j); len(values) > 0 {
		mask = newMaskStage(&skipWriter{w: out, n: held}, values)
		w, skip = mask, 0
	}
	seen := skip
	code := int(data.State.ExitCode)
	if data.State.Running || data.State.Status == "paused" || data.State.Status == "stopping" {
		sctx, stop := context.WithCancel(conn)
		streamed := make(chan error, 1)
		finished := make(chan struct{})
		var got int64
		go func() {
			defer close(finished)
			var err error
			got, err = readLogs(sctx, id, true, skip, w)
			streamed <- err
		}()
		code, _, err = r.watch(ctx, conn, id, out, streamed)
		stop()
		<-finished
		if err != nil {
			if !errors.Is(err, runner.ErrDetached) {
				out.Close()
			}
			return 0, err
		}
		seen = max(seen, got)
	}
	// What a follow missed, or all the output of a container that exited
	// while no worker watched.
	_, err = readLogs(conn, id, false, seen, w)
	if err == nil && mask != nil {
		err = mask.finish(mask.dst)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, errResume
	}
	return code, nil
}

// tailWindow is how much of the end of the container's log file tailHeld
// reads: several of conmon's records (at most 8 KiB of output each).
const tailWindow = 64 << 10

// tailHeld reports whether the output the job's stream took ends with the
// output that ends the container's k8s-file log, as it does unless the
// stream broke: ends says (logEndsWith, or a maskStage's own tail). It
// reads the log file's end where the file is on this host (a local
// service); elsewhere, or where it cannot tell, it says yes: the stream is
// all there is. Not the logs endpoint: its tail reads the whole file when
// the output has no newlines. logPath is the container's log file, if an
// Inspect of the stopped container has told it already.
func tailHeld(conn context.Context, id, logPath string, ends func(tail []byte) bool) bool {
	if logPath == "" {
		data, err := containers.Inspect(conn, id, nil)
		if err != nil {
			return true
		}
		if logPath = k8sLogPath(data); logPath == "" {
			return true
		}
	}
	f, err := os.Open(logPath)
	if err != nil {
		return true
	}
	defer f.Close()
	tail, err := k8sTail(f, tailWindow)
	if err != nil {
		return true
	}
	return ends(tail)
}

// logEndsWith is tailHeld's check of a log that holds the output as it
// came: whether it ends with tail (or cannot be read).
func logEndsWith(log *os.File) func(tail []byte) bool {
	return func(tail []byte) bool { return endsWith(log, tail) }
}

func endsWith(log *os.File, tail []byte) bool {
	end, err := log.Seek(0, io.SeekEnd)
	if err != nil || end < int64(len(tail)) {
		return err != nil
	}
	held := make([]byte, len(tail))
	if _, err := log.ReadAt(held, end-int64(len(tail))); err != nil {
		return true
	}
	return bytes.Equal(held, tail)
}

// k8sLogPath is the path of a container's k8s-file log, or "".
func k8sLogPath(data *define.InspectContainerData) string {
	if data.HostConfig == nil || data.HostConfig.LogConfig == nil || data.HostConfig.LogConfig.Type != "k8s-file" {
		return ""
	}
	return data.HostConfig.LogConfig.Path
}

// k8sTail returns the output the whole records in the last window bytes of
// a k8s-file log hold: each record is "TIME STREAM TAG OUTPUT\n", its
// OUTPUT followed by a newline where TAG is F (a full line), not P.
func k8sTail(f *os.File, window int64) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(0, fi.Size()-window)
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if off > 0 { // the first record is cut
		_, buf, _ = bytes.Cut(buf, []byte("\n"))
	}
	var out []byte
	for {
		rec, rest, ok := bytes.Cut(buf, []byte("\n"))
		if !ok {
			return out, nil // nothing, or a record being written
		}
		buf = rest
		fields := bytes.SplitN(rec, []byte(" "), 4)
		if len(fields) < 4 {
			return nil, fmt.Errorf("container log: a record %q", rec[:min(len(rec), 40)])
		}
		out = append(out, fields[3]...)
		if string(fields[2]) == "F" {
			out = append(out, '\n')
		}
	}
}

// writeRecord replaces the record at path with n, atomically.
func writeRecord(path string, n int64) error {
	return atomicfile.WriteOwned(path, []byte(strconv.FormatInt(n, 10)+"\n"), 0o600)
}

func readRecord(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}
