package podman

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// jobq makes the ssh connection to a remote Podman service itself: the
// bindings' own ssh client appends an unknown host's key to
// ~/.ssh/known_hosts and connects (trust on first use), has no keepalive
// and no dial timeout. A tunnel checks the host key strictly against a
// known_hosts file it never writes, and serves the bindings a unix socket
// in a private directory that forwards each connection over its one ssh
// connection: every connection of a job, the attach one included, goes to
// the same destination with the same identity.

const (
	sshDialTimeout = 10 * time.Second
	// keepaliveEvery and keepaliveMissed: a host that loses power or its
	// network leaves the TCP connection silent; without keepalives a job's
	// attach and wait would hang until conmon's own timeout.
	keepaliveEvery  = 10 * time.Second
	keepaliveMissed = 3
)

// tunnel is one ssh connection to a build host and the local socket that
// forwards to its Podman socket.
type tunnel struct {
	client *ssh.Client
	dir    string // private directory of the socket
	sock   string
	ln     net.Listener
	done   chan struct{} // closed when the ssh connection ended
	once   sync.Once
}

// hostKeyError is the one line jobq says for a host that is not in the
// known_hosts file.
func hostKeyError(host, file string, err error) error {
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil
	}
	h, port, _ := net.SplitHostPort(host)
	scan := "ssh-keyscan " + h
	if port != "22" {
		scan = "ssh-keyscan -p " + port + " " + h
	}
	if len(ke.Want) == 0 {
		return fmt.Errorf("build host %s is not in %s; after checking its key, add it: %s >> %s", host, file, scan, file)
	}
	return fmt.Errorf("build host %s shows a host key other than the one in %s (%s:%d): refused; if the host was reinstalled, check its new key and replace the line", host, file, ke.Want[0].Filename, ke.Want[0].Line)
}

// sshAuth is the identity file's key, or, without one, the agent's keys.
func sshAuth(identity string, getenv func(string) string) ([]ssh.AuthMethod, error) {
	if identity != "" {
		b, err := os.ReadFile(identity)
		if err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(b)
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return nil, fmt.Errorf("identity %s is protected by a passphrase: a worker cannot type it; give it a key of its own, or leave identity empty to use ssh-agent (SSH_AUTH_SOCK)", identity)
		}
		if err != nil {
			return nil, fmt.Errorf("identity %s: %w", identity, err)
		}
		return []ssh.AuthMethod{ssh.PublicKeys(signer)}, nil
	}
	if sock := getenv("SSH_AUTH_SOCK"); sock != "" {
		ac, err := net.Dial("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("ssh-agent at SSH_AUTH_SOCK: %w", err)
		}
		return []ssh.AuthMethod{ssh.PublicKeysCallback(agent.NewClient(ac).Signers)}, nil
	}
	return nil, errors.New("no identity: name one for the connection (identity in containers.conf, podman system connection add --identity), or run an ssh-agent")
}

// dialTunnel connects to the Podman service at u (ssh://user@host[:port]/socket),
// checking the host key against knownHosts.
func dialTunnel(ctx context.Context, u *url.URL, identity, knownHosts string, getenv func(string) string) (*tunnel, error) {
	if u.Path == "" || u.Path == "/" {
		return nil, fmt.Errorf("%s names no socket path: Podman's socket on the host, as in ssh://user@host/run/user/UID/podman/podman.sock", redact(u))
	}
	user := u.User.Username()
	if user == "" {
		return nil, fmt.Errorf("%s names no user", redact(u))
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "22")
	}
	check, err := knownhosts.New(knownHosts)
	if errors.Is(err, os.ErrNotExist) {
		h, port, _ := net.SplitHostPort(host)
		return nil, fmt.Errorf("build host %s: %s does not exist; after checking the host's key, add it: ssh-keyscan -p %s %s >> %s", host, knownHosts, port, h, knownHosts)
	}
	if err != nil {
		return nil, fmt.Errorf("known hosts: %w", err)
	}
	auth, err := sshAuth(identity, getenv)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{User: user, Auth: auth, HostKeyCallback: check, Timeout: sshDialTimeout}
	// Offer only the key types known_hosts has for this host: otherwise
	// the server may pick a type the file lacks and a known host looks
	// unknown.
	if algos := knownAlgorithms(check, host); len(algos) > 0 {
		cfg.HostKeyAlgorithms = algos
	}
	dctx, cancel := context.WithTimeout(ctx, sshDialTimeout)
	defer cancel()
	tcp, err := (&net.Dialer{KeepAlive: keepaliveEvery}).DialContext(dctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("build host %s: %w", host, err)
	}
	// The handshake under the same deadline: a port that accepts and says
	// nothing must not hang the worker.
	if dl, ok := dctx.Deadline(); ok {
		tcp.SetDeadline(dl)
	}
	c, chans, reqs, err := ssh.NewClientConn(tcp, host, cfg)
	if err != nil {
		tcp.Close()
		if kerr := hostKeyError(host, knownHosts, err); kerr != nil {
			return nil, kerr
		}
		return nil, fmt.Errorf("build host %s: %w", host, err)
	}
	tcp.SetDeadline(time.Time{})
	client := ssh.NewClient(c, chans, reqs)
	sweepTunnelDirs()
	// 0700, the account's; named with the pid, so that a later worker can
	// remove it if this one dies without closing it.
	dir, err := os.MkdirTemp("", fmt.Sprintf("jobq-ssh-%d-", os.Getpid()))
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	t := &tunnel{client: client, dir: dir, sock: filepath.Join(dir, "podman.sock"), done: make(chan struct{})}
	if t.ln, err = net.Listen("unix", t.sock); err != nil {
		t.Close()
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	go func() {
		client.Wait()
		t.Close()
	}()
	go t.keepalive()
	go t.serve(u.Path)
	return t, nil
}

