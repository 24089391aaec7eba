package queue

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// A follower of a running job whose worker is gone (its lock free) follows
// on and asks for a worker; the output the adopter appends reaches it, and
// it ends with the job, rather than at once with "its worker died". If no
// worker can be started, it says so and ends.
func TestFollowOrphanedJob(t *testing.T) {
	for _, tt := range []struct {
		name    string
		refuse  error // what orphaned returns
		wantErr string
	}{
		{"adopted", nil, ""},
		{"no worker", errors.New("no jobq-worker"), "its worker is gone, and no jobq-worker"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			j := &Job{Repo: "r", Queue: "q", Options: Options{Runner: "exec", Timeout: time.Minute}}
			if _, err := s.Enqueue(j); err != nil {
				t.Fatal(err)
			}
			claimed := claimRunning(t, s, "q") // its worker "dies": the lock is let go
			os.WriteFile(s.LogPath("r", claimed.ID), []byte("before\n"), 0o600)
			asked := make(chan struct{}, 100)
			orphaned := func(*Job) error {
				asked <- struct{}{}
				return tt.refuse
			}
			var out bytes.Buffer
			done := make(chan error, 1)
			go func() {
				_, err := s.Follow(context.Background(), "r", claimed.ID, &out, 5*time.Millisecond, orphaned)
				done <- err
			}()
			select {
			case <-asked:
			case err := <-done:
				// A refused follow ends right after asking: both may be
				// ready by the time this looks, and select picks either.
				select {
				case <-asked:
					done <- err
				default:
					t.Fatalf("the follow ended before a worker was asked for: %v", err)
				}
			}
			if tt.refuse == nil {
				// The adopter: more output, then the end.
				f, _ := os.OpenFile(s.LogPath("r", claimed.ID), os.O_WRONLY|os.O_APPEND, 0)
				f.WriteString("after\n")
				f.Close()
				s.Update("r", claimed.ID, func(j *Job) error { j.State = Succeeded; return nil })
			}
			err := <-done
			if tt.wantErr == "" {
				if err != nil || out.String() != "before\nafter\n" {
					t.Errorf("follow: %v, output %q", err, out.String())
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("follow: %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// claimRunning claims queue q's oldest job as a worker does, marks it
// running, and lets its lock go as a dying worker does, its entry left in
// running/.
func claimRunning(t *testing.T, s *Store, q string) *Job {
	t.Helper()
	h, err := s.HoldQueue(q, false)
	if err != nil || h == nil {
		t.Fatalf("hold %s: %v", q, err)
	}
	defer h.Unlock()
	es, _ := h.Pending()
	c, err := h.Peek(es[0])
	if err != nil || c == nil {
		t.Fatalf("peek: %v", err)
	}
	if err := h.Claim(c); err != nil {
		t.Fatal(err)
	}
	h.Leave(c)
	return c.Job
}
