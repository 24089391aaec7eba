package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestAdmit(t *testing.T) {
	ws := func(users ...string) []waiter {
		var out []waiter
		for i, u := range users {
			out = append(out, waiter{name: fmt.Sprintf("%02d", i), user: u})
		}
		return out
	}
	for _, tt := range []struct {
		name    string
		waiters []waiter
		running map[string]int
		free    int
		cap     int
		want    []string
	}{
		{"no free slot", ws("a", "b"), nil, 0, 1, nil},
		{"oldest first", ws("a", "b", "c"), nil, 1, 2, []string{"00"}},
		{"as many as are free", ws("a", "b", "c"), nil, 2, 2, []string{"00", "01"}},
		{"a pusher at the cap is skipped", ws("bob", "alice"), map[string]int{"bob": 1}, 1, 1, []string{"01"}},
		{"the cap counts those admitted now", ws("bob", "bob", "alice"), nil, 2, 1, []string{"00", "02"}},
		{"everyone at the cap: none", ws("bob", "bob"), map[string]int{"bob": 1}, 1, 1, nil},
		{"the cap leaves a slot free", ws("bob", "bob"), nil, 2, 1, []string{"00"}},
		{"an unnamed pusher is one pusher", ws("", ""), nil, 2, 1, []string{"00"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := admit(tt.waiters, tt.running, tt.free, tt.cap)
			var names []string
			for n := range got {
				names = append(names, n)
			}
			slices.Sort(names)
			if !slices.Equal(names, tt.want) {
				t.Errorf("admitted %v, want %v", names, tt.want)
			}
		})
	}
}

func TestPlace(t *testing.T) {
	ws := []waiter{{"0", "bob"}, {"1", "bob"}, {"2", "alice"}, {"3", "bob"}, {"4", "carol"}}
	for _, tt := range []struct {
		name    string
		running map[string]int
		cap     int
		want    []int // the place of each waiter
	}{
		{"nobody capped: in order", nil, 9, []int{0, 1, 2, 3, 4}},
		{"bob's first within his cap, his others after everyone", nil, 1, []int{0, 3, 1, 4, 2}},
		{"bob at his cap: all of his after everyone", map[string]int{"bob": 1}, 1, []int{2, 3, 0, 4, 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			for _, w := range ws {
				got = append(got, place(ws, tt.running, tt.cap, w.name))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("places %v, want %v", got, tt.want)
			}
		})
	}
}

func queuedAt(user string, at int) *Job {
	return &Job{User: user, QueuedAt: time.Unix(int64(at), 0)}
}

// Waiters across queues are served oldest first, whoever looks first; a
// pusher at the cap waits while others pass.
func TestSlotOrder(t *testing.T) {
	s := newStore(t)
	holder, reason, err := s.newSlotWait("h", queuedAt("carol", 1)).try(1, 1)
	if err != nil || holder == nil {
		t.Fatalf("first job: no slot (%q, %v)", reason, err)
	}
	newer := s.newSlotWait("qa", queuedAt("alice", 3))
	older := s.newSlotWait("qb", queuedAt("bob", 2))
	defer newer.leave()
	defer older.leave()
	for _, sw := range []*slotWait{newer, older} {
		if slot, reason, err := sw.try(1, 1); slot != nil || err != nil || reason != "all job slots taken, JOBQ_SLOTS=1" {
			t.Fatalf("%s: took a held slot: %v %q %v", sw.name, slot, reason, err)
		}
	}
	holder.Unlock()
	// The newer job looks first, and leaves the slot to the older one.
	if slot, reason, err := newer.try(1, 1); slot != nil || err != nil || reason != "older jobs are first in line for a slot" {
		t.Fatalf("the newer job took the slot: %v %q %v", slot, reason, err)
	}
	slot, _, err := older.try(1, 1)
	if err != nil || slot == nil {
		t.Fatalf("the oldest job got no slot: %v", err)
	}
	slot.Unlock()
	newer.leave()

	// Two slots, a cap of one: bob runs one job, his next waits, alice's
	// newer job starts.
	bob1, _, _ := s.newSlotWait("b1", queuedAt("bob", 10)).try(2, 1)
	if bob1 == nil {
		t.Fatal("bob's first job: no slot")
	}
	defer bob1.Unlock()
	bob2 := s.newSlotWait("b2", queuedAt("bob", 11))
	defer bob2.leave()
	if slot, reason, _ := bob2.try(2, 1); slot != nil || reason != "its pusher runs 1 job, JOBQ_USER_SLOTS=1" {
		t.Fatalf("bob's second job: %v %q", slot, reason)
	}
	alice, _, err := s.newSlotWait("a1", queuedAt("alice", 12)).try(2, 1)
	if err != nil || alice == nil {
		t.Fatalf("alice waits behind bob: %v", err)
	}
	alice.Unlock()
}

