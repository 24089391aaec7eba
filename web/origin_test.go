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
