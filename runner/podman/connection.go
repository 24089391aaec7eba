package podman

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containers/common/pkg/config"
	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/gofrs/flock"

	"github.com/jobq/jobq/internal/sshtunnel"
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
	// geteuid is os.Geteuid where nil: tests, as root, play an account.
	geteuid func() int
	// tunnels are the ssh connections to build hosts, one per host and
	// identity, shared by the process's jobs (New makes it).
	tunnels *tunnels
}

func (s *Service) uid() int {
	if s.geteuid != nil {
		return s.geteuid()
	}
	return os.Geteuid()
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
	socket   string // the local socket jobq picked itself, if any
	// base is the directory jobq picked for socket: it and each directory
	// below it must be the account's own (see checkLocal).
	base string
}

// resolve finds the service for connection (JOBQ_CONNECTION), in the order
// the README's "Podman service" section gives.
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
		return endpoint{uri: c.URI, identity: expandHome(c.Identity)}, nil
	}
	if h := s.Getenv("CONTAINER_HOST"); h != "" {
		return endpoint{uri: h}, nil
	}
	if cfg, err := s.config(); err == nil {
		if c, err := cfg.GetConnection("", true); err == nil {
			return endpoint{uri: c.URI, identity: expandHome(c.Identity)}, nil
		}
	}
	// No one named a service: jobq picks the local socket, and uses it only
	// where no other user could have put it there.
	ep := endpoint{base: "/run/podman", socket: "/run/podman/podman.sock"}
	if uid := s.uid(); uid != 0 {
		ep.base = s.runtimeDir(uid)
		ep.socket = filepath.Join(ep.base, "podman", "podman.sock")
	}
	ep.uri = "unix://" + ep.socket
	if err := ep.checkLocal(s.uid(), false); err != nil {
		return endpoint{}, err
	}
	return ep, nil
}

// runtimeDir is XDG_RUNTIME_DIR, or what Podman itself falls back to when
// no login session made one (ssh without PAM, containers): /run/user/UID
// if it is ours, else a private directory in /tmp.
func (s *Service) runtimeDir(uid int) string {
	if d := s.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return d
	}
	d := fmt.Sprintf("/run/user/%d", uid)
	if ownDir(d, uid) == nil {
		return d
	}
	return filepath.Join(os.TempDir(), "podman-run-"+strconv.Itoa(uid))
}

// checkLocal refuses a local socket that another user could control: each
// directory from ep.base down to the socket must be a real directory (not a
// symbolic link) of the account's, writable by it alone, as Podman requires
// of its runtime directory, in a directory where no one else can rename it
// (not writable by others, or sticky, as /tmp); the socket, if there, must
// be the account's. A
// directory missing is fine, unless create, which makes it (mode 0700) and
// then checks it: a squatter can win the race to make it, never the check.
// Once a directory passes, no one else can change what is inside it.
func (ep endpoint) checkLocal(uid int, create bool) error {
	refuse := func(path, why string) error {
		return fmt.Errorf("refusing the Podman socket %s: %s %s, so another user could control it; remove it, or set XDG_RUNTIME_DIR or JOBQ_CONNECTION", ep.socket, path, why)
	}
	// Whoever may rename entries beside ep.base could swap it for their own
	// after the check; /tmp's sticky bit forbids that.
	if fi, err := os.Stat(filepath.Dir(ep.base)); err == nil && fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return refuse(filepath.Dir(ep.base), fmt.Sprintf("has mode %04o: others may rename what is in it", fi.Mode().Perm()))
	}
	dirs := []string{ep.base}
	if d := filepath.Dir(ep.socket); d != ep.base {
		dirs = append(dirs, d)
	}
	for i, d := range dirs {
		if create {
			mkdir := os.Mkdir
			if i == 0 {
				mkdir = os.MkdirAll // XDG_RUNTIME_DIR's parents, as Podman makes them
			}
			if err := mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("start podman service: %w", err)
			}
		}
		err := ownDir(d, uid)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // nothing below it either
		}
		if err != nil {
			return refuse(d, err.Error())
		}
	}
	fi, err := os.Lstat(ep.socket)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode().Type() != fs.ModeSocket:
		return refuse(ep.socket, "is not a socket")
	case owner(fi) != uid:
		return refuse(ep.socket, fmt.Sprintf("belongs to uid %d, not to this account (uid %d)", owner(fi), uid))
	}
	return nil
}