// Crash safety: a child process (this test binary) takes a slot or a
// place in line and is killed; neither stays taken.
const slotChildEnv = "JOBQ_TEST_SLOT_CHILD"

func TestSlotChild(t *testing.T) {
	spec := os.Getenv(slotChildEnv)
	if spec == "" {
		return // only as a child of TestKilledHolders
	}
	dir, mode, _ := strings.Cut(spec, ":")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var held any // what holds the lock: its file closes if it is collected
	switch mode {
	case "hold":
		slot, _, err := s.newSlotWait("child", queuedAt("bob", 1)).try(1, 1)
		if err != nil || slot == nil {
			t.Fatalf("child: no slot: %v", err)
		}
		held = slot
	case "wait":
		// No slot to take: it stays in line, the oldest there.
		sw := s.newSlotWait("child", queuedAt("bob", 0))
		if slot, _, err := sw.try(0, 1); err != nil || slot != nil {
			t.Fatalf("child: %v %v", slot, err)
		}
		held = sw
	}
	fmt.Println("ready")
	// Until killed. A sleep, not a bare channel receive: with no timer
	// running, the runtime would call that a deadlock and exit.
	time.Sleep(time.Hour)
	runtime.KeepAlive(held)
}

func TestKilledHolders(t *testing.T) {
	for _, mode := range []string{"hold", "wait"} {
		t.Run(mode, func(t *testing.T) {
			s := newStore(t)
			cmd := exec.Command(os.Args[0], "-test.run=^TestSlotChild$")
			cmd.Env = append(os.Environ(), slotChildEnv+"="+s.Dir()+":"+mode)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill() // if the test ends early
			line, _ := bufio.NewReader(out).ReadString('\n')
			if line != "ready\n" {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child said %q", line)
			}
			// Alive, it keeps a newer job of bob's out.
			sw := s.newSlotWait("q", queuedAt("bob", 5))
			defer sw.leave()
			if slot, reason, err := sw.try(1, 1); slot != nil || err != nil {
				t.Fatalf("took the slot of a live child: %v %q %v", slot, reason, err)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			slot, reason, err := sw.try(1, 1)
			if err != nil || slot == nil {
				t.Fatalf("after the child died: no slot (%q, %v)", reason, err)
			}
			slot.Unlock()
			if ents, _ := os.ReadDir(filepath.Join(s.slotsDir(), "wait")); len(ents) != 0 {
				t.Errorf("places in line left: %v", ents)
			}
		})
	}
}

// 7d: a slot directory that cannot be used (here a file) is logged once,
// and Drain pauses between tries instead of spinning.
func TestSlotFailureBacksOff(t *testing.T) {
	s := newStore(t)
	s.Enqueue(newJob("r", "q"))
	slots := filepath.Join(s.Dir(), "slots")
	os.RemoveAll(slots)
	os.WriteFile(slots, []byte("not a directory"), 0o600)
	var logged []string
	var pauses []time.Duration
	attempts := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &Worker{Store: s, Run: (&recorder{}).run, Poll: 10 * time.Millisecond,
		Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }}
	w.pause = func(ctx context.Context, d time.Duration) bool {
		pauses = append(pauses, d)
		if len(pauses) == 8 {
			cancel()
		}
		return ctx.Err() == nil
	}
	w.attempt = func() {
		if attempts++; attempts > 100 {
			cancel() // it spins: stop it, and fail below
		}
	}
	if err := w.Drain(ctx, "q", false); !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain: %v", err)
	}
	if attempts > len(pauses)+1 || len(pauses) == 0 {
		t.Fatalf("%d tries to take a slot with %d pauses between them: it spins", attempts, len(pauses))
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "not a directory") {
		t.Errorf("logged %q, want the error once", logged)
	}
	for i := 1; i < len(pauses); i++ {
		if pauses[i] < pauses[i-1] || pauses[i] > maxBackoff {
			t.Errorf("pauses %v: not backing off", pauses)
			break
		}
	}
	if pauses[len(pauses)-1] <= w.Poll {
		t.Errorf("pauses %v: not backing off", pauses)
	}
}

