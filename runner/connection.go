package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containers/common/pkg/config"
	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/gofrs/flock"
)

// Service says how to reach the Podman service.
type Service struct {
	// Getenv reads CONTAINER_HOST and XDG_RUNTIME_DIR.
	Getenv func(string) string
	// StateDir holds the lock that serialises starting a local service,
	// and the started service's log.
	StateDir string
	// Idle is how long a service that jobq started stays up unused.
	Idle time.Duration

	// loadConfig reads containers.conf; nil: config.Default, which caches
	// for the process. Tests read a fresh one per case.
	loadConfig func() (*config.Config, error)
}

func (s *Service) config() (*config.Config, error) {
	if s.loadConfig != nil {
		return s.loadConfig()
	}
	return config.Default()
}

// endpoint is a resolved service address.
type endpoint struct {
	uri      string
	identity string // ssh key, for ssh:// destinations
	socket   string // the local socket jobq may start a service on, if any
}

// resolve finds the service for connection (JOBQ_CONNECTION), in the order
// DESIGN.md gives.
func (s *Service) resolve(connection string) (endpoint, error) {
	if connection != "" {
		if strings.Contains(connection, "://") {
			return endpoint{uri: connection}, nil
		}
		cfg, err := s.config()
		if err != nil {
			return endpoint{}, fmt.Errorf("read containers.conf: %w", err)
		}
		c, err := cfg.GetConnection(connection, false)
		if err != nil {
			return endpoint{}, fmt.Errorf("JOBQ_CONNECTION=%q: %w", connection, err)
		}
		return endpoint{uri: c.URI, identity: c.Identity}, nil
	}
	if h := s.Getenv("CONTAINER_HOST"); h != "" {
		return endpoint{uri: h}, nil
	}
	if cfg, err := s.config(); err == nil {
		if c, err := cfg.GetConnection("", true); err == nil {
			return endpoint{uri: c.URI, identity: c.Identity}, nil
		}
	}
	sock := "/run/podman/podman.sock"
	if os.Geteuid() != 0 {
		sock = filepath.Join(s.runtimeDir(), "podman", "podman.sock")
	}
	return endpoint{uri: "unix://" + sock, socket: sock}, nil
}

// runtimeDir is XDG_RUNTIME_DIR, or what Podman itself falls back to when
// no login session made one (ssh without PAM, containers): /run/user/UID
// if it is ours, else a private directory in /tmp.
func (s *Service) runtimeDir() string {
	if d := s.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return d
	}
	uid := os.Geteuid()
	d := fmt.Sprintf("/run/user/%d", uid)
	if fi, err := os.Stat(d); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && fi.Mode().Perm()&0o200 != 0 {
			return d
		}
	}
	return filepath.Join(os.TempDir(), "podman-run-"+strconv.Itoa(uid))
}

// Connect returns a bindings connection context for the job's service,
// starting a local service if none listens and podman is installed. The
// connection is not cancelled with ctx: the runner still needs it to stop
// and remove a container after the job's context ended.
func (s *Service) Connect(ctx context.Context, connection string) (context.Context, string, error) {
	ep, err := s.resolve(connection)
	if err != nil {
		return nil, "", err
	}
	if ep.socket != "" && !listening(ep.socket) {
		if err := s.startLocal(ctx, ep.socket); err != nil {
			return nil, ep.uri, err
		}
	}
	conn, err := bindings.NewConnectionWithIdentity(context.WithoutCancel(ctx), ep.uri, ep.identity, false)
	if err != nil {
		return nil, ep.uri, fmt.Errorf("podman service %s: %s", ep.uri, oneLine(err))
	}
	return conn, ep.uri, nil
}

func listening(sock string) bool {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// startLocal starts "podman system service" on sock, detached, and waits
// until it answers. A lock keeps two workers from starting two.
func (s *Service) startLocal(ctx context.Context, sock string) error {
	podman, err := exec.LookPath("podman")
	if err != nil {
		return fmt.Errorf("podman service unix://%s is not listening, and podman is not installed to start it", sock)
	}
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		return fmt.Errorf("start podman service: %w", err)
	}
	lock := flock.New(filepath.Join(s.StateDir, "podman-service.lock"), flock.SetPermissions(0o600))
	if err := lock.Lock(); err != nil {
		return fmt.Errorf("start podman service: %w", err)
	}
	defer lock.Unlock()
	if listening(sock) {
		return nil // another worker started it
	}
	err = s.serve(ctx, podman, sock)
	if errors.Is(err, errExited) {
		// A runtime directory that outlived its processes (a container
		// restarted: /tmp survives, unlike /run/user at a reboot) leaves
		// Podman "invalid internal status"; its documented remedy first.
		migrate := exec.CommandContext(ctx, podman, "system", "migrate")
		migrate.Env = serviceEnv(sock)
		migrate.Run()
		err = s.serve(ctx, podman, sock)
	}
	return err
}

var errExited = errors.New("podman system service exited at once")

func serviceEnv(sock string) []string {
	if os.Geteuid() == 0 {
		return os.Environ()
	}
	return append(os.Environ(), "XDG_RUNTIME_DIR="+filepath.Dir(filepath.Dir(sock)))
}

// serve starts the service once and waits until it answers.
func (s *Service) serve(ctx context.Context, podman, sock string) error {
	logf, err := os.OpenFile(filepath.Join(s.StateDir, "podman-service.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start podman service: %w", err)
	}
	defer logf.Close()
	idle := max(s.Idle, time.Second)
	cmd := exec.Command(podman, "system", "service", "--time="+strconv.Itoa(int(idle.Seconds())), "unix://"+sock)
	cmd.Env = serviceEnv(sock)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start podman service: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("%w (%v); see %s", errExited, err, logf.Name())
		case <-deadline:
			return errors.New("podman system service did not answer within 30s; see " + logf.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if listening(sock) {
				return nil
			}
		}
	}
}
