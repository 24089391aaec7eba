package sshtunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
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

const (
	// DialTimeout bounds a Dial: the TCP connection and the ssh handshake.
	DialTimeout = 10 * time.Second
	// keepaliveEvery and keepaliveMissed: a host that loses power or its
	// network leaves the TCP connection silent; without keepalives a job's
	// attach and wait would hang until conmon's own timeout.
	keepaliveEvery  = 10 * time.Second
	keepaliveMissed = 3
)

// Tunnel is one ssh connection to a build host and the local socket that
// forwards to a unix socket on that host.
type Tunnel struct {
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

// ErrNoIdentity is Dial's error when it has neither an identity file nor
// an agent: the caller knows where its user names one.
var ErrNoIdentity = errors.New("no identity: name one, or run an ssh-agent")

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
	return nil, ErrNoIdentity
}

// Dial connects to the unix socket at u (ssh://user@host[:port]/socket),
// checking the host key against knownHosts, and serves a local socket that
// forwards to it. The key is identity's, or, without one, the keys of the
// agent at getenv("SSH_AUTH_SOCK").
func Dial(ctx context.Context, u *url.URL, identity, knownHosts string, getenv func(string) string) (*Tunnel, error) {
	if u.Path == "" || u.Path == "/" {
		return nil, fmt.Errorf("%s names no socket path on the host", u.Redacted())
	}
	user := u.User.Username()
	if user == "" {
		return nil, fmt.Errorf("%s names no user", u.Redacted())
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
	cfg := &ssh.ClientConfig{User: user, Auth: auth, HostKeyCallback: check, Timeout: DialTimeout}
	// Offer only the key types known_hosts has for this host: otherwise
	// the server may pick a type the file lacks and a known host looks
	// unknown.
	if algos := knownAlgorithms(check, host); len(algos) > 0 {
		cfg.HostKeyAlgorithms = algos
	}
	dctx, cancel := context.WithTimeout(ctx, DialTimeout)
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
	t := &Tunnel{client: client, dir: dir, sock: filepath.Join(dir, "tunnel.sock"), done: make(chan struct{})}
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

// URI is the local socket's, as unix:///path: what a client connects to.
func (t *Tunnel) URI() string { return "unix://" + t.sock }

// Done is closed when the ssh connection has ended: the tunnel is of no
// more use.
func (t *Tunnel) Done() <-chan struct{} { return t.done }

// Alive reports whether the ssh connection still answers, within d.
func (t *Tunnel) Alive(d time.Duration) bool {
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

func (t *Tunnel) keepalive() {
	tick := time.NewTicker(keepaliveEvery)
	defer tick.Stop()
	missed := 0
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
		}
		if t.Alive(keepaliveEvery) {
			missed = 0
		} else if missed++; missed >= keepaliveMissed {
			t.Close()
			return
		}
	}
}

// serve forwards each connection to the socket over ssh.
func (t *Tunnel) serve(remote string) {
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
			// Both ways, or the tunnel's end: a client's connection that
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
func (t *Tunnel) Close() error {
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

// owner is the uid that owns fi's file.
func owner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
