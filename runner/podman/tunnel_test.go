package podman

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/sshtunnel"
	"github.com/jobq/jobq/internal/testenv"
)

// silentHost is a TCP port that accepts connections and says nothing, as
// a host whose sshd hangs; accepted receives each connection.
func silentHost(t *testing.T) (addr string, accepted chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return ln.Addr().String(), accepted
}

// A host whose ssh handshake hangs does not delay the tunnels to other
// hosts (the cache's lock was held across the dial, up to 10 s), and
// callers for the same host share one dial.
func TestTunnelsSilentHost(t *testing.T) {
	srv := testenv.StartSSHServer(t)
	sock := testenv.EchoSocket(t)
	identity := srv.Identity
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte(srv.KnownHosts()), 0o600)
	silent, accepted := silentHost(t)
	noenv := func(string) string { return "" }
	good, _ := url.Parse(fmt.Sprintf("ssh://build@%s%s", srv.Addr, sock))
	hung, _ := url.Parse(fmt.Sprintf("ssh://build@%s%s", silent, sock))

	ts := &tunnels{}
	defer ts.close()
	type result struct {
		t   *sshtunnel.Tunnel
		err error
	}
	// Two callers for the silent host: the first one's job ends while it
	// waits.
	first, stop := context.WithCancel(context.Background())
	defer stop()
	firstDone, hungDone := make(chan result, 1), make(chan result, 1)
	go func() {
		t, err := ts.get(first, hung, identity, kh, noenv)
		firstDone <- result{t, err}
	}()
	conn := <-accepted // a dial to the silent host is under way
	go func() {
		t, err := ts.get(context.Background(), hung, identity, kh, noenv)
		hungDone <- result{t, err}
	}()
	testenv.WaitUntil(t, "the second caller waits for that dial", time.Minute, func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		d := ts.dialing[hung.String()+"\x00"+identity+"\x00"+kh]
		return d != nil && d.waiters == 1
	})

	tun, err := ts.get(context.Background(), good, identity, kh, noenv)
	if err != nil {
		t.Fatalf("the other host: %v", err)
	}
	if tun == nil || !tun.Alive(5e9) {
		t.Error("the other host's tunnel is not alive")
	}
	select {
	case r := <-hungDone:
		t.Fatalf("the other host's tunnel came only after the silent host's dial ended (%v)", r.err)
	default:
	}

	// The first caller stops waiting; the dial goes on for the other.
	stop()
	if r := <-firstDone; !errors.Is(r.err, context.Canceled) {
		t.Errorf("the cancelled caller: %v", r.err)
	}
	select {
	case r := <-hungDone:
		t.Fatalf("the dial ended with its first caller: %v", r.err)
	default:
	}
	conn.Close() // the silent host hangs up: the other caller gets the dial's own error
	if r := <-hungDone; r.err == nil || errors.Is(r.err, context.Canceled) {
		t.Errorf("the silent host's other caller: %v", r.err)
	}
	select {
	case c := <-accepted:
		c.Close()
		t.Error("two dials to the silent host at once, want one shared")
	default:
	}
}

// containers/common leaves ~ in identity; jobq expands it.
func TestExpandHome(t *testing.T) {
	t.Setenv("HOME", "/home/git")
	for in, want := range map[string]string{"~/.ssh/id": "/home/git/.ssh/id", "/abs/id": "/abs/id", "~other/id": "~other/id", "": ""} {
		if got := expandHome(in); got != want {
			t.Errorf("expandHome(%q) = %q, want %q", in, got, want)
		}
	}
}

// What the tunnel leaves to its caller is said in Podman's terms: where
// the socket and the identity are named.
func TestDialTunnelSaysWhereToLook(t *testing.T) {
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, nil, 0o600)
	noenv := func(string) string { return "" }
	for _, row := range []struct{ uri, identity, want string }{
		{"ssh://build:secret@builder.example:2222", "",
			"ssh://build:xxxxx@builder.example:2222 names no socket path: Podman's socket on the host, as in ssh://user@host/run/user/UID/podman/podman.sock"},
		{"ssh://build@builder.example/run/user/1000/podman/podman.sock", "",
			"no identity: name one for the connection (identity in containers.conf, podman system connection add --identity), or run an ssh-agent"},
	} {
		u, _ := url.Parse(row.uri)
		tun, err := dialTunnel(context.Background(), u, row.identity, kh, noenv)
		if err == nil {
			tun.Close()
			t.Fatalf("%s: connected", row.uri)
		}
		if err.Error() != row.want {
			t.Errorf("%s: error %q, want %q", row.uri, err, row.want)
		}
	}
}
