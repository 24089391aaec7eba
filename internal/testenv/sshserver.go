package testenv

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHServer is an sshd stand-in for unit tests: one user key, one host
// key, and the forwarding to unix sockets that a tunnel to a socket needs.
type SSHServer struct {
	Addr     string // host:port
	HostKey  ssh.Signer
	Identity string // the user key's private key file
}

// SSHKey makes an ed25519 key: its signer and its private key file.
func SSHKey(t testing.TB) (ssh.Signer, []byte) {
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

// StartSSHServer serves ssh on 127.0.0.1, until the test ends, to a user
// key of its own, whose private key file is Identity.
func StartSSHServer(t testing.TB) *SSHServer {
	t.Helper()
	user, userPEM := SSHKey(t)
	identity := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(identity, userPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	hk, _ := SSHKey(t)
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) == string(user.PublicKey().Marshal()) {
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
	go acceptEach(ln, func(c net.Conn) {
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
	})
	return &SSHServer{Addr: ln.Addr().String(), HostKey: hk, Identity: identity}
}

// acceptEach serves each connection ln accepts with serve, in a goroutine
// of its own, until ln is closed.
func acceptEach(ln net.Listener, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go serve(c)
	}
}

// EchoSocket is a unix socket that answers each line with "echo: LINE".
func EchoSocket(t testing.TB) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "echo.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go acceptEach(ln, func(c net.Conn) {
		defer c.Close()
		s := bufio.NewScanner(c)
		for s.Scan() {
			fmt.Fprintf(c, "echo: %s\n", s.Text())
		}
	})
	return sock
}

// KnownHosts is the known_hosts line, newline included, that names s with
// its host key.
func (s *SSHServer) KnownHosts() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey.PublicKey()) + "\n"
}
