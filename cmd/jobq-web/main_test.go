package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/web"
)

// gitolite gets HOME, PATH, USER and GL_BINDIR, and nothing a CGI request
// shapes: a visitor's headers (HTTP_*), REMOTE_USER, the query.
func TestGitoliteEnv(t *testing.T) {
	env := []string{"HOME=/home/git", "PATH=/bin", "HTTP_X=1", "REMOTE_USER=alice", "QUERY_STRING=a", "GL_BYPASS_ACCESS_CHECKS=1",
		"HTTP_GL_USER=root", "GL_BINDIR=/usr/share/gitolite3", "USER=git", "GL_USER=mallory"}
	got := strings.Join(gitoliteEnv(env), " ")
	if got != "HOME=/home/git PATH=/bin USER=git GL_BINDIR=/usr/share/gitolite3" {
		t.Errorf("gitolite's environment: %s", got)
	}
}

// A CGI program from fcgiwrap may have no HOME or PATH: the account's home
// and the usual PATH stand in; a cache directory needs an absolute home.
func TestFullEnv(t *testing.T) {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err) // the account has no entry: a defect of the machine, never a skip
	}
	env := fullEnv(nil)
	if lookup(env, "HOME") != u.HomeDir || lookup(env, "PATH") == "" {
		t.Errorf("fullEnv(nil) = %v", env)
	}
	if got := lookup(fullEnv([]string{"HOME=/h", "PATH=/p"}), "HOME"); got != "/h" {
		t.Errorf("HOME %q", got)
	}
	for env, want := range map[string]string{
		"HOME=/h":                   "/h/.cache/jobq-web/access",
		"HOME=/h XDG_CACHE_HOME=/c": "/c/jobq-web/access",
		"HOME=rel":                  "",
		"HOME=/h XDG_CACHE_HOME=c":  "/h/.cache/jobq-web/access",
	} {
		if got := cacheDir(strings.Fields(env)); got != want {
			t.Errorf("cacheDir(%s) = %q, want %q", env, got, want)
		}
	}
}

func TestUsage(t *testing.T) {
	t.Setenv("GATEWAY_INTERFACE", "")
	for _, args := range [][]string{{}, {"extra"}, {"--listen", "127.0.0.1:0", "--base", "jobq"}, {"--listen", "127.0.0.1:0", "--base", "/jobq/"}, {"--bogus"},
		{"--listen", "127.0.0.1:0", "--max-followers-per-client", "0"}, {"--listen", "127.0.0.1:0", "--max-followers", "-1"},
		{"--listen", "127.0.0.1:0", "--keep-alive", "0s"}, {"--listen", "127.0.0.1:0", "--keep-alive", "soon"}, {"--listen", "127.0.0.1:0", "--access-ttl", "-1s"}} {
		var stderr bytes.Buffer
		err := run(context.Background(), args, &stderr)
		if code := cli.Exit(io.Discard, "jobq-web", err); code != cli.Usage {
			t.Errorf("jobq-web %q: %v (exit %d), want a usage error", args, err, code)
		}
	}
}

// The listener closes a connection that waits for its next request
// longer than the idle timeout: without one, every idle keep-alive
// connection stays open, and a client can hold any number of them.
// The connections are counted on the server's side, in the kernel's table.
func TestListenerClosesIdleConnections(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Outside the base, the view answers 404 without its store.
	go func() { done <- serve(ctx, &web.Server{Base: "/jobq"}, l, 500*time.Millisecond) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	const clients = 20
	var conns []net.Conn
	for range clients {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// One request, and the connection kept for the next one.
		fmt.Fprintf(c, "GET /elsewhere HTTP/1.1\r\nHost: jobq\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || resp.Close {
			t.Fatalf("GET: %d, close %v", resp.StatusCode, resp.Close)
		}
		conns = append(conns, c)
	}
	if n := serverConns(t, port); n != clients {
		t.Fatalf("%d connections on the server's side, want %d", n, clients)
	}
	start := time.Now()
	for serverConns(t, port) > 0 {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("%d idle connections still open 20s later (idle timeout 500ms)", serverConns(t, port))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the idle connections were closed %v after the last request", time.Since(start).Round(time.Millisecond))
	// The clients see their connections closed.
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("a client's connection: %d, %v, want EOF", n, err)
		}
	}
}

// serverConns counts the established TCP connections whose local end is
// 127.0.0.1:port: the server's ends (a client's end has another port).
func serverConns(t *testing.T, port int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf("0100007F:%04X", port) // little-endian address, then the port
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		// sl local_address rem_address st ...; 01 is ESTABLISHED.
		if f := strings.Fields(line); len(f) >= 4 && f[1] == local && f[3] == "01" {
			n++
		}
	}
	return n
}
