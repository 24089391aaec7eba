package runner

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
