package podman

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containers/common/pkg/config"
)

func TestResolveConnection(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PODMAN_CONNECTIONS_CONF", filepath.Join(dir, "none.json"))
	withDefault := filepath.Join(dir, "default.conf")
	os.WriteFile(withDefault, []byte(`[engine]
active_service = "builder"
[engine.service_destinations.builder]
uri = "ssh://build@builder.example/run/user/1000/podman/podman.sock"
identity = "/home/git/.ssh/builder"
[engine.service_destinations.local]
uri = "unix:///run/podman/podman.sock"
`), 0o644)
	noDefault := filepath.Join(dir, "nodefault.conf")
	os.WriteFile(noDefault, []byte(`[engine.service_destinations.local]
uri = "unix:///run/podman/podman.sock"
`), 0o644)
	uid := strconv.Itoa(os.Geteuid())
	local := "unix:///run/podman/podman.sock"
	if uid != "0" {
		local = "unix:///xdg/podman/podman.sock"
	}
	tests := []struct {
		name, conf, connection, containerHost string
		uri, identity, err                    string
	}{
		{"URL", withDefault, "unix:///tmp/x.sock", "unix:///ignored", "unix:///tmp/x.sock", "", ""},
		{"ssh URL", withDefault, "ssh://u@h:22/run/podman/podman.sock", "", "ssh://u@h:22/run/podman/podman.sock", "", ""},
		{"named", withDefault, "local", "unix:///ignored", "unix:///run/podman/podman.sock", "", ""},
		{"unknown name", withDefault, "nope", "", "", "", `JOBQ_CONNECTION="nope"`},
		{"CONTAINER_HOST before the default", withDefault, "", "tcp://127.0.0.1:8080", "tcp://127.0.0.1:8080", "", ""},
		{"containers.conf default", withDefault, "", "", "ssh://build@builder.example/run/user/1000/podman/podman.sock", "/home/git/.ssh/builder", ""},
		{"local socket", noDefault, "", "", local, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CONTAINERS_CONF", tt.conf)
			s := &Service{
				Getenv: func(k string) string {
					return map[string]string{"CONTAINER_HOST": tt.containerHost, "XDG_RUNTIME_DIR": "/xdg"}[k]
				},
				loadConfig: func() (*config.Config, error) { return config.New(nil) },
			}
			ep, err := s.resolve(tt.connection)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ep.uri != tt.uri || ep.identity != tt.identity {
				t.Errorf("resolved %+v, want %s %s", ep, tt.uri, tt.identity)
			}
		})
	}
}

// A service that cannot be reached: one line, no hang.
func TestConnectUnreachable(t *testing.T) {
	s := &Service{Getenv: func(string) string { return "" }, StateDir: t.TempDir()}
	_, _, err := s.Connect(context.Background(), "unix://"+filepath.Join(t.TempDir(), "nothing.sock"))
	if err == nil || !strings.Contains(err.Error(), "podman service unix://") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q", err)
	}
}

