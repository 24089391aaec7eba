package podman

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/jobq/jobq/internal/testenv"
)

// sshServer is an sshd stand-in: one user key, one host key, and the
// forwarding to unix sockets that Podman's ssh:// needs.
type sshServer struct {
	addr    string
	hostKey ssh.Signer
	ln      net.Listener
}

func newKey(t *testing.T) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return s, pem.EncodeToMemory(block)
}

func startSSHServer(t *testing.T, user ssh.PublicKey) *sshServer {
	t.Helper()
	hk, _ := newKey(t)
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) == string(user.Marshal()) {
			return nil, nil
		}
		return nil, fmt.Errorf("unknown key")
	}}
	cfg.AddHostKey(hk)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_, chans, reqs, err := ssh.NewServerConn(c, cfg)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				for nc := range chans {
					var p struct {
						Path      string
						Reserved0 string
						Reserved1 uint32
					}
					if nc.ChannelType() != "direct-streamlocal@openssh.com" || ssh.Unmarshal(nc.ExtraData(), &p) != nil {
						nc.Reject(ssh.UnknownChannelType, "no")
						continue
					}
					u, err := net.Dial("unix", p.Path)
					if err != nil {
						nc.Reject(ssh.ConnectionFailed, err.Error())
						continue
					}
					ch, creqs, err := nc.Accept()
					if err != nil {
						u.Close()
						continue
					}
					go ssh.DiscardRequests(creqs)
					go func() { io.Copy(ch, u); ch.Close() }()
					go func() { io.Copy(u, ch); u.(*net.UnixConn).CloseWrite() }()
				}
			}()
		}
	}()
	return &sshServer{addr: ln.Addr().String(), hostKey: hk, ln: ln}
}

// echoSocket is a unix socket that answers each line with "echo: LINE".
func echoSocket(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "podman.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s := bufio.NewScanner(c)
				for s.Scan() {
					fmt.Fprintf(c, "echo: %s\n", s.Text())
				}
			}()
		}
	}()
	return sock
}

