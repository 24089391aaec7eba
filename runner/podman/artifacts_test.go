package podman

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
	"github.com/jobq/jobq/runner"
)

// Collect reads the stopped container's /source through the archive
// endpoint: what the patterns select, and nothing else; a collection
// whose context ends keeps what it wrote and says where it stopped, in
// the job's log, before the container goes.
func TestCollect(t *testing.T) {
	r, _ := newTestPodman(t)
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	j := testJob(gitDir, rev, testenv.Busybox+` sh -c "mkdir -p dist/sub report && echo a > dist/a.tgz && echo b > dist/sub/b.tgz && echo n > dist/n.txt && echo r > report/r.html && ln -s /etc report/etc"`)
	j.Options.Artifacts = []string{"dist/*.tgz", "report/**", "missing/*"}
	logf, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	h := testHandle(r, j, logf)
	defer r.Cleanup(context.Background(), testHandle(r, j, nil))
	if exit, err := r.Run(context.Background(), h); exit != 0 || err != nil {
		t.Fatalf("run: %d %v", exit, err)
	}
	for _, tt := range []struct {
		name  string
		ctx   func() (context.Context, context.CancelFunc)
		files []string
		lines []string
	}{
		{"whole", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			[]string{"dist/a.tgz", "report/r.html"},
			[]string{`jobq: artifacts: "report/etc" left out: a symlink (only files are collected)`, `jobq: artifacts: nothing collected for "missing/*"`, "jobq: artifacts: 2 files, 4 bytes collected"}},
		{"deadline passed", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), -time.Second)
		},
			nil,
			[]string{"jobq: artifacts: reading /source/dist stopped: context deadline exceeded; the rest left out", "jobq: artifacts: 0 files, 0 bytes collected"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logf.Truncate(0)
			logf.Seek(0, 0)
			h.Artifacts = t.TempDir()
			ctx, cancel := tt.ctx()
			defer cancel()
			if err := r.Collect(ctx, h); err != nil {
				t.Fatal(err)
			}
			var got []string
			filepath.WalkDir(h.Artifacts, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(h.Artifacts, p)
					got = append(got, rel)
				}
				return nil
			})
			if strings.Join(got, " ") != strings.Join(tt.files, " ") {
				t.Errorf("collected %q, want %q", got, tt.files)
			}
			b, _ := os.ReadFile(logf.Name())
			if string(b) != strings.Join(tt.lines, "\n")+"\n" {
				t.Errorf("log:\n%s\nwant:\n%s", b, strings.Join(tt.lines, "\n"))
			}
		})
	}
	// Stopping (the worker's SIGTERM) leaves the log alone, for the
	// adopting worker.
	logf.Truncate(0)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(runner.ErrStopping)
	h.Artifacts = t.TempDir()
	if err := r.Collect(ctx, h); err != runner.ErrDetached {
		t.Errorf("stopping: %v, want ErrDetached", err)
	}
	if b, _ := os.ReadFile(logf.Name()); len(b) != 0 {
		t.Errorf("stopping wrote to the log: %q", b)
	}
}
