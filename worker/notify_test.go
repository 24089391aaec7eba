package worker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobq/jobq/notify"
	"github.com/jobq/jobq/notify/deliver"
	"github.com/jobq/jobq/queue"
)

// order wraps a notifier and checks the order of a job's steps: the
// notification is recorded before the result, and sent after it.
type order struct {
	*deliver.Deliverer
	s   *queue.Store
	mu  sync.Mutex
	bad []string
}

func (o *order) Prepare(j *queue.Job) (bool, error) {
	if cur, _ := o.s.Job(j.Repo, j.ID); cur.State.Final() {
		o.fail("job %d: its result was recorded before its notification", j.ID)
	}
	return o.Deliverer.Prepare(j)
}

func (o *order) Send(j *queue.Job) {
	if cur, _ := o.s.Job(j.Repo, j.ID); !cur.State.Final() {
		o.fail("job %d: sent before its result was recorded", j.ID)
	}
	if _, err := notify.Read(o.s, j.Repo, j.ID); err != nil {
		o.fail("job %d: sent without a record: %v", j.ID, err)
	}
	o.Deliverer.Send(j)
}

func (o *order) fail(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.bad = append(o.bad, format)
}

// A receiver that hangs does not hold the queue: the jobs run one after
// another while their notifications wait, and every one is delivered
// once the receiver answers.
func TestNotifyOffTheJobPath(t *testing.T) {
	s := newStore(t)
	release := make(chan struct{})
	var got atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		got.Add(1)
	}))
	defer srv.Close()
	for range 3 {
		j := newJob("r", "q")
		j.Options.Notify = []string{srv.URL}
		if _, err := s.Enqueue(j); err != nil {
			t.Fatal(err)
		}
	}
	d := deliver.New(deliver.Config{Store: s, HTTPTimeout: 30 * time.Second, Backoff: 10 * time.Millisecond, Logf: t.Logf})
	o := &order{Deliverer: d, s: s}
	w := &Worker{Store: s, Poll: time.Millisecond, Notifier: o,
		Runners: runWith(func(ctx context.Context, j *queue.Job, log *os.File) (int, error) { return 1, nil })}
	start := time.Now()
	if err := w.Drain(context.Background(), "q", false); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("three jobs took %s with a receiver that does not answer", took)
	}
	if n, _ := notify.Pending(s); n != 3 {
		t.Errorf("%d jobs' notifications pending, want 3", n)
	}
	close(release)
	d.Close(10 * time.Second)
	if got.Load() != 3 {
		t.Errorf("receiver got %d, want 3", got.Load())
	}
	if n, _ := notify.Pending(s); n != 0 {
		t.Errorf("%d jobs' notifications pending after delivery", n)
	}
	for id := range int64(3) {
		if v := notify.View(s, "r", id); len(v) != 1 || v[0].State != notify.Delivered || v[0].Event != "failed" {
			t.Errorf("job %d: %+v", id, v)
		}
	}
	if len(o.bad) > 0 {
		t.Error(o.bad)
	}
}
