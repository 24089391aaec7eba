package sshtunnel

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/jobq/jobq/internal/testenv"
)

func TestTunnel(t *testing.T) {
	srv := testenv.StartSSHServer(t)
	sock := testenv.EchoSocket(t)
	identity := srv.Identity
	_, otherPEM := testenv.SSHKey(t)
	dir := t.TempDir()
	otherIdentity := filepath.Join(dir, "other")
	os.WriteFile(otherIdentity, otherPEM, 0o600)
	wrongHost, _ := testenv.SSHKey(t)
	host, port, _ := net.SplitHostPort(srv.Addr)
	line := func(k ssh.PublicKey) string {
		return knownhosts.Line([]string{knownhosts.Normalize(srv.Addr)}, k) + "\n"
	}
	uri := fmt.Sprintf("ssh://build@%s%s", srv.Addr, sock)
	noenv := func(string) string { return "" }

	rows := []struct {
		name       string
		known      *string // known_hosts content; nil: no file
		uri        string
		identity   string
		wantErr    string // "": connects
		wantOneErr bool   // the error is exactly wantErr
	}{
		{"known host", ptr(line(srv.HostKey.PublicKey())), uri, identity, "", false},
		{"known among others", ptr("[10.0.0.1]:22 " + strings.TrimPrefix(line(wrongHost.PublicKey()), knownhosts.Normalize(srv.Addr)+" ") + line(srv.HostKey.PublicKey())), uri, identity, "", false},
		{"unknown host", ptr("[10.0.0.1]:22 " + strings.TrimPrefix(line(wrongHost.PublicKey()), knownhosts.Normalize(srv.Addr)+" ")), uri, identity,
			fmt.Sprintf("build host %s is not in KH; after checking its key, add it: ssh-keyscan -p %s %s >> KH", srv.Addr, port, host), true},
		{"empty known_hosts", ptr(""), uri, identity,
			fmt.Sprintf("build host %s is not in KH; after checking its key, add it: ssh-keyscan -p %s %s >> KH", srv.Addr, port, host), true},
		{"no known_hosts", nil, uri, identity, "KH does not exist; after checking the host's key, add it: ssh-keyscan", false},
		{"another key for the host", ptr(line(wrongHost.PublicKey())), uri, identity, "shows a host key other than the one in KH", false},
		{"another identity", ptr(line(srv.HostKey.PublicKey())), uri, otherIdentity, "unable to authenticate", false},
		{"no identity, no agent", ptr(line(srv.HostKey.PublicKey())), uri, "", "no identity", false},
		{"no socket path", ptr(line(srv.HostKey.PublicKey())), "ssh://build@" + srv.Addr, identity, "names no socket path", false},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if row.known != nil {
				os.WriteFile(kh, []byte(*row.known), 0o600)
			}
			u, _ := url.Parse(row.uri)
			tun, err := Dial(context.Background(), u, row.identity, kh, noenv)
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
			if !tun.Alive(5e9) {
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
		os.WriteFile(filepath.Join(d, "tunnel.sock"), nil, 0o600)
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
