package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/notify"
	"github.com/jobq/jobq/queue"
)

// jobq REPO ID --json: the job, and its notifications' delivery; never a
// destination (a URL's token, a program's path, an address).
func TestShowJobJSON(t *testing.T) {
	home := t.TempDir()
	s, _ := queue.Open(home)
	j := &queue.Job{Repo: "a", Queue: "a", Ref: "refs/heads/main", NewRev: strings.Repeat("c", 40),
		Options: queue.Options{Command: "x", Timeout: time.Minute, Keep: 5,
			Notify: []string{"https://hooks.example.org/x?token=T0KEN", "mailto:ops@example.org", "exec:/usr/local/bin/on-job"}}}
	if _, err := s.Enqueue(j); err != nil {
		t.Fatal(err)
	}
	j.State = queue.Failed
	if _, err := notify.Prepare(s, j); err != nil {
		t.Fatal(err)
	}
	s.Update("a", 0, func(r *queue.Job) error { r.State = queue.Failed; return nil })
	code, out, stderr := invoke(t, map[string]string{"JOBQ_HOME": home}, "", "a", "0", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var v struct {
		ID            int64  `json:"id"`
		State         string `json:"state"`
		Notifications []struct {
			Kind, Event, State string
		} `json:"notifications"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if v.State != "failed" || len(v.Notifications) != 3 || v.Notifications[0].Kind != "webhook" || v.Notifications[0].State != "pending" || v.Notifications[0].Event != "failed" {
		t.Errorf("%+v", v)
	}
	for _, hidden := range []string{"T0KEN", "hooks.example.org", "ops@example.org", "on-job", "options"} {
		if strings.Contains(out, hidden) {
			t.Errorf("--json shows %q:\n%s", hidden, out)
		}
	}
	if code, _, _ := invoke(t, map[string]string{"JOBQ_HOME": home}, "", "a", "0", "--json", "--raw"); code != 2 {
		t.Errorf("--json --raw: exit %d, want 2", code)
	}
	if code, _, _ := invoke(t, map[string]string{"JOBQ_HOME": home}, "", "a", "7", "--json"); code == 0 {
		t.Errorf("a missing job: exit 0")
	}
}
