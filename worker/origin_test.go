package worker

import (
	"strings"
	"testing"

	"github.com/jobq/jobq/queue"
)

// The log's header says how the job was started, and by whom.
func TestHeaderSaysHowTheJobStarted(t *testing.T) {
	for _, tt := range []struct {
		origin queue.Origin
		user   string
		want   string
	}{
		{"", "alice", "jobq: job 3 of r, queue q, pushed by alice\n"},
		{queue.OriginPush, "alice", "jobq: job 3 of r, queue q, pushed by alice\n"},
		{queue.OriginRetry, "carol", "jobq: job 3 of r, queue q, retried by carol\n"},
		{queue.OriginRun, "carol", "jobq: job 3 of r, queue q, run by carol\n"},
		{queue.OriginRun, "", "jobq: job 3 of r, queue q, run by -\n"},
	} {
		j := &queue.Job{ID: 3, Repo: "r", Queue: "q", User: tt.user, Origin: tt.origin, Options: queue.Options{Runner: "exec"}}
		if got, _, _ := strings.Cut(header(j), "jobq: ref"); got != tt.want {
			t.Errorf("origin %q: %q, want %q", tt.origin, got, tt.want)
		}
	}
}
