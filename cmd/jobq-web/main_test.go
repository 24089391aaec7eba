package main

import (
	"bytes"
	"context"
	"io"
	"os/user"
	"strings"
	"testing"

	"github.com/jobq/jobq/internal/cli"
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
	for _, args := range [][]string{{}, {"extra"}, {"--listen", "127.0.0.1:0", "--base", "jobq"}, {"--listen", "127.0.0.1:0", "--base", "/jobq/"}, {"--bogus"}} {
		var stderr bytes.Buffer
		err := run(context.Background(), args, &stderr)
		if code := cli.Exit(io.Discard, "jobq-web", err); code != cli.Usage {
			t.Errorf("jobq-web %q: %v (exit %d), want a usage error", args, err, code)
		}
	}
}