// ownDir says why d is not a directory of uid's that only uid can write
// to, or returns nil; an error wrapping fs.ErrNotExist if it is missing.
func ownDir(d string, uid int) error {
	fi, err := os.Lstat(d)
	switch {
	case err != nil:
		return err
	case fi.Mode().Type() == fs.ModeSymlink:
		return errors.New("is a symbolic link")
	case !fi.IsDir():
		return errors.New("is not a directory")
	case owner(fi) != uid:
		return fmt.Errorf("belongs to uid %d, not to this account (uid %d)", owner(fi), uid)
	case fi.Mode().Perm()&0o722 != 0o700: // Podman's own test (isWriteableOnlyByOwner)
		return fmt.Errorf("has mode %04o, not writable by its owner alone", fi.Mode().Perm())
	}
	return nil
}

func owner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// Connect returns a bindings connection context for the job's service,
// starting a local service if none listens and podman is installed, and
// the URI the bindings connect to.
func (s *Service) Connect(ctx context.Context, connection string) (context.Context, string, error) {
	ep, err := s.resolve(connection)
	if err != nil {
		return nil, "", err
	}
	l, err := s.link(ctx, ep)
	if err != nil {
		return nil, ep.uri, err
	}
	return l.conn, l.uri, nil
}

// link is a connection to one Podman service. The connection is not
// cancelled with the job's context: the runner still needs it to stop
// and remove a container after the job's context ended.
type link struct {
	conn   context.Context   // the bindings' connection
	uri    string            // what the bindings connect to: for ssh, the tunnel's socket
	name   string            // the service's URI, for messages
	remote bool              // a service on another machine: no filesystem shared
	tunnel *sshtunnel.Tunnel // for ssh://
}

// link connects to ep: over a tunnel of jobq's own for ssh://.
func (s *Service) link(ctx context.Context, ep endpoint) (*link, error) {
	if ep.socket != "" && !listening(ep.socket) {
		if err := s.startLocal(ctx, ep); err != nil {
			return nil, err
		}
	}
	l := &link{uri: ep.uri, name: ep.uri, remote: !strings.HasPrefix(ep.uri, "unix:")}
	if u, err := url.Parse(ep.uri); err == nil && u.Scheme == "ssh" {
		l.name = redact(u)
		t, err := s.tunnels.get(ctx, u, ep.identity, s.knownHosts(), s.Getenv)
		if err != nil {
			return nil, err
		}
		l.tunnel, l.uri = t, t.URI()
	}
	conn, err := bindings.NewConnectionWithIdentity(context.WithoutCancel(ctx), l.uri, ep.identity, false)
	if err != nil {
		return nil, fmt.Errorf("podman service %s: %w", l.name, err)
	}
	l.conn = conn
	return l, nil
}

// knownHosts is the file host keys are checked against: JOBQ_KNOWN_HOSTS,
// else ~/.ssh/known_hosts. jobq never writes it.
func (s *Service) knownHosts() string {
	if f := s.Getenv("JOBQ_KNOWN_HOSTS"); f != "" {
		return f
	}
	return expandHome("~/.ssh/known_hosts")
}

// tunnels keeps one tunnel per host, user and identity, and replaces one
// whose connection ended. A dial (up to sshtunnel.DialTimeout against a
// silent host) runs outside the lock: one per key at a time, which the
// other callers for that key wait for, while other hosts' callers go on.
type tunnels struct {
	mu      sync.Mutex
	m       map[string]*sshtunnel.Tunnel
	dialing map[string]*dial
	closed  bool
}

// dial is a dial in flight; done closes when t or err is set.
type dial struct {
	done    chan struct{}
	t       *sshtunnel.Tunnel
	err     error
	waiters int // callers other than the dialer, for tests
}

