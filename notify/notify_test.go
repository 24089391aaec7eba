package notify

import (
	"os"
	"testing"

	"github.com/jobq/jobq/queue"
)

// jobs enqueues one job per ref of refs in a fresh store and records the
// states given (by index); the last is returned unfinished for the test to
// set.
func jobs(t *testing.T, refs []string, states []queue.State, o queue.Options) (*queue.Store, []*queue.Job) {
	t.Helper()
	s, err := queue.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var js []*queue.Job
	for i, ref := range refs {
		j := &queue.Job{Repo: "r", Queue: queue.DefaultQueue("r"), Ref: ref, Options: o}
		if _, err := s.Enqueue(j); err != nil {
			t.Fatal(err)
		}
		if i < len(states) {
			if j, err = s.Update("r", j.ID, func(j *queue.Job) error { j.State = states[i]; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		js = append(js, j)
	}
	return s, js
}

func TestDecide(t *testing.T) {
	const m, d = "refs/heads/master", "refs/heads/dev"
	tests := []struct {
		name   string
		on     string
		refs   []string
		before []queue.State
		now    queue.State
		want   string
	}{
		{"failure: failed", "failure", []string{m}, nil, queue.Failed, "failed"},
		{"failure: timed out", "", []string{m}, nil, queue.TimedOut, "timed-out"},
		{"failure: lost", "failure", []string{m}, nil, queue.Lost, "lost"},
		{"failure: succeeded", "failure", []string{m}, nil, queue.Succeeded, ""},
		{"failure: cancelled", "failure", []string{m}, nil, queue.Cancelled, ""},
		{"change: first failure is broken", "change", []string{m}, nil, queue.Failed, Broken},
		{"change: first success", "change", []string{m}, nil, queue.Succeeded, ""},
		{"change: fixed", "change", []string{m, m}, []queue.State{queue.Failed}, queue.Succeeded, Fixed},
		{"change: still failing", "change", []string{m, m}, []queue.State{queue.TimedOut}, queue.Failed, ""},
		{"change: broken", "change", []string{m, m}, []queue.State{queue.Succeeded}, queue.Failed, Broken},
		{"change: cancelled says nothing", "change", []string{m, m, m}, []queue.State{queue.Failed, queue.Cancelled}, queue.Succeeded, Fixed},
		{"change: another ref's result is not this one's", "change", []string{m, d}, []queue.State{queue.Failed}, queue.Succeeded, ""},
		{"change: a queued job is no result", "change", []string{m, m, m}, []queue.State{queue.Failed, queue.Queued}, queue.Succeeded, Fixed},
		{"change: cancelled now", "change", []string{m, m}, []queue.State{queue.Succeeded}, queue.Cancelled, ""},
		{"always: success", "always", []string{m}, nil, queue.Succeeded, "succeeded"},
		{"always: cancelled", "always", []string{m}, nil, queue.Cancelled, "cancelled"},
		{"always: fixed", "always", []string{m, m}, []queue.State{queue.Lost}, queue.Succeeded, Fixed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, js := jobs(t, tt.refs, tt.before, queue.Options{Notify: []string{"exec:/bin/true"}, NotifyOn: tt.on})
			j := js[len(js)-1]
			j.State = tt.now
			if got := Decide(s, j); got != tt.want {
				t.Errorf("Decide = %q, want %q", got, tt.want)
			}
		})
	}
	s, js := jobs(t, []string{m}, nil, queue.Options{})
	js[0].State = queue.Failed
	if got := Decide(s, js[0]); got != "" {
		t.Errorf("no destinations: Decide = %q", got)
	}
}

// Prepare writes the record and the index's entry before the result is
// recorded; Settled and Pending agree; readers never see a destination.
func TestPrepare(t *testing.T) {
	dests := []string{"https://hooks.example.org/jobq?token=SECRET-TOKEN", "mailto:ops@example.org", "exec:/usr/local/bin/on-job"}
	s, js := jobs(t, []string{"refs/heads/master", "refs/heads/master"}, nil, queue.Options{Notify: dests})
	j := js[0]
	j.State = queue.Failed
	ok, err := Prepare(s, j)
	if err != nil || !ok {
		t.Fatalf("Prepare = %v, %v", ok, err)
	}
	r, err := Read(s, "r", j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != queue.Failed || r.Event != "failed" || len(r.Deliveries) != 3 || r.Key != "repo-r/0" {
		t.Errorf("record %+v", r)
	}
	if n, err := Pending(s); n != 1 || err != nil {
		t.Errorf("Pending = %d, %v", n, err)
	}
	v := View(s, "r", j.ID)
	if len(v) != 3 || v[0].Kind != "webhook" || v[1].Kind != "mail" || v[2].Kind != "exec" || v[0].State != Waiting {
		t.Errorf("view %+v", v)
	}
	// A later try that finds nothing to tell removes the record.
	j.State = queue.Succeeded
	if ok, err := Prepare(s, j); ok || err != nil {
		t.Fatalf("Prepare again = %v, %v", ok, err)
	}
	if _, err := os.Stat(Path(s, "r", j.ID)); !os.IsNotExist(err) {
		t.Errorf("record left: %v", err)
	}
	if n, _ := Pending(s); n != 0 {
		t.Errorf("Pending = %d after the record went", n)
	}
}

// Prune keeps a job whose notifications are pending, and lets it go once
// they are settled.
func TestPruneKeepsPending(t *testing.T) {
	refs := []string{"refs/heads/a", "refs/heads/b", "refs/heads/c"}
	s, js := jobs(t, refs, []queue.State{queue.Failed, queue.Failed, queue.Failed}, queue.Options{Notify: []string{"exec:/bin/true"}, Keep: 1})
	for _, j := range js {
		j.State = queue.Failed
	}
	if _, err := Prepare(s, js[0]); err != nil {
		t.Fatal(err)
	}
	// Keep 1 still keeps each ref's newest: make the refs one.
	for _, j := range js {
		s.Update("r", j.ID, func(r *queue.Job) error { r.Ref = "refs/heads/a"; r.User = "u"; r.State = queue.Failed; return nil })
	}
	if err := s.Prune("r", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Job("r", js[0].ID); err != nil {
		t.Fatalf("job with pending notifications pruned: %v", err)
	}
	if err := Settled(s, "r", js[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Prune("r", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Job("r", js[0].ID); err == nil {
		t.Errorf("a settled job outlives the rule")
	}
}
