// Command notify measures notifications (bench/run.sh): how long after a
// job's result a live webhook receiver gets it, and what a receiver that
// never answers adds to the start of the queue's next job. It queues jobs
// with the real hook (jobq, JOBQ_RUNNER=exec, a failing command) and
// drains them with the real worker, reading the times from the jobs'
// records.
//
//	notify -jobq BIN/jobq -worker BIN/jobq-worker -dir WORK -n JOBS -rounds R
//
// It prints lines of numbers in ms: "delivery P50 P99 MAX" (live
// receiver), and "gap-MODE P50 P99", the time from a job's result to the
// start of the queue's next job, with a webhook to the live receiver
// (live), with no notifications (none), and with a webhook to a receiver
// that accepts and never answers (dead).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	jobq := flag.String("jobq", "", "the jobq binary (no jobq-worker beside it)")
	worker := flag.String("worker", "", "the jobq-worker binary")
	dir := flag.String("dir", "", "a work directory")
	n := flag.Int("n", 60, "jobs per mode, over all rounds")
	rounds := flag.Int("rounds", 5, "rounds: each runs n/rounds jobs of each mode")
	flag.Parse()
	if *jobq == "" || *worker == "" || *dir == "" {
		log.Fatal("usage: notify -jobq BIN -worker BIN -dir DIR [-n N]")
	}
	gitDir, rev := repo(*dir)

	// A live receiver: the arrival of each job's notification, by the
	// round (its path) and the job.
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	live := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		var p struct {
			ID int64 `json:"id"`
		}
		json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p)
		mu.Lock()
		arrived[fmt.Sprintf("%s %d", r.URL.Path, p.ID)] = now
		mu.Unlock()
	}))
	// A dead receiver: it takes the connection and never answers.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for {
			c, err := dead.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c) // reads the request, answers nothing
		}
	}()

	// The modes take turns, round after round, so that a busy moment of
	// the machine falls on each alike.
	per := max(*n / *rounds, 2)
	var lat []float64
	gap := map[string][]float64{}
	modes := []string{"none", "live", "dead"}
	for round := range *rounds {
		for k := range modes {
			mode := modes[(round+k)%len(modes)]
			home := filepath.Join(*dir, fmt.Sprintf("%s-%d", mode, round))
			dest := map[string]string{"none": "", "live": fmt.Sprintf("http://%s/%d", live, round), "dead": "http://" + dead.Addr().String() + "/"}[mode]
			jobs := run(*jobq, *worker, home, gitDir, rev, per, dest, mode == "live")
			gap[mode] = append(gap[mode], gaps(jobs)...)
			if mode != "live" {
				continue
			}
			for id, j := range jobs {
				mu.Lock()
				at, ok := arrived[fmt.Sprintf("/%d %d", round, id)]
				mu.Unlock()
				if !ok {
					log.Fatalf("round %d, job %d: no notification arrived", round, id)
				}
				lat = append(lat, ms(at.Sub(j.FinishedAt)))
			}
		}
	}
	fmt.Printf("delivery %.2f %.2f %.2f\n", pct(lat, 50), pct(lat, 99), pct(lat, 100))
	for _, mode := range modes {
		fmt.Printf("gap-%s %.2f %.2f\n", mode, pct(gap[mode], 50), pct(gap[mode], 99))
	}
}

type record struct {
	State      string    `json:"state"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

// run queues n jobs with dest as JOBQ_NOTIFY ("" none) in a fresh data
// directory home, drains them with one worker, and returns their records.
// With wait, the worker is let exit by itself (its notifications
// delivered); without, it is killed once the jobs have ended.
func run(jobq, worker, home, gitDir, rev string, n int, dest string, wait bool) []record {
	env := append(os.Environ(), "JOBQ_HOME="+home)
	for range n {
		cmd := exec.Command(jobq, "hook")
		cmd.Dir = gitDir
		// jobq has no jobq-worker beside it here, and PATH names none: the
		// hook starts no worker of its own (one found on PATH would be
		// another build's), and the benchmark's worker drains the queue.
		cmd.Env = append(env, "GIT_DIR="+gitDir, "GL_REPO=bench", "JOBQ_ASYNC=1", "JOBQ_RUNNER=exec", "JOBQ_COMMAND=false",
			"JOBQ_KEEP=100000", "JOBQ_NOTIFY="+dest, "PATH=/usr/bin:/bin")
		cmd.Stdin = strings.NewReader(strings.Repeat("0", 40) + " " + rev + " refs/heads/main\n")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "queued") {
			log.Fatalf("hook: %v %s", err, out)
		}
	}
	w := exec.Command(worker, "drain", "--queue", "repo:bench")
	w.Env = append(env, "JOBQ_SLOTS=1")
	w.Stderr = io.Discard
	if err := w.Start(); err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Wait() }()
	var jobs []record
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			log.Fatal("the jobs did not end within 10 minutes")
		}
		jobs = jobs[:0]
		for id := range n {
			b, err := os.ReadFile(filepath.Join(home, "repos", "bench", strconv.Itoa(id), "job.json"))
			var r record
			if err == nil && json.Unmarshal(b, &r) == nil && r.State == "failed" {
				jobs = append(jobs, r)
			}
		}
		if len(jobs) == n {
			break
		}
	}
	if wait {
		if err := <-done; err != nil {
			log.Fatalf("worker: %v", err)
		}
	} else {
		w.Process.Kill()
		<-done
	}
	return jobs
}

// gaps are the times from each job's result to the next job's start, ms.
func gaps(jobs []record) []float64 {
	var g []float64
	for i := 1; i < len(jobs); i++ {
		g = append(g, ms(jobs[i].StartedAt.Sub(jobs[i-1].FinishedAt)))
	}
	return g
}

func serve(h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(ln, h)
	return ln.Addr().String()
}

// repo makes a bare repository with one commit.
func repo(dir string) (gitDir, rev string) {
	gitDir, work := filepath.Join(dir, "repo.git"), filepath.Join(dir, "work")
	for _, c := range [][]string{{"init", "-q", "--bare", gitDir}, {"init", "-q", work}} {
		if out, err := exec.Command("git", c...).CombinedOutput(); err != nil {
			log.Fatalf("git %v: %v %s", c, err, out)
		}
	}
	os.WriteFile(filepath.Join(work, "f"), []byte("x\n"), 0o644)
	for _, c := range [][]string{{"add", "f"}, {"-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "c"}, {"push", "-q", gitDir, "HEAD:refs/heads/main"}} {
		cmd := exec.Command("git", c...)
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("git %v: %v %s", c, err, out)
		}
	}
	out, err := exec.Command("git", "--git-dir", gitDir, "rev-parse", "refs/heads/main").Output()
	if err != nil {
		log.Fatal(err)
	}
	return gitDir, strings.TrimSpace(string(out))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct is the p-th percentile of xs (nearest rank).
func pct(xs []float64, p float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