// knownAlgorithms lists the host key algorithms known_hosts has for host,
// found by offering the callback a key of no known type.
func knownAlgorithms(check ssh.HostKeyCallback, host string) []string {
	addr, err := net.ResolveTCPAddr("tcp", host)
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if err := check(host, addr, probeKey{}); !errors.As(err, &ke) {
		return nil
	}
	var algos []string
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			algos = append(algos, t)
		}
	}
	return algos
}

// probeKey is a public key of a type no known_hosts line has.
type probeKey struct{}

func (probeKey) Type() string                        { return "jobq-probe" }
func (probeKey) Marshal() []byte                     { return []byte("jobq-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe") }

// uri is what the bindings connect to.
func (t *tunnel) uri() string { return "unix://" + t.sock }

// alive reports whether the ssh connection still answers, within d.
func (t *tunnel) alive(d time.Duration) bool {
	select {
	case <-t.done:
		return false
	default:
	}
	ch := make(chan error, 1)
	go func() {
		_, _, err := t.client.SendRequest("keepalive@openssh.com", true, nil)
		ch <- err
	}()
	select {
	case err := <-ch:
		return err == nil
	case <-time.After(d):
		return false
	}
}

func (t *tunnel) keepalive() {
	tick := time.NewTicker(keepaliveEvery)
	defer tick.Stop()
	missed := 0
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
		}
		if t.alive(keepaliveEvery) {
			missed = 0
		} else if missed++; missed >= keepaliveMissed {
			t.Close()
			return
		}
	}
}

// serve forwards each connection to the socket over ssh.
func (t *tunnel) serve(remote string) {
	for {
		local, err := t.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer local.Close()
			r, err := t.client.Dial("unix", remote)
			if err != nil {
				return
			}
			defer r.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(r, local); r.(interface{ CloseWrite() error }).CloseWrite(); done <- struct{}{} }()
			go func() { io.Copy(local, r); local.(*net.UnixConn).CloseWrite(); done <- struct{}{} }()
			// Both ways, or the tunnel's end: a bindings connection that
			// is dropped unread ends with the ssh connection.
			for range 2 {
				select {
				case <-done:
				case <-t.done:
					return
				}
			}
		}()
	}
}

// Close ends the ssh connection and removes the socket.
func (t *tunnel) Close() error {
	t.once.Do(func() {
		close(t.done)
		if t.ln != nil {
			t.ln.Close()
		}
		t.client.Close()
		os.RemoveAll(t.dir)
	})
	return nil
}

// sweepTunnelDirs removes the socket directories of the account's workers
// that died without closing their tunnels (SIGKILL).
func sweepTunnelDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "jobq-ssh-*-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.Split(filepath.Base(d), "-")[2])
		fi, serr := os.Lstat(d)
		if err != nil || serr != nil || !fi.IsDir() || owner(fi) != os.Geteuid() || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}

// redact is u without a password, for messages.
func redact(u *url.URL) string { return u.Redacted() }

// expandHome expands a leading ~/ in path: containers/common leaves it.
func expandHome(path string) string {
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return path
}
