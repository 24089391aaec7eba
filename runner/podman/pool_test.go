package podman

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containers/common/pkg/config"

	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

func TestParseHostSlots(t *testing.T) {
	rows := []struct {
		in   string
		want map[string]int
		err  bool
	}{
		{"", map[string]int{}, false},
		{"2", map[string]int{"*": 2}, false},
		{"b0=1, b1=4,3", map[string]int{"b0": 1, "b1": 4, "*": 3}, false},
		{"0", nil, true},
		{"b0=-1", nil, true},
		{"b0=x", nil, true},
		{"=2", nil, true},
		{"b0=2,,", nil, true},
		{"99999999999999999999", nil, true},
	}
	for _, row := range rows {
		got, err := ParseHostSlots(row.in)
		if row.err {
			if err == nil || !strings.HasPrefix(err.Error(), "JOBQ_HOST_SLOTS=") {
				t.Errorf("%q: %v, %v; want an error", row.in, got, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, row.want) {
			t.Errorf("%q: %v, %v; want %v", row.in, got, err, row.want)
		}
	}
}

// Slots are flocks: a cap of 2 lets two holders in, the third finds none,
// and a slot let go is free again.
func TestHostSlots(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "h")
	a, err := takeSlot(dir, 2, "r/0")
	if err != nil || a == nil {
		t.Fatal(a, err)
	}
	b, _ := takeSlot(dir, 2, "r/1")
	if c, err := takeSlot(dir, 2, "r/2"); c != nil || err != nil {
		t.Errorf("third slot of 2: %v %v", c, err)
	}
	if n := countBusy(dir, 2); n != 2 {
		t.Errorf("busy %d, want 2", n)
	}
	if n := countBusy(dir, 3); n != 2 {
		t.Errorf("busy of 3 %d, want 2", n)
	}
	a.Close()
	if n := countBusy(dir, 2); n != 1 {
		t.Errorf("busy %d after a release, want 1", n)
	}
	if c, _ := takeSlot(dir, 2, "r/2"); c == nil {
		t.Error("a released slot is not free")
	} else {
		c.Close()
	}
	b.Close()
}

// A pool whose hosts cannot be reached: the job waits, and why names each
// host; a host found down is skipped without a new try until hostRetry
// has passed. A local service is no pool: the worker's slots apply.
func TestPlaceUnreachable(t *testing.T) {
	dir := t.TempDir()
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		return "tcp://" + l.Addr().String()
	}
	conf := filepath.Join(dir, "containers.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[engine.service_destinations.b0]
uri = %q
[engine.service_destinations.b1]
uri = %q
[engine.service_destinations.here]
uri = "unix:///run/podman/podman.sock"
[farms.list]
pool = ["b0", "b1"]
broken = ["b0", "nope"]
`, closed(), closed())), 0o644)
	t.Setenv("CONTAINERS_CONF", conf)
	r := New(Config{Home: dir, HostSlots: map[string]int{"*": 2},
		Service: Service{Getenv: func(string) string { return "" }, StateDir: dir}})
	r.cfg.Service.loadConfig = func() (*config.Config, error) { return config.New(nil) }
	job := func(conn string) *queue.Job {
		return &queue.Job{Repo: "r", ID: 1, Options: queue.Options{Connection: conn}}
	}
	host, release, wait, err := r.Place(context.Background(), job("pool"))
	if host != "" || release != nil || wait != "" || !errors.Is(err, runner.ErrUnreachable) ||
		!strings.HasPrefix(err.Error(), "no build host of pool can be reached (b0: ") || !strings.Contains(err.Error(), "; b1: ") {
		t.Errorf("Place: %q %v %q %v", host, release != nil, wait, err)
	}
	// The second look tries neither (both are marked down: no new
	// connection), and says the same, so the worker's log says it once.
	_, _, _, again := r.Place(context.Background(), job("pool"))
	if again == nil || err == nil || again.Error() != err.Error() {
		t.Errorf("second look %v, first %v", again, err)
	}
	for _, m := range []string{"b0", "b1"} {
		if why := r.isDown(member{ep: mustResolve(t, r, m)}); why == "" {
			t.Errorf("%s is not marked down", m)
		}
	}
	for _, conn := range []string{"here", "unix:///run/podman/podman.sock", "broken", "nothing-such"} {
		// Local, or wrong: Run says what is wrong.
		if host, release, wait, err := r.Place(context.Background(), job(conn)); host != "" || release != nil || wait != "" || err != nil {
			t.Errorf("%s: %q %v %q %v", conn, host, release != nil, wait, err)
		}
	}
	// Run's host must be one of the pool's.
	j := job("pool")
	j.Host = "b9"
	if _, err := r.member(j); err == nil || !strings.Contains(err.Error(), "build host b9 is no longer in") {
		t.Errorf("member: %v", err)
	}
	j.Host = "b1"
	if m, err := r.member(j); err != nil || m.name != "b1" {
		t.Errorf("member: %+v %v", m, err)
	}
}

func mustResolve(t *testing.T, r *Runner, name string) endpoint {
	t.Helper()
	ep, err := r.cfg.Service.resolve(name)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// The host holding a job's warm cache comes first, whatever its load; the
// others by load, the pool's order among equals.
func TestOrderHosts(t *testing.T) {
	names := func(cs []hostCand) string {
		var n []string
		for _, c := range cs {
			n = append(n, c.m.name)
		}
		return strings.Join(n, " ")
	}
	for _, tc := range []struct {
		warm, want string
	}{
		{"", "b1 b2 b0"},
		{"b0", "b0 b1 b2"},
		{"b2", "b2 b1 b0"},
		{"gone", "b1 b2 b0"},
	} {
		cs := []hostCand{{member{name: "b0"}, 2, 1}, {member{name: "b1"}, 2, 0}, {member{name: "b2"}, 4, 1}}
		if orderHosts(cs, tc.warm); names(cs) != tc.want {
			t.Errorf("warm %q: %s, want %s", tc.warm, names(cs), tc.want)
		}
	}
}
