package web

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jobq/jobq/queue"
)

// A job's page says how it was started; a record from before origins
// were kept was a push's.
func TestJobPageStartedBy(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		origin queue.Origin
		want   string
	}{{"", "push"}, {queue.OriginPush, "push"}, {queue.OriginRetry, "retry"}, {queue.OriginRun, "run"}} {
		id := f.job("pub", "refs/heads/master", queue.Succeeded, "log\n")
		if _, err := f.store.Update("pub", id, func(j *queue.Job) error { j.Origin = tt.origin; return nil }); err != nil {
			t.Fatal(err)
		}
		body := f.get("", fmt.Sprintf("/pub/%d", id)).body
		if !strings.Contains(body, "<dt>started by</dt><dd>"+tt.want+"</dd>") {
			t.Errorf("origin %q: the page lacks started by %s:\n%.2000s", tt.origin, tt.want, body)
		}
		if js := f.get("", "/pub/?json").body; !strings.Contains(js, fmt.Sprintf(`"origin":%q`, tt.want)) && !strings.Contains(js, fmt.Sprintf(`"origin": %q`, tt.want)) {
			t.Errorf("origin %q: the JSON lacks it:\n%s", tt.origin, js)
		}
	}
}

// The view serves no metrics, through its listener or CGI: /metrics is a
// repository's name to it, and none is there.
func TestNoMetricsInTheView(t *testing.T) {
	f := newFixture(t)
	f.job("pub", "refs/heads/master", queue.Succeeded, "log\n")
	for _, p := range []string{"/metrics", "/metrics/", "/metrics?json", "/pub/metrics"} {
		// A redirect to the repository page /metrics/, or not found.
		if r := f.get("alice", p); r.code != 404 && r.code != 301 || strings.Contains(r.body, "jobq_jobs") {
			t.Errorf("GET %s: %d %.200s", p, r.code, r.body)
		}
	}
}
