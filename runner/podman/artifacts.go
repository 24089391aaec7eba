package podman

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/containers/podman/v5/pkg/bindings/containers"

	"github.com/jobq/jobq/internal/human"
	"github.com/jobq/jobq/internal/safetar"
	"github.com/jobq/jobq/push"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

var _ runner.Collector = (*Runner)(nil)

// Bounds of what a collection reads, beyond what it keeps
// (JOBQ_ARTIFACTS_MAX): a pattern's directory may hold much that the
// pattern does not select, which is read and passed over.
const (
	entriesPerFile = 10       // headers read per file allowed
	readFactor     = 4        // bytes read per byte allowed
	readSlack      = 64 << 20 // and this much more
)

// Collect copies the files JOBQ_ARTIFACTS selects out of the stopped
// container's /source into j.Artifacts, through the archive endpoint
// (the same for a local service, whose /source is a bind mount of the
// checkout, and a build host's, whose /source is a volume): one request
// per pattern's directory, its tar written by internal/safetar, which
// takes it as the hostile input it is. It runs before Cleanup removes the
// container.
func (r *Runner) Collect(ctx context.Context, j runner.Job) error {
	if len(j.Options.Artifacts) == 0 {
		return nil
	}
	// Every line at once, at the end: a collection cut short by a
	// stopping worker leaves the log as the container left it, for the
	// adopting worker to take up exactly.
	var lines []string
	say := func(format string, args ...any) {
		lines = append(lines, fmt.Sprintf("jobq: artifacts: "+format+"\n", args...))
	}
	err := r.collect(ctx, j, say)
	if errors.Is(context.Cause(ctx), runner.ErrStopping) {
		return runner.ErrDetached
	}
	if len(lines) > 0 {
		queue.WriteOwn(j.Log, strings.Join(lines, ""))
	}
	return err
}

func (r *Runner) collect(ctx context.Context, j runner.Job, say func(string, ...any)) error {
	rec, err := os.ReadFile(record(j, "container"))
	if errors.Is(err, os.ErrNotExist) {
		say("none collected: the job has no container")
		return nil
	}
	if err != nil {
		return fmt.Errorf("container record: %w", err)
	}
	id := string(rec)
	conn, err := r.connect(ctx, j.Job)
	if err != nil {
		return fmt.Errorf("none collected: %w", err)
	}
	return CollectFrom(ctx, conn, id, j.Options, j.Artifacts, j.Room, say)
}

// CollectFrom is Collect's work on container id of the service conn
// (bindings): the artifacts options o select go into dir, within o's
// bounds and room; say gets the lines for the job's log, a broken or
// cut-short stream included. Its error is one of making dir's writer
// only. bench/collect times it.
func CollectFrom(ctx, conn context.Context, id string, o queue.Options, dir string, room func(int64) string, say func(string, ...any)) error {
	pats := o.Artifacts
	maxBytes, maxFiles := push.ArtifactsLimits(o)
	x, err := safetar.New(dir, safetar.Options{
		Limits: safetar.Limits{
			Files:   maxFiles,
			Bytes:   maxBytes,
			Entries: maxFiles * entriesPerFile,
			Read:    maxBytes*readFactor + readSlack,
		},
		Room:   room,
		Report: func(line string) { say("%s", line) },
	})
	if err != nil {
		return err
	}
	defer x.Close()
	failed := false
	for _, base := range artifactBases(pats) {
		src := path.Join("/source", base)
		err := archive(ctx, conn, id, src, x, func(name string) (string, bool) {
			// The archive names entries from src's own name on.
			full := base
			if _, rest, ok := strings.Cut(name, "/"); ok {
				full = path.Join(base, rest)
			}
			for _, p := range pats {
				if push.MatchArtifact(p, full) {
					return full, true
				}
			}
			return "", false
		})
		if errors.Is(err, safetar.ErrStopped) {
			break // Result says why
		}
		if err != nil {
			// What was written is kept, and counted below.
			say("reading %s stopped: %v; the rest left out", src, err)
			failed = true
			break
		}
	}
	res := x.Result()
	if res.Unreported > 0 {
		say("%d more left out", res.Unreported)
	}
	if res.Stopped != "" {
		say("stopped: %s", res.Stopped)
	}
	if res.Stopped == "" && !failed {
		names := keys(x.Written())
		for _, p := range pats {
			if !slices.ContainsFunc(names, func(n string) bool { return push.MatchArtifact(p, n) }) {
				say("nothing collected for %q", p)
			}
		}
	}
	files := "files"
	if res.Files == 1 {
		files = "file"
	}
	say("%d %s, %s collected", res.Files, files, human.Bytes(res.Bytes))
	return nil
}

// archive reads src of container id through the archive endpoint into x;
// a src that does not exist is nothing to read.
func archive(ctx, conn context.Context, id, src string, x *safetar.Extractor, sel func(string) (string, bool)) error {
	rctx, cancel := context.WithCancel(conn)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	pr, pw := io.Pipe()
	copyFn, err := containers.CopyToArchive(rctx, id, src, pw)
	if notFound(err) {
		return nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return err
	}
	copied := make(chan error, 1)
	go func() {
		err := copyFn()
		pw.CloseWithError(err)
		copied <- err
	}()
	err = x.ExtractSelected(ctx, pr, sel)
	// The copy must not block on a reader that has stopped.
	pr.CloseWithError(errors.New("the collection stopped reading"))
	cancel()
	<-copied
	if err != nil && ctx.Err() != nil && !errors.Is(err, safetar.ErrStopped) {
		return context.Cause(ctx)
	}
	return err
}

// artifactBases are the directories under /source to read for patterns
// pats: each pattern's base, less those under another's.
func artifactBases(pats []string) []string {
	var bases []string
	for _, p := range pats {
		bases = append(bases, push.ArtifactBase(p))
	}
	slices.Sort(bases)
	bases = slices.Compact(bases)
	var out []string
	for _, b := range bases {
		if len(out) > 0 {
			last := out[len(out)-1]
			if last == "" || strings.HasPrefix(b, last+"/") {
				continue // read with last already
			}
		}
		out = append(out, b)
	}
	return out
}

func keys(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
