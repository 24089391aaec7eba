package reliability

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A worker killed after a job's result is recorded and before its
// notification is sent, or after it is sent and before that is recorded:
// the next worker (or jobq gc) delivers it, and a receiver that dedupes on
// the idempotency key sees it exactly once. Each case runs rounds() times.
func TestNotifyCrash(t *testing.T) {
	var mu sync.Mutex
	requests := map[string]int{} // by path and idempotency key: the rounds share a repository
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		requests[r.URL.Path+" "+r.Header.Get("Idempotency-Key")]++
		mu.Unlock()
	}))
	defer srv.Close()
	for _, tc := range []struct {
		crashAt string
		next    string // what delivers afterwards: "drain" (the next worker) or "gc"
		sent    int    // requests the receiver gets in all
	}{
		{"notify-recorded", "drain", 1},
		{"notify-recorded", "gc", 1},
		{"notify-delivered", "drain", 2},
	} {
		t.Run(tc.crashAt+"/"+tc.next, func(t *testing.T) {
			delivered, dup, lost := 0, 0, 0
			var slowest time.Duration
			for round := range rounds() {
				path := fmt.Sprintf("/%s/%s/%d", tc.crashAt, tc.next, round)
				s := newStore(t)
				repo := "notify"
				s.hook(repo, "JOBQ_RUNNER=exec", "JOBQ_COMMAND=exit 1", "JOBQ_NOTIFY="+srv.URL+path)
				if !s.worker(repo, tc.crashAt) {
					t.Fatalf("the worker was not killed at %s", tc.crashAt)
				}
				if j := s.job(repo, 0); j.State != "failed" {
					t.Fatalf("job 0 %+v, want failed", j)
				}
				if _, err := os.Stat(filepath.Join(s.home, "notify", "0-"+repo)); err != nil {
					t.Fatalf("no pending notification after the crash: %v", err)
				}
				var cmd *exec.Cmd
				if tc.next == "gc" {
					cmd = exec.Command(filepath.Join(h.fi, "jobq-worker-faultinject"), "gc")
				} else {
					cmd = exec.Command(filepath.Join(h.fi, "jobq-worker-faultinject"), "drain", "--queue", "repo:"+repo)
				}
				cmd.Env = s.env()
				start := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s: %v\n%s", tc.next, err, out)
				}
				slowest = max(slowest, time.Since(start))
				b, err := os.ReadFile(filepath.Join(s.home, "repos", repo, "0", "notify.json"))
				if err != nil {
					t.Fatal(err)
				}
				var rec struct {
					Key        string `json:"key"`
					Deliveries []struct {
						Status string `json:"status"`
					} `json:"deliveries"`
				}
				if err := json.Unmarshal(b, &rec); err != nil {
					t.Fatal(err)
				}
				if len(rec.Deliveries) != 1 || rec.Deliveries[0].Status != "delivered" {
					t.Errorf("round %d: record %s", round, b)
				}
				if _, err := os.Stat(filepath.Join(s.home, "notify", "0-"+repo)); err == nil {
					t.Errorf("round %d: the index still lists the delivered job", round)
				}
				mu.Lock()
				n := requests[path+" "+rec.Key]
				keys := 0
				for k := range requests {
					if strings.HasPrefix(k, path+" ") {
						keys++
					}
				}
				mu.Unlock()
				switch {
				case keys != 1 || !strings.HasSuffix(rec.Key, "/0"):
					t.Errorf("round %d: key %q, %d keys at the receiver", round, rec.Key, keys)
				case n == 0:
					lost++
				default:
					delivered++
					dup += n - 1
				}
				if n != tc.sent {
					t.Errorf("round %d: %d requests, want %d", round, n, tc.sent)
				}
			}
			report("| notify: worker killed at %s, then %s | %d | %d delivered, 1 key each | %d second copies, dropped by the key | %d lost | slowest delivery by the next process: %s |",
				tc.crashAt, tc.next, rounds(), delivered, dup, lost, slowest.Round(time.Millisecond))
		})
	}
}