// 5d: while the data directory's filesystem has less than MinFree, jobs
// wait, say why in the listing and the log, and can be cancelled; they
// start once space returns.
func TestWaitForSpace(t *testing.T) {
	s := newStore(t)
	s.Enqueue(newJob("r", "q"))
	s.Enqueue(newJob("r", "q"))
	var mu sync.Mutex
	free := int64(200 << 20)
	waits := make(chan struct{}) // each pause waits for the test
	rec := &recorder{}
	w := &Worker{Store: s, Run: rec.run, MinFree: 1 << 30,
		FreeSpace: func(string) (int64, error) {
			mu.Lock()
			defer mu.Unlock()
			return free, nil
		}}
	w.pause = func(ctx context.Context, d time.Duration) bool {
		waits <- struct{}{}
		return ctx.Err() == nil
	}
	done := make(chan error)
	go func() { done <- w.Drain(context.Background(), "q", false) }()
	select {
	case <-waits:
	case err := <-done:
		t.Fatalf("Drain returned (%v) without waiting for space: ran %v", err, rec.runs())
	}
	const why = "200 MiB free, JOBQ_MIN_FREE=1g"
	if got := s.Waiting("r", 0); got != why {
		t.Errorf("listing: waiting %q, want %q", got, why)
	}
	if log, _ := os.ReadFile(s.LogPath("r", 0)); string(log) != "jobq: job 0 waits to start: "+why+"\n" {
		t.Errorf("log of the waiting job: %q", log)
	}
	if j, _ := s.Job("r", 0); j.State != Queued {
		t.Errorf("a job waiting for space is %s", j.State)
	}
	if _, err := s.Cancel("r", 0); err != nil {
		t.Fatal(err)
	}
	// Job 0 is skipped at its next look; then job 1 waits.
	for i := 0; s.Waiting("r", 1) == ""; i++ {
		if i == 10 {
			t.Fatal("job 1 does not wait after job 0 was cancelled")
		}
		<-waits
	}
	if got := s.Waiting("r", 1); got != why {
		t.Errorf("job 1: waiting %q", got)
	}
	mu.Lock()
	free = 2 << 30
	mu.Unlock()
	go func() {
		for range waits {
		}
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(waits)
	if got := rec.runs(); !slices.Equal(got, []string{"r/1"}) {
		t.Errorf("ran %v, want r/1 only", got)
	}
	j0, _ := s.Job("r", 0)
	j1, _ := s.Job("r", 1)
	if j0.State != Cancelled || j1.State != Succeeded {
		t.Errorf("states %s, %s", j0.State, j1.State)
	}
	log, _ := os.ReadFile(s.LogPath("r", 1))
	if !strings.HasPrefix(string(log), "jobq: job 1 waits to start: "+why+"\njobq: job 1 of r") {
		t.Errorf("log of the job that waited:\n%s", log)
	}
	if got := s.Waiting("r", 1); got != "" {
		t.Errorf("a finished job still waits: %q", got)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 1 << 30: "1g", 3 << 29: "1536m", 100 << 10: "100k", 7: "7"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
		if back, err := ParseBytes(FormatBytes(n)); err != nil || back != n {
			t.Errorf("ParseBytes(FormatBytes(%d)) = %d, %v", n, back, err)
		}
	}
}

// One look at the slots, as each waiting worker takes every poll interval:
// 2 slots held, 8 jobs waiting.
func BenchmarkSlotLook(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "data"))
	if err != nil {
		b.Fatal(err)
	}
	for i := range 2 {
		slot, _, err := s.newSlotWait(fmt.Sprint("run", i), queuedAt("u", i)).try(2, 2)
		if err != nil || slot == nil {
			b.Fatal("no slot", err)
		}
		defer slot.Unlock()
	}
	for i := range 8 {
		sw := s.newSlotWait(fmt.Sprint("w", i), queuedAt("u", 10+i))
		if _, _, err := sw.try(2, 2); err != nil {
			b.Fatal(err)
		}
		defer sw.leave()
	}
	last := s.newSlotWait("last", queuedAt("v", 100))
	defer last.leave()
	for b.Loop() {
		if slot, _, err := last.try(2, 2); err != nil || slot != nil {
			b.Fatal(slot, err)
		}
	}
}
