package podman

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jobq/jobq/internal/sshtunnel"
)

// dialTunnel connects to the Podman service at u
// (ssh://user@host[:port]/socket) over a tunnel of jobq's own, checking
// the host key against knownHosts: the bindings then connect to the
// tunnel's local socket.
func dialTunnel(ctx context.Context, u *url.URL, identity, knownHosts string, getenv func(string) string) (*sshtunnel.Tunnel, error) {
	if u.Path == "" || u.Path == "/" {
		return nil, fmt.Errorf("%s names no socket path: Podman's socket on the host, as in ssh://user@host/run/user/UID/podman/podman.sock", redact(u))
	}
	t, err := sshtunnel.Dial(ctx, u, identity, knownHosts, getenv)
	if errors.Is(err, sshtunnel.ErrNoIdentity) {
		return nil, errors.New("no identity: name one for the connection (identity in containers.conf, podman system connection add --identity), or run an ssh-agent")
	}
	return t, err
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
