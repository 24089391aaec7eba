// Package remote tests jobq with remote build hosts: Podman
// services reached over ssh://, each a container on this machine with its
// own sshd, its own rootless Podman and its own storage.
package remote

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

// env is the hosting account (the git server's side, the build hosts'
// client), shared by the package's tests.
var env *testenv.Env

func TestMain(m *testing.M) {
	if miss := testenv.Missing(); len(miss) > 0 {
		if os.Getenv("CI") != "" {
			fmt.Fprintf(os.Stderr, "remote: FAIL: missing %s (CI must install them)\n", strings.Join(miss, ", "))
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "remote: not run: missing %s; run as root after scripts/setup\n", strings.Join(miss, ", "))
		os.Exit(0)
	}
	// An account of this package's own: go test runs the e2e packages at
	// once, and each one's set-up kills its account's processes.
	account := os.Getenv("JOBQ_TEST_ACCOUNT")
	if account == "" {
		account = "jobq-test"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	var err error
	env, err = testenv.Start(ctx, testenv.Options{User: account + "-r", Users: []string{"alice"}})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "remote:", err)
		if env != nil {
			env.Close()
		}
		os.Exit(1)
	}
	code := m.Run()
	env.Close()
	os.Exit(code)
}

// remote runs the podman CLI as the hosting account against a build host.
func remote(ctx context.Context, h *testenv.BuildHost, identity string, args ...string) (string, error) {
	return env.AsUser(ctx, nil, "podman", append([]string{"--url", h.URI, "--identity", identity}, args...)...)
}

// names lists a host's containers, seen from inside it.
func names(t *testing.T, h *testenv.BuildHost) string {
	t.Helper()
	out, err := h.Podman(context.Background(), "ps", "-a", "--format", "{{.Names}}")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBuildHosts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	hosts := testenv.StartBuildHosts(t, 2, env.User)
	// The account knows both hosts' keys, as an operator would set it up.
	ssh := filepath.Join(env.Home, ".ssh")
	kh := filepath.Join(ssh, "known_hosts")
	if err := os.MkdirAll(ssh, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kh, []byte(hosts[0].KnownHosts+"\n"+hosts[1].KnownHosts+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{ssh, kh} {
		if err := os.Chown(p, env.UID, env.GID); err != nil {
			t.Fatal(err)
		}
	}

	for i, h := range hosts {
		if out, err := remote(ctx, h, h.Identity, "run", "--rm", testenv.Busybox, "true"); err != nil {
			t.Fatalf("host %d: %v\n%s", i, err, out)
		}
		if out, err := remote(ctx, h, h.Identity, "create", "--name", fmt.Sprintf("probe-%d", i), testenv.Busybox, "true"); err != nil {
			t.Fatalf("host %d: %v\n%s", i, err, out)
		}
	}
	// Each host has its own storage: a container is listed where it was
	// created only.
	for i, h := range hosts {
		got := names(t, h)
		if !strings.Contains(got, fmt.Sprintf("probe-%d", i)) || strings.Contains(got, fmt.Sprintf("probe-%d", 1-i)) {
			t.Errorf("host %d lists:\n%s", i, got)
		}
	}

	// Attacks: another host's key is not let in, and a host that shows a
	// key other than the known one is refused.
	if out, err := remote(ctx, hosts[0], hosts[1].Identity, "info"); err == nil {
		t.Errorf("host 0 let host 1's key in:\n%s", out)
	}
	port := func(h *testenv.BuildHost) string { return fmt.Sprintf("[127.0.0.1]:%d ", h.Port) }
	swapped := strings.Replace(hosts[1].KnownHosts, port(hosts[1]), port(hosts[0]), 1) + "\n" + hosts[1].KnownHosts + "\n"
	if err := os.WriteFile(kh, []byte(swapped), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := remote(ctx, hosts[0], hosts[0].Identity, "info"); err == nil {
		t.Errorf("host 0 accepted with host 1's host key in known_hosts:\n%s", out)
	}
	if err := os.WriteFile(kh, []byte(hosts[0].KnownHosts+"\n"+hosts[1].KnownHosts+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// One host goes down: the other still serves; back up, it serves again
	// with its storage kept.
	hosts[0].Stop(t)
	if out, err := remote(ctx, hosts[0], hosts[0].Identity, "info"); err == nil {
		t.Errorf("host 0 answers while stopped:\n%s", out)
	}
	if out, err := remote(ctx, hosts[1], hosts[1].Identity, "run", "--rm", testenv.Busybox, "true"); err != nil {
		t.Errorf("host 1 while host 0 is stopped: %v\n%s", err, out)
	}
	hosts[0].Start(t)
	if out, err := remote(ctx, hosts[0], hosts[0].Identity, "run", "--rm", testenv.Busybox, "true"); err != nil {
		t.Errorf("host 0 after its restart: %v\n%s", err, out)
	}
	if got := names(t, hosts[0]); !strings.Contains(got, "probe-0") {
		t.Errorf("host 0 lost its container in the restart:\n%s", got)
	}
	if b, err := os.ReadFile(kh); err != nil || strings.Count(string(b), "\n") != 2 {
		t.Errorf("known_hosts changed: %q %v", b, err)
	}
}