func TestTunnel(t *testing.T) {
	userKey, userPEM := newKey(t)
	srv := startSSHServer(t, userKey.PublicKey())
	sock := echoSocket(t)
	dir := t.TempDir()
	identity := filepath.Join(dir, "id")
	os.WriteFile(identity, userPEM, 0o600)
	otherKey, otherPEM := newKey(t)
	_ = otherKey
	otherIdentity := filepath.Join(dir, "other")
	os.WriteFile(otherIdentity, otherPEM, 0o600)
	wrongHost, _ := newKey(t)
	host, port, _ := net.SplitHostPort(srv.addr)
	line := func(k ssh.PublicKey) string {
		return knownhosts.Line([]string{knownhosts.Normalize(srv.addr)}, k) + "\n"
	}
	uri := fmt.Sprintf("ssh://build@%s%s", srv.addr, sock)
	noenv := func(string) string { return "" }

	rows := []struct {
		name       string
		known      *string // known_hosts content; nil: no file
		uri        string
		identity   string
		wantErr    string // "": connects
		wantOneErr bool   // the error is exactly wantErr
	}{
		{"known host", ptr(line(srv.hostKey.PublicKey())), uri, identity, "", false},
		{"known among others", ptr("[10.0.0.1]:22 " + strings.TrimPrefix(line(wrongHost.PublicKey()), knownhosts.Normalize(srv.addr)+" ") + line(srv.hostKey.PublicKey())), uri, identity, "", false},
		{"unknown host", ptr("[10.0.0.1]:22 " + strings.TrimPrefix(line(wrongHost.PublicKey()), knownhosts.Normalize(srv.addr)+" ")), uri, identity,
			fmt.Sprintf("build host %s is not in KH; after checking its key, add it: ssh-keyscan -p %s %s >> KH", srv.addr, port, host), true},
		{"empty known_hosts", ptr(""), uri, identity,
			fmt.Sprintf("build host %s is not in KH; after checking its key, add it: ssh-keyscan -p %s %s >> KH", srv.addr, port, host), true},
		{"no known_hosts", nil, uri, identity, "KH does not exist; after checking the host's key, add it: ssh-keyscan", false},
		{"another key for the host", ptr(line(wrongHost.PublicKey())), uri, identity, "shows a host key other than the one in KH", false},
		{"another identity", ptr(line(srv.hostKey.PublicKey())), uri, otherIdentity, "unable to authenticate", false},
		{"no identity, no agent", ptr(line(srv.hostKey.PublicKey())), uri, "", "no identity", false},
		{"no socket path", ptr(line(srv.hostKey.PublicKey())), "ssh://build@" + srv.addr, identity, "names no socket path", false},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if row.known != nil {
				os.WriteFile(kh, []byte(*row.known), 0o600)
			}
			u, _ := url.Parse(row.uri)
			tun, err := dialTunnel(context.Background(), u, row.identity, kh, noenv)
			want := strings.ReplaceAll(row.wantErr, "KH", kh)
			switch {
			case row.wantErr == "" && err != nil:
				t.Fatalf("dial: %v", err)
			case row.wantErr != "" && err == nil:
				tun.Close()
				t.Fatalf("connected, want %q", want)
			case row.wantErr != "" && (row.wantOneErr && err.Error() != want || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n")):
				t.Errorf("error %q, want %q", err, want)
			}
			// known_hosts is never written, nor made.
			b, rerr := os.ReadFile(kh)
			if row.known == nil && rerr == nil || row.known != nil && string(b) != *row.known {
				t.Errorf("known_hosts changed: %q", b)
			}
			if err != nil {
				return
			}
			defer tun.Close()
			fi, err := os.Stat(tun.dir)
			if err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("socket directory: %v %v", fi.Mode(), err)
			}
			// Two connections through one tunnel.
			for i := range 2 {
				c, err := net.Dial("unix", tun.sock)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(c, "hello %d\n", i)
				got, err := bufio.NewReader(c).ReadString('\n')
				c.Close()
				if err != nil || got != fmt.Sprintf("echo: hello %d\n", i) {
					t.Errorf("through the tunnel: %q %v", got, err)
				}
			}
			if !tun.alive(5e9) {
				t.Error("not alive")
			}
			tun.Close()
			if _, err := os.Stat(tun.dir); !os.IsNotExist(err) {
				t.Errorf("socket directory left: %v", err)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// An identity with a passphrase cannot be used by a worker: said so.
func TestTunnelPassphraseIdentity(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	id := filepath.Join(t.TempDir(), "id")
	os.WriteFile(id, pem.EncodeToMemory(block), 0o600)
	_, err = sshAuth(id, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "protected by a passphrase") {
		t.Errorf("err %v", err)
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

// A worker killed with its tunnels open leaves their socket directories:
// the next tunnel removes those of dead workers, not of live ones.
func TestSweepTunnelDirs(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	var dirs []string
	for _, pid := range []int{dead, os.Getpid(), 1} {
		d, err := os.MkdirTemp("", fmt.Sprintf("jobq-ssh-%d-", pid))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		os.WriteFile(filepath.Join(d, "podman.sock"), nil, 0o600)
		dirs = append(dirs, d)
	}
	sweepTunnelDirs()
	for i, d := range dirs {
		_, err := os.Stat(d)
		if gone := os.IsNotExist(err); gone != (i == 0) {
			t.Errorf("%s: gone %v", d, gone)
		}
	}
}

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
	userKey, userPEM := newKey(t)
	srv := startSSHServer(t, userKey.PublicKey())
	sock := echoSocket(t)
	dir := t.TempDir()
	identity := filepath.Join(dir, "id")
	os.WriteFile(identity, userPEM, 0o600)
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(kh, []byte(knownhosts.Line([]string{knownhosts.Normalize(srv.addr)}, srv.hostKey.PublicKey())+"\n"), 0o600)
	silent, accepted := silentHost(t)
	noenv := func(string) string { return "" }
	good, _ := url.Parse(fmt.Sprintf("ssh://build@%s%s", srv.addr, sock))
	hung, _ := url.Parse(fmt.Sprintf("ssh://build@%s%s", silent, sock))

	ts := &tunnels{}
	defer ts.close()
	type result struct {
		t   *tunnel
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
	if tun == nil || !tun.alive(5e9) {
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