// The local socket is jobq's own pick, so jobq must make sure it is the
// account's: a squatter who made /tmp/podman-run-UID (or its podman
// directory, or the socket) before the account did would otherwise receive
// every job's spec and environment. As root, the test plays the account
// (uid 54321, which has no /run/user directory) and a squatter (65534).
func TestLocalSocketRefusesSquatters(t *testing.T) {
	const account, squatter = 54321, 65534
	type layout struct {
		tmp, xdg string // TMPDIR; XDG_RUNTIME_DIR or ""
		t        *testing.T
	}
	mkdir := func(l layout, path string, uid int, mode os.FileMode) {
		if err := os.MkdirAll(path, 0o700); err != nil {
			l.t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			l.t.Fatal(err)
		}
		if err := os.Chown(path, uid, uid); err != nil {
			l.t.Fatal(err)
		}
	}
	fallback := func(l layout) string { return filepath.Join(l.tmp, "podman-run-"+strconv.Itoa(account)) }
	tests := []struct {
		name   string
		setup  func(l layout) (base string, sockOwner int) // sockOwner -1: no socket
		xdg    bool
		refuse string // "": accepted
	}{
		{"fallback made by another user, listening", func(l layout) (string, int) {
			mkdir(l, filepath.Join(fallback(l), "podman"), squatter, 0o755)
			mkdir(l, fallback(l), squatter, 0o755)
			return fallback(l), squatter
		}, false, "belongs to uid 65534, not to this account (uid 54321)"},
		{"fallback made by another user, empty", func(l layout) (string, int) {
			mkdir(l, fallback(l), squatter, 0o777)
			return fallback(l), -1
		}, false, "belongs to uid 65534"},
		{"fallback writable by others", func(l layout) (string, int) {
			mkdir(l, fallback(l), account, 0o777)
			return fallback(l), -1
		}, false, "has mode 0777, not writable by its owner alone"},
		{"fallback writable by the group", func(l layout) (string, int) {
			mkdir(l, filepath.Join(fallback(l), "podman"), account, 0o700)
			mkdir(l, fallback(l), account, 0o770)
			return fallback(l), account
		}, false, "has mode 0770"},
		{"fallback is a symbolic link", func(l layout) (string, int) {
			target := filepath.Join(l.tmp, "elsewhere")
			mkdir(l, filepath.Join(target, "podman"), account, 0o700)
			mkdir(l, target, account, 0o700)
			if err := os.Symlink(target, fallback(l)); err != nil {
				l.t.Fatal(err)
			}
			return target, account
		}, false, "is a symbolic link"},
		{"fallback where others may rename it", func(l layout) (string, int) {
			mkdir(l, filepath.Join(fallback(l), "podman"), account, 0o700)
			mkdir(l, fallback(l), account, 0o700)
			os.Chmod(l.tmp, 0o777) // TMPDIR without /tmp's sticky bit
			return fallback(l), account
		}, false, "has mode 0777: others may rename what is in it"},
		{"podman directory of another user", func(l layout) (string, int) {
			mkdir(l, filepath.Join(fallback(l), "podman"), squatter, 0o755)
			mkdir(l, fallback(l), account, 0o700)
			return fallback(l), squatter
		}, false, "podman belongs to uid 65534"},
		{"socket of another user", func(l layout) (string, int) {
			mkdir(l, filepath.Join(fallback(l), "podman"), account, 0o700)
			mkdir(l, fallback(l), account, 0o700)
			return fallback(l), squatter
		}, false, "podman.sock belongs to uid 65534"},
		{"XDG_RUNTIME_DIR of another user", func(l layout) (string, int) {
			mkdir(l, filepath.Join(l.xdg, "podman"), squatter, 0o755)
			mkdir(l, l.xdg, squatter, 0o755)
			return l.xdg, squatter
		}, true, "belongs to uid 65534"},
		{"XDG_RUNTIME_DIR writable by others", func(l layout) (string, int) {
			mkdir(l, l.xdg, account, 0o777|os.ModeSticky)
			return l.xdg, -1
		}, true, "has mode 0777"},
		{"XDG_RUNTIME_DIR is a symbolic link", func(l layout) (string, int) {
			target := filepath.Join(l.tmp, "elsewhere")
			mkdir(l, target, account, 0o700)
			if err := os.Symlink(target, l.xdg); err != nil {
				l.t.Fatal(err)
			}
			return target, -1
		}, true, "is a symbolic link"},
		{"ours, there", func(l layout) (string, int) {
			mkdir(l, filepath.Join(l.xdg, "podman"), account, 0o700)
			mkdir(l, l.xdg, account, 0o700)
			return l.xdg, -1
		}, true, ""},
		{"ours, listening", func(l layout) (string, int) {
			mkdir(l, filepath.Join(fallback(l), "podman"), account, 0o700)
			mkdir(l, fallback(l), account, 0o700)
			os.Chmod(l.tmp, 0o777|os.ModeSticky) // as /tmp
			return fallback(l), account
		}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := layout{tmp: shortTempDir(t), t: t}
			if tt.xdg {
				l.xdg = filepath.Join(l.tmp, "xdg")
			}
			t.Setenv("TMPDIR", l.tmp)
			t.Setenv("PATH", t.TempDir()) // no podman: jobq can start no service
			t.Setenv("CONTAINERS_CONF", filepath.Join(l.tmp, "none.conf"))
			t.Setenv("PODMAN_CONNECTIONS_CONF", filepath.Join(l.tmp, "none.json"))
			base, sockOwner := tt.setup(l)
			var accepted atomic.Int32
			if sockOwner >= 0 {
				sock := filepath.Join(base, "podman", "podman.sock")
				ln, err := net.Listen("unix", sock)
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				os.Chmod(sock, 0o777)
				os.Chown(sock, sockOwner, sockOwner)
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						accepted.Add(1)
						c.Close()
					}
				}()
			}
			s := &Service{
				Getenv:     func(k string) string { return map[string]string{"XDG_RUNTIME_DIR": l.xdg}[k] },
				StateDir:   t.TempDir(),
				loadConfig: func() (*config.Config, error) { return config.New(nil) },
				geteuid:    func() int { return account },
			}
			_, _, err := s.Connect(context.Background(), "")
			switch {
			case tt.refuse == "" && sockOwner >= 0:
				// Past the checks: jobq talks to it (a fake, which hangs up).
				if accepted.Load() == 0 || err == nil || !strings.Contains(err.Error(), "podman service unix://") {
					t.Errorf("Connect: %v, %d connections; want jobq to connect", err, accepted.Load())
				}
				return
			case tt.refuse == "":
				// Past the checks: the service would start, but there is no podman.
				if err == nil || !strings.Contains(err.Error(), "podman is not installed") {
					t.Fatalf("Connect: %v, want it to get as far as starting podman", err)
				}
				for _, d := range []string{base, filepath.Join(base, "podman")} {
					if err := ownDir(d, account); err != nil {
						t.Errorf("%s %v", d, err)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "refusing the Podman socket") || !strings.Contains(err.Error(), tt.refuse) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Connect: %v\nwant one line refusing it: %q", err, tt.refuse)
			}
			if n := accepted.Load(); n > 0 {
				t.Errorf("jobq connected to the squatter's socket %d times", n)
			}
			// Nothing made inside a directory another user controls.
			if sockOwner < 0 {
				if _, err := os.Lstat(filepath.Join(base, "podman")); err == nil {
					t.Errorf("jobq made %s/podman", base)
				}
			}
		})
	}
}