// close ends every tunnel; a dial still in flight ends its tunnel when it
// is made.
func (ts *tunnels) close() {
	if ts == nil {
		return
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.closed = true
	for k, t := range ts.m {
		t.Close()
		delete(ts.m, k)
	}
}

func (ts *tunnels) get(ctx context.Context, u *url.URL, identity, knownHosts string, getenv func(string) string) (*sshtunnel.Tunnel, error) {
	if ts == nil { // a Service not made by New (tests): not kept
		return dialTunnel(ctx, u, identity, knownHosts, getenv)
	}
	key := u.String() + "\x00" + identity + "\x00" + knownHosts
	ts.mu.Lock()
	if t := ts.m[key]; t != nil {
		select {
		case <-t.Done():
		default:
			ts.mu.Unlock()
			return t, nil
		}
	}
	d := ts.dialing[key]
	if d != nil {
		d.waiters++
	} else {
		d = &dial{done: make(chan struct{})}
		if ts.dialing == nil {
			ts.dialing = map[string]*dial{}
		}
		ts.dialing[key] = d
		// The dial is no one caller's: a caller whose job ends stops
		// waiting, and the others still get the tunnel. dialTunnel ends
		// within sshtunnel.DialTimeout.
		go ts.dial(context.WithoutCancel(ctx), key, d, u, identity, knownHosts, getenv)
	}
	ts.mu.Unlock()
	select {
	case <-d.done:
		return d.t, d.err
	case <-ctx.Done():
		return nil, fmt.Errorf("build host %s: %w", redact(u), context.Cause(ctx))
	}
}

// dial makes the tunnel d is for, keeps it under key, and lets d's
// callers have it.
func (ts *tunnels) dial(ctx context.Context, key string, d *dial, u *url.URL, identity, knownHosts string, getenv func(string) string) {
	t, err := dialTunnel(ctx, u, identity, knownHosts, getenv)
	ts.mu.Lock()
	delete(ts.dialing, key)
	if err == nil {
		if ts.closed {
			t.Close()
			t, err = nil, errors.New("the runner is closed")
		} else {
			if ts.m == nil {
				ts.m = map[string]*sshtunnel.Tunnel{}
			}
			ts.m[key] = t
		}
	}
	d.t, d.err = t, err
	ts.mu.Unlock()
	close(d.done)
}

func listening(sock string) bool {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// startLocal starts "podman system service" on ep's socket, detached, and
// waits until it answers. A lock keeps two workers from starting two.
func (s *Service) startLocal(ctx context.Context, ep endpoint) error {
	sock := ep.socket
	if err := ep.checkLocal(s.uid(), true); err != nil {
		return err
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		return fmt.Errorf("podman service unix://%s is not listening, and podman is not installed to start it", sock)
	}
	lock := flock.New(filepath.Join(s.StateDir, "podman-service.lock"), flock.SetPermissions(0o600))
	if err := lock.Lock(); err != nil {
		return fmt.Errorf("start podman service: %w", err)
	}
	defer lock.Unlock()
	if listening(sock) {
		return nil // another worker started it
	}
	err = s.serve(ctx, podman, ep)
	if errors.Is(err, errExited) {
		// A runtime directory that outlived its processes (a container
		// restarted: /tmp survives, unlike /run/user at a reboot) leaves
		// Podman "invalid internal status"; its documented remedy first.
		migrate := exec.CommandContext(ctx, podman, "system", "migrate")
		migrate.Env = s.serviceEnv(ep)
		migrate.Run()
		err = s.serve(ctx, podman, ep)
	}
	return err
}

var errExited = errors.New("podman system service exited at once")

func (s *Service) serviceEnv(ep endpoint) []string {
	if s.uid() == 0 {
		return os.Environ()
	}
	return append(os.Environ(), "XDG_RUNTIME_DIR="+ep.base)
}

// serve starts the service once and waits until it answers.
func (s *Service) serve(ctx context.Context, podman string, ep endpoint) error {
	sock := ep.socket
	logf, err := os.OpenFile(filepath.Join(s.StateDir, "podman-service.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start podman service: %w", err)
	}
	defer logf.Close()
	idle := max(s.Idle, time.Second)
	cmd := exec.Command(podman, "system", "service", "--time="+strconv.Itoa(int(idle.Seconds())), "unix://"+sock)
	cmd.Env = s.serviceEnv(ep)
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
