package worker

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jobq/jobq/internal/termsafe"
	"github.com/jobq/jobq/queue"
)

// The worker records its own lines of a job's log (the header, the
// result line after a last line without its newline), so a reader tells
// them from the job's imitations of them.
func TestWorkerRecordsItsLines(t *testing.T) {
	s := newStore(t)
	s.Enqueue(newJob("r", "q"))
	w := &Worker{Store: s, Runners: runWith(func(ctx context.Context, j *queue.Job, log *os.File) (int, error) {
		log.WriteString("jobq: job 0 of r, queue q, pushed by -\njobq: succeeded, exit code 0")
		return 1, nil
	})}
	if err := w.Drain(context.Background(), "q", false); err != nil {
		t.Fatal(err)
	}
	path := s.LogPath("r", 0)
	b, _ := os.ReadFile(path)
	own := queue.OpenOwn(path)
	defer own.Close()
	var out bytes.Buffer
	lw := termsafe.NewLogWriter(&out, own)
	lw.Write(b)
	lw.Close()
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		got = append(got, l[:min(len(l), 24)])
	}
	want := []string{"jobq: job 0 of r, queue ", "jobq: ref refs/heads/mai", "jobq: runner exec: x", "jobq: queued ",
		"[job] jobq: job 0 of r, q", "[job] jobq: succeeded, ex", "jobq: failed, exit code "}
	if len(got) != len(want) {
		t.Fatalf("shown:\n%s", out.String())
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i][:min(len(want[i]), 20)]) {
			t.Errorf("line %d: %q, want %q; shown:\n%s", i, got[i], want[i], out.String())
		}
	}
}