// shortTempDir is a temporary directory with a name short enough for a
// socket inside it (108 bytes in all).
func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "jq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Starting a service, jobq makes the directories it picked (0700) and
// checks them after: a squatter who made one first, between the look
// before and the mkdir, still loses.
func TestLocalSocketDirectoriesMade(t *testing.T) {
	uid := os.Geteuid()
	tmp := shortTempDir(t)
	ep := endpoint{base: filepath.Join(tmp, "run", "user"), socket: filepath.Join(tmp, "run", "user", "podman", "podman.sock")}
	if err := ep.checkLocal(uid, true); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{ep.base, filepath.Dir(ep.socket)} {
		if err := ownDir(d, uid); err != nil {
			t.Errorf("%s %v", d, err)
		}
	}
	squatted := endpoint{base: filepath.Join(tmp, "squatted"), socket: filepath.Join(tmp, "squatted", "podman", "podman.sock")}
	os.Mkdir(squatted.base, 0o777)
	os.Chmod(squatted.base, 0o777)
	os.Chown(squatted.base, 65534, 65534)
	if err := squatted.checkLocal(uid, true); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("checkLocal of a squatted directory: %v", err)
	}
	if _, err := os.Lstat(filepath.Dir(squatted.socket)); err == nil {
		t.Error("jobq made its podman directory inside the squatter's")
	}
}
