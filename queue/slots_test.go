package queue

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
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
	holder, reason, err := s.WaitForSlot("h", queuedAt("carol", 1)).Try(1, 1)
	if err != nil || holder == nil {
		t.Fatalf("first job: no slot (%q, %v)", reason, err)
	}
	newer := s.WaitForSlot("qa", queuedAt("alice", 3))
	older := s.WaitForSlot("qb", queuedAt("bob", 2))
	defer newer.Leave()
	defer older.Leave()
	for _, sw := range []*SlotWait{newer, older} {
		if slot, reason, err := sw.Try(1, 1); slot != nil || err != nil || reason != "all job slots taken, JOBQ_SLOTS=1" {
			t.Fatalf("%s: took a held slot: %v %q %v", sw.name, slot, reason, err)
		}
	}
	holder.Release()
	// The newer job looks first, and leaves the slot to the older one.
	if slot, reason, err := newer.Try(1, 1); slot != nil || err != nil || reason != "older jobs are first in line for a slot" {
		t.Fatalf("the newer job took the slot: %v %q %v", slot, reason, err)
	}
	slot, _, err := older.Try(1, 1)
	if err != nil || slot == nil {
		t.Fatalf("the oldest job got no slot: %v", err)
	}
	slot.Release()
	newer.Leave()

	// Two slots, a cap of one: bob runs one job, his next waits, alice's
	// newer job starts.
	bob1, _, _ := s.WaitForSlot("b1", queuedAt("bob", 10)).Try(2, 1)
	if bob1 == nil {
		t.Fatal("bob's first job: no slot")
	}
	defer bob1.Release()
	bob2 := s.WaitForSlot("b2", queuedAt("bob", 11))
	defer bob2.Leave()
	if slot, reason, _ := bob2.Try(2, 1); slot != nil || reason != "its pusher runs 1 job, JOBQ_USER_SLOTS=1" {
		t.Fatalf("bob's second job: %v %q", slot, reason)
	}
	alice, _, err := s.WaitForSlot("a1", queuedAt("alice", 12)).Try(2, 1)
	if err != nil || alice == nil {
		t.Fatalf("alice waits behind bob: %v", err)
	}
	alice.Release()
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
		slot, _, err := s.WaitForSlot("child", queuedAt("bob", 1)).Try(1, 1)
		if err != nil || slot == nil {
			t.Fatalf("child: no slot: %v", err)
		}
		held = slot
	case "wait":
		// No slot to take: it stays in line, the oldest there.
		sw := s.WaitForSlot("child", queuedAt("bob", 0))
		if slot, _, err := sw.Try(0, 1); err != nil || slot != nil {
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
			sw := s.WaitForSlot("q", queuedAt("bob", 5))
			defer sw.Leave()
			if slot, reason, err := sw.Try(1, 1); slot != nil || err != nil {
				t.Fatalf("took the slot of a live child: %v %q %v", slot, reason, err)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			slot, reason, err := sw.Try(1, 1)
			if err != nil || slot == nil {
				t.Fatalf("after the child died: no slot (%q, %v)", reason, err)
			}
			slot.Release()
			if ents, _ := os.ReadDir(filepath.Join(s.slotsDir(), "wait")); len(ents) != 0 {
				t.Errorf("places in line left: %v", ents)
			}
		})
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
		slot, _, err := s.WaitForSlot(fmt.Sprint("run", i), queuedAt("u", i)).Try(2, 2)
		if err != nil || slot == nil {
			b.Fatal("no slot", err)
		}
		defer slot.Release()
	}
	for i := range 8 {
		sw := s.WaitForSlot(fmt.Sprint("w", i), queuedAt("u", 10+i))
		if _, _, err := sw.Try(2, 2); err != nil {
			b.Fatal(err)
		}
		defer sw.Leave()
	}
	last := s.WaitForSlot("last", queuedAt("v", 100))
	defer last.Leave()
	for b.Loop() {
		if slot, _, err := last.Try(2, 2); err != nil || slot != nil {
			b.Fatal(slot, err)
		}
	}
}
