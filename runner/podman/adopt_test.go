package podman

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
	"github.com/jobq/jobq/runner"
	"golang.org/x/sys/unix"
)

// frame is one frame of a multiplexed log stream.
func frame(stream byte, payload string) string {
	h := make([]byte, 8)
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(payload)))
	return string(h) + payload
}

// The log stream is read in order, both streams into one, bytes as they
// are (NUL, \r, no final newline), and the skip, which an adopting worker
// sets to the output the job's log holds, may end within a frame.
func TestDemux(t *testing.T) {
	stream := frame(1, "one\n") + frame(2, "err\r\x00") + frame(1, "") + frame(1, "two, no newline")
	all := "one\nerr\r\x00two, no newline"
	for _, tt := range []struct {
		name    string
		in      string
		skip    int64
		want    string
		seen    int64
		wantErr string
	}{
		{"all", stream, 0, all, int64(len(all)), ""},
		{"skip a frame", stream, 4, all[4:], int64(len(all)), ""},
		{"skip within a frame", stream, 6, all[6:], int64(len(all)), ""},
		{"skip everything", stream, int64(len(all)), "", int64(len(all)), ""},
		{"skip more than there is", stream, 1000, "", int64(len(all)), ""},
		{"empty", "", 0, "", 0, ""},
		{"cut within a header", stream[:3], 0, "", 0, "unexpected EOF"},
		{"cut within a frame", frame(1, "abcdef")[:11], 0, "abc", 3, "EOF"},
		{"an error frame", frame(3, "boom"), 0, "", 0, "stream 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			seen, err := demux(strings.NewReader(tt.in), tt.skip, &out)
			if out.String() != tt.want || seen != tt.seen {
				t.Errorf("got %q, seen %d; want %q, %d", out.String(), seen, tt.want, tt.seen)
			}
			if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// A worker dies while its job runs, and another job starts before the next
// worker adopts the first: it takes another ID range, not the first job's
// (whose container still runs), and the adoption takes that range over and
// gets the job's whole output and exit code. The second job must not take
// the range as one left by a dead worker and remove the first job's
// container.
func TestPodmanAdoptAfterAnotherJobStarts(t *testing.T) {
	r, svc := newTestPodman(t)
	dir := t.TempDir()
	gitDir, rev := testenv.MakeRepo(t, map[string]string{"f": "x"})
	a := testJob(gitDir, rev, testenv.Busybox+` sh -c "echo a1; sleep 3; echo a2; exit 5"`)
	a.ID = 11
	r.cfg.Active = func(repo string, id int64) bool { return repo == a.Repo && id == a.ID }
	log, err := os.OpenFile(filepath.Join(dir, "log"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	ctx, stop := context.WithCancelCause(context.Background())
	detached := make(chan error, 1)
	go func() { _, err := r.Run(ctx, testHandle(r, a, log)); detached <- err }()
	testenv.WaitUntil(t, "the first job prints", time.Minute, func() bool {
		b, _ := os.ReadFile(log.Name())
		return string(b) == "a1\n"
	})
	stop(runner.ErrStopping)
	if err := <-detached; !errors.Is(err, runner.ErrDetached) {
		t.Fatalf("Run after the worker's stop: %v", err)
	}
	r.release(a, false) // the worker's death lets its range go, its name left there

	b := testJob(gitDir, rev, testenv.Busybox+" echo b")
	b.ID = 12
	if exit, out, err := runJob(context.Background(), t, r, b); exit != 0 || out != "b\n" || err != nil {
		t.Fatalf("the second job: %d %q %v", exit, out, err)
	}
	if labelled(t, svc, a) == "" {
		t.Fatal("the second job removed the first job's container")
	}
	exit, err := r.Adopt(context.Background(), testHandle(r, a, log), notice)
	if b, _ := os.ReadFile(log.Name()); exit != 5 || err != nil || string(b) != "a1\n"+notice+"a2\n" {
		t.Errorf("adopted: exit %d, %v, log %q", exit, err, b)
	}
	// A removal can fail once here (Podman: "unlinkat .../shm: device or
	// resource busy"); jobq gc tries again, and so does the test.
	if err := r.Cleanup(context.Background(), testHandle(r, a, nil)); err != nil {
		if err := r.Cleanup(context.Background(), testHandle(r, a, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if c := labelled(t, svc, a); c != "" {
		t.Errorf("container left: %s", c)
	}
}

const notice = "jobq: worker restarted; output continues\n"

// The end of a k8s-file log, as conmon writes it: full (F) and partial (P)
// records, the first cut by the window, the last still being written.
func TestK8sTail(t *testing.T) {
	const ts = "2026-12-01T03:00:00.000000000+00:00"
	for _, tt := range []struct {
		name   string
		file   string
		window int64
		want   string
	}{
		{"full and partial", ts + " stdout F one\n" + ts + " stderr P tw\n" + ts + " stderr F o\n", 1 << 10, "one\ntwo\n"},
		{"spaces and bytes kept", ts + " stdout P a  b\r\x00\n", 1 << 10, "a  b\r\x00"},
		{"an empty line", ts + " stdout F \n", 1 << 10, "\n"},
		{"the first record cut", ts + " stdout F one\n" + ts + " stdout F two\n", int64(len(ts)) + 15, "two\n"},
		{"the last being written", ts + " stdout F one\n" + ts + " std", 1 << 10, "one\n"},
		{"empty", "", 1 << 10, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "ctr.log")
			os.WriteFile(p, []byte(tt.file), 0o600)
			f, _ := os.Open(p)
			defer f.Close()
			got, err := k8sTail(f, tt.window)
			if err != nil || string(got) != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// The attach socket, taken out of the runtime's poller, still reads what
// the service writes, to the end, and its reads block (no poller wakes).
func TestBlockingSocket(t *testing.T) {
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Write([]byte(frame(1, "out") + frame(2, "err")))
		c.Close()
	}()
	conn, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	f, err := blocking(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil || flags&unix.O_NONBLOCK != 0 {
		t.Errorf("flags %#o, %v: still non-blocking", flags, err)
	}
	var out bytes.Buffer
	if _, err := demux(&lazyReader{r: f}, 0, &out); err != nil || out.String() != "outerr" {
		t.Errorf("read %q, %v", out.String(), err)
	}
}
