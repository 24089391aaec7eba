package podman

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeConmon listens at dir/attach as conmon does (SOCK_SEQPACKET, bound
// through /proc/self/fd: the path may be longer than a socket address can
// be) and sends packets to the first client, then closes.
func fakeConmon(t *testing.T, dir string, packets [][]byte) {
	t.Helper()
	d, err := unix.Open(dir, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: fmt.Sprintf("/proc/self/fd/%d/attach", d), Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false) // the name was relative to d
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		for _, p := range packets {
			if _, err := c.Write(p); err != nil {
				return
			}
		}
	}()
}

func packet(stream byte, payload string) []byte { return append([]byte{stream}, payload...) }

// conmon's packets become the log's bytes, stdout and stderr in the order
// sent, bytes as they are; a packet that is not output, or larger than
// conmon sends, is an error, not a silent loss.
func TestConmonSocket(t *testing.T) {
	binary := string(bytes.Repeat([]byte{0, 1, '\r', 0xff, '\n'}, 8192/5))
	for _, tt := range []struct {
		name    string
		packets [][]byte
		want    string
		wantErr string
	}{
		{"nothing", nil, "", ""},
		{"both streams, in order, no final newline", [][]byte{packet(2, "out\n"), packet(3, "err\r"), packet(2, binary), packet(3, "last")}, "out\nerr\r" + binary + "last", ""},
		{"stdin's stream", [][]byte{packet(2, "a"), packet(1, "b")}, "a", "a packet of stream 1"},
		{"an empty packet ends it", [][]byte{packet(2, "a"), {}, packet(2, "b")}, "a", ""},
		{"a packet too large", [][]byte{packet(2, "a"), packet(2, strings.Repeat("x", streamBuffer))}, "a", "a packet of 65536 bytes or more"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Longer than a socket address can be, as a container's
			// bundle directory is.
			dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			fakeConmon(t, dir, tt.packets)
			s, err := dialConmon(filepath.Join(dir, "attach"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var out bytes.Buffer
			err = s.copyTo(&out)
			if out.String() != tt.want || (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("copied %q, %v; want %q, error %q", out.String(), err, tt.want, tt.wantErr)
			}
		})
	}
}

// A local service whose containers' bundles are not on this host (its
// socket mounted from elsewhere) still gives the output: through its
// attach endpoint. Where conmon's socket is here, the endpoint is not
// asked. A stand-in service answers init, inspect and attach.
func TestOpenStreamFallsBack(t *testing.T) {
	for _, tt := range []struct {
		name     string
		here     bool // conmon's socket is in the bundle directory
		want     string
		attaches int32
	}{
		{"conmon's socket here", true, "from conmon", 0},
		{"no socket here", false, "from the service", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bundle := filepath.Join(t.TempDir(), "userdata")
			os.Mkdir(bundle, 0o700)
			if tt.here {
				fakeConmon(t, bundle, [][]byte{packet(2, "from "), packet(3, "conmon")})
			}
			var attaches atomic.Int32
			// The output comes after the start, as a container's does.
			started := make(chan struct{})
			conn := fakeService(t, func(w http.ResponseWriter, req *http.Request) {
				switch {
				case strings.HasSuffix(req.URL.Path, "/init"):
					w.WriteHeader(http.StatusNoContent)
				case strings.HasSuffix(req.URL.Path, "/json"):
					fmt.Fprintf(w, `{"Id":"c0ffee","StaticDir":%q}`, bundle)
				case strings.HasSuffix(req.URL.Path, "/attach"):
					attaches.Add(1)
					c, rw, err := w.(http.Hijacker).Hijack()
					if err != nil {
						return
					}
					defer c.Close()
					rw.WriteString("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
					rw.Flush()
					<-started
					rw.WriteString(frame(1, "from the ") + frame(2, "service"))
					rw.Flush()
				}
			})
			copyTo, err := openStream(conn, "c0ffee", true)
			if err != nil {
				t.Fatal(err)
			}
			close(started)
			var out bytes.Buffer
			if err := copyTo(&out); err != nil || out.String() != tt.want || attaches.Load() != tt.attaches {
				t.Errorf("read %q, %v, after %d attaches; want %q after %d", out.String(), err, attaches.Load(), tt.want, tt.attaches)
			}
		})
	}
}

// The socket is read with blocking reads, outside the runtime's poller
// (where each of conmon's packets would wake a thread).
func TestConmonSocketBlocks(t *testing.T) {
	dir := t.TempDir()
	fakeConmon(t, dir, nil)
	s, err := dialConmon(filepath.Join(dir, "attach"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	flags, err := unix.FcntlInt(uintptr(s.fd), unix.F_GETFL, 0)
	if err != nil || flags&unix.O_NONBLOCK != 0 {
		t.Errorf("flags %#o, %v: non-blocking", flags, err)
	}
}
