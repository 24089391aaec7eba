package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/internal/testenv"
	"github.com/jobq/jobq/queue"
)

func TestMetricsAddress(t *testing.T) {
	for in, want := range map[string]string{
		"9469": "127.0.0.1:9469", ":9469": "127.0.0.1:9469", "127.0.0.1:9469": "127.0.0.1:9469",
		"0.0.0.0:9469": "0.0.0.0:9469", "0": "127.0.0.1:0", ":0": "127.0.0.1:0", "[::1]:9469": "[::1]:9469", "[::]:9469": "[::]:9469", "10.0.0.5:80": "10.0.0.5:80",
	} {
		if got, err := metricsAddress(in); err != nil || got != want {
			t.Errorf("metricsAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "abc", "1.2.3.4", "99999", "host:", "-1", "::1", "a b:1", strings.Repeat("9", 300)} {
		if got, err := metricsAddress(bad); err == nil {
			t.Errorf("metricsAddress(%q) = %q, want a usage error", bad, got)
		}
	}
}

func TestMetricsUsage(t *testing.T) {
	t.Setenv("JOBQ_HOME", t.TempDir())
	for _, tt := range []struct {
		cgi  string
		args []string
	}{
		{"CGI/1.1", []string{"--metrics-listen", "9469"}},
		{"", []string{"--listen", "127.0.0.1:0", "--metrics-repo-labels"}},
		{"", []string{"--metrics-listen", "nonsense"}},
		{"", []string{"--metrics-listen", "127.0.0.1:x"}},
	} {
		t.Setenv("GATEWAY_INTERFACE", tt.cgi)
		err := run(context.Background(), tt.args, io.Discard)
		if code := cli.Exit(io.Discard, "jobq-web", err); code != cli.Usage {
			t.Errorf("jobq-web %q (CGI %q): %v (exit %d), want a usage error", tt.args, tt.cgi, err, code)
		}
	}
}

// freePort is a TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// listening reports the local address (as /proc/net/tcp writes it) of
// the socket listening on port.
func listening(t *testing.T, port int) []string {
	t.Helper()
	var addrs []string
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 3 && f[3] == "0A" && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) {
				addrs = append(addrs, f[1])
			}
		}
	}
	return addrs
}

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// jobq-web --listen A --metrics-listen PORT: the metrics on 127.0.0.1:PORT
// only, at /metrics only; the view's listener has none, and neither has
// a view under CGI (the same handler).
func TestMetricsListener(t *testing.T) {
	home := t.TempDir()
	s, err := queue.Open(home)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(&queue.Job{Repo: "private-repo", Queue: "q", Ref: "refs/heads/main", Options: queue.Options{Command: "x", Timeout: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	// A job whose notifications are not all delivered (the notify
	// package's index): the gauge is wired to it.
	if err := os.MkdirAll(s.NotifyIndex(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.NotifyIndex(), queue.NotifyEntry("private-repo", 0)), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOBQ_HOME", home)
	t.Setenv("GATEWAY_INTERFACE", "")
	for _, labels := range []bool{false, true} {
		view, mp := freePort(t), freePort(t)
		args := []string{"--listen", fmt.Sprintf("127.0.0.1:%d", view), "--metrics-listen", strconv.Itoa(mp)}
		if labels {
			args = append(args, "--metrics-repo-labels")
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		var stderr bytes.Buffer
		go func() { done <- run(ctx, args, &stderr) }()
		metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", mp)
		testenv.WaitUntil(t, "jobq-web listens", 10*time.Second, func() bool {
			for _, port := range []int{view, mp} {
				c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					return false
				}
				c.Close()
			}
			return true
		})
		code, body := get(t, "GET", metricsURL)
		var p expfmt.TextParser
		fams, err := p.TextToMetricFamilies(strings.NewReader(body))
		if code != 200 || err != nil || fams["jobq_jobs"] == nil {
			t.Fatalf("GET %s: %d %v\n%s", metricsURL, code, err, body)
		}
		if !strings.Contains(body, "\njobq_notifications_pending 1\n") {
			t.Errorf("no jobq_notifications_pending 1 in\n%s", body)
		}
		if named := strings.Contains(body, `repo="private-repo"`); named != labels || !labels && strings.Contains(body, "private-repo") {
			t.Errorf("--metrics-repo-labels %v: the repository is named: %v", labels, named)
		}
		for _, tt := range []struct{ method, url string }{
			{"GET", fmt.Sprintf("http://127.0.0.1:%d/metrics", view)},
			{"GET", fmt.Sprintf("http://127.0.0.1:%d/", mp)},
			{"GET", fmt.Sprintf("http://127.0.0.1:%d/private-repo", mp)},
		} {
			if code, body := get(t, tt.method, tt.url); code != 404 && code != 301 || strings.Contains(body, "jobq_jobs") {
				t.Errorf("%s %s: %d\n%.300s", tt.method, tt.url, code, body)
			}
		}
		if code, _ := get(t, "POST", metricsURL); code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d", metricsURL, code)
		}
		if addrs := listening(t, mp); len(addrs) != 1 || !strings.HasPrefix(addrs[0], "0100007F:") {
			t.Errorf("the metrics listen on %v, want 127.0.0.1 only", addrs)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("jobq-web: %v\n%s", err, stderr.String())
		}
	}
}
