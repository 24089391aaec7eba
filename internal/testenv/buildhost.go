package testenv

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Build hosts: remote Podman services for the tests, each a
// container of this machine's rootful Podman running sshd and a rootless
// Podman service for its user "build", with its own storage in its own
// layer (no filesystem shared with the git server). A client reaches one
// at BuildHost.URI with BuildHost.Identity, and knows its host key from
// BuildHost.KnownHosts, as a real build machine would be reached.

//go:embed buildhost/Containerfile buildhost/entrypoint.sh buildhost/sshd_config
var buildHostFiles embed.FS

const (
	// DebianImage is the debootstrap'd Debian the GWS stand-in and the
	// build hosts derive from; debianRootfs is its cache between runs.
	DebianImage  = "localhost/jobq-test-debian:bookworm"
	debianRootfs = "/var/cache/jobq-test/rootfs-bookworm"

	buildHostUser   = "build"
	buildHostSocket = "/run/user/1000/podman/podman.sock"
)

// BuildHost is one remote build host.
type BuildHost struct {
	Name       string // its container in this machine's rootful Podman
	Port       int    // its sshd on 127.0.0.1
	URI        string // ssh://build@127.0.0.1:PORT/run/user/1000/podman/podman.sock
	Identity   string // the client's private key, owned by the client account
	KnownHosts string // its known_hosts line, "[127.0.0.1]:PORT ssh-ed25519 ..."
	dir        string // its keys and files
	conf       string // the outer Podman's containers.conf
}

// StartBuildHosts starts n build hosts for a test and removes them when
// it ends. client is the account that connects to them (it owns the
// identity files); "" leaves them to root. The host image is built once
// and kept, tagged by a digest of its files, so later runs reuse it.
func StartBuildHosts(t testing.TB, n int, client string) []*BuildHost {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "jobq-buildhosts-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The client traverses to its keys; the keys themselves are its own.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(conf, []byte(ContainersConf), 0o644); err != nil {
		t.Fatal(err)
	}
	image, err := BuildHostImage(ctx, conf)
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := -1, -1
	if client != "" {
		u, err := user.Lookup(client)
		if err != nil {
			t.Fatal(err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	// Named after the client: two test packages run at once use two
	// accounts, and each removes only its own hosts.
	run := client
	if run == "" {
		run = os.Getenv("JOBQ_TEST_ACCOUNT")
	}
	if run == "" {
		run = "jobq-test"
	}
	hosts := make([]*BuildHost, n)
	for i := range hosts {
		h := &BuildHost{Name: fmt.Sprintf("jobq-buildhost-%s-%d", run, i), dir: filepath.Join(dir, strconv.Itoa(i)), conf: conf}
		hosts[i] = h
		t.Cleanup(h.remove)
		if err := h.create(ctx, image, uid, gid, i%runtime.NumCPU()); err != nil {
			t.Fatalf("build host %d: %v", i, err)
		}
		if err := h.start(ctx); err != nil {
			t.Fatalf("build host %d: %v", i, err)
		}
		if err := ImportBusybox(ctx, h.dir, h.importAs); err != nil {
			t.Fatalf("build host %d: import busybox: %v", i, err)
		}
	}
	return hosts
}

// BuildHostImage builds the build host image if it is not there yet and
// returns its name. conf is the outer Podman's containers.conf.
func BuildHostImage(ctx context.Context, conf string) (string, error) {
	if err := EnsureDebianImage(ctx, conf); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "jobq-buildhost-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	// The image's files: this package's, and the .conf files the project
	// ships for Podman in Podman (the GWS image's).
	sum := sha256.New()
	files := map[string][]byte{}
	for _, name := range []string{"Containerfile", "entrypoint.sh", "sshd_config"} {
		b, err := buildHostFiles.ReadFile("buildhost/" + name)
		if err != nil {
			return "", err
		}
		files[name] = b
	}
	for _, name := range []string{"containers.conf", "storage.conf", "podman-containers.conf"} {
		b, err := os.ReadFile(filepath.Join(SourceDir(), name))
		if err != nil {
			return "", err
		}
		files[name] = b
	}
	for _, name := range []string{"Containerfile", "entrypoint.sh", "sshd_config", "containers.conf", "storage.conf", "podman-containers.conf"} {
		fmt.Fprintf(sum, "%s %d\n", name, len(files[name]))
		sum.Write(files[name])
		mode := os.FileMode(0o644)
		if name == "entrypoint.sh" {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(dir, name), files[name], mode); err != nil {
			return "", err
		}
	}
	image := "localhost/jobq-buildhost:" + hex.EncodeToString(sum.Sum(nil))[:16]
	env := append(os.Environ(), "CONTAINERS_CONF="+conf)
	if _, err := run(ctx, "", env, "podman", "image", "exists", image); err == nil {
		return image, nil
	}
	if _, err := run(ctx, "", env, "podman", "build", "-q", "-t", image, "-f", filepath.Join(dir, "Containerfile"), dir); err != nil {
		return "", err
	}
	return image, nil
}

// EnsureDebianImage imports DebianImage from a debootstrap'd Debian
// (cached in debianRootfs, with what the GWS stand-in needs), unless it
// exists. A lock keeps two test packages run at once (e2e/gws and
// e2e/remote) from building it at the same time. conf is the Podman's
// containers.conf.
func EnsureDebianImage(ctx context.Context, conf string) error {
	env := append(os.Environ(), "CONTAINERS_CONF="+conf)
	if _, err := run(ctx, "", env, "podman", "image", "exists", DebianImage); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(debianRootfs), 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(debianRootfs+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	if _, err := run(ctx, "", env, "podman", "image", "exists", DebianImage); err == nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(debianRootfs, "usr/bin/gitolite")); err != nil {
		tmp := debianRootfs + ".new"
		os.RemoveAll(tmp)
		if _, err := run(ctx, "", nil, "debootstrap", "--variant=minbase", "--include=gitolite3,openssh-server,git,ca-certificates",
			"bookworm", tmp, "http://deb.debian.org/debian"); err != nil {
			return err
		}
		os.RemoveAll(debianRootfs)
		if err := os.Rename(tmp, debianRootfs); err != nil {
			return err
		}
	}
	_, err = run(ctx, "", env, "sh", "-c", fmt.Sprintf(`tar -C %s -c . | podman import --change 'CMD ["/bin/bash"]' - %s`, debianRootfs, DebianImage))
	return err
}

// create makes the host's keys and its container, not started, on CPU cpu
// alone: hosts of their own have CPUs of their own, so a pool of two has
// twice the CPU of one, as two machines would (the pool benchmark).
func (h *BuildHost) create(ctx context.Context, image string, uid, gid, cpu int) error {
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		return err
	}
	h.Identity = filepath.Join(h.dir, "id_ed25519")
	hostKey := filepath.Join(h.dir, "host_ed25519")
	for _, k := range []string{h.Identity, hostKey} {
		if _, err := run(ctx, "", nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.Name, "-f", k); err != nil {
			return err
		}
	}
	if uid >= 0 {
		for _, p := range []string{h.dir, h.Identity, h.Identity + ".pub"} {
			if err := os.Chown(p, uid, gid); err != nil {
				return err
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	h.URI = fmt.Sprintf("ssh://%s@127.0.0.1:%d%s", buildHostUser, h.Port, buildHostSocket)
	pub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return err
	}
	f := strings.Fields(string(pub))
	h.KnownHosts = fmt.Sprintf("[127.0.0.1]:%d %s %s", h.Port, f[0], f[1])
	priv, err := os.ReadFile(hostKey)
	if err != nil {
		return err
	}
	auth, err := os.ReadFile(h.Identity + ".pub")
	if err != nil {
		return err
	}
	h.remove() // a container of an earlier, interrupted run of this account
	// The GWS image's run line: no --privileged.
	_, err = h.outer(ctx, "create", "--name", h.Name, "--device", "/dev/fuse", "--security-opt", "label=disable",
		"--cpuset-cpus", strconv.Itoa(cpu),
		"-p", fmt.Sprintf("127.0.0.1:%d:22", h.Port),
		"-e", "BUILDHOST_HOST_KEY="+strings.TrimSpace(string(priv)),
		"-e", "BUILDHOST_AUTHORIZED_KEY="+strings.TrimSpace(string(auth)),
		image)
	return err
}

// Stop stops the host, as a machine that goes down: its containers die,
// its storage stays.
func (h *BuildHost) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := h.outer(ctx, "stop", "-t", "0", h.Name); err != nil {
		t.Fatal(err)
	}
}

// Start starts a stopped host again and waits until it serves.
func (h *BuildHost) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := h.start(ctx); err != nil {
		t.Fatal(err)
	}
}

// start starts the container and waits until its Podman socket is reached
// through its sshd with the client's key and host key.
func (h *BuildHost) start(ctx context.Context) error {
	if _, err := h.outer(ctx, "start", h.Name); err != nil {
		return err
	}
	kh := filepath.Join(h.dir, "known_hosts")
	if err := os.WriteFile(kh, []byte(h.KnownHosts+"\n"), 0o644); err != nil {
		return err
	}
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, err = run(ctx, "", nil, "ssh", "-i", h.Identity, "-p", strconv.Itoa(h.Port), "-o", "UserKnownHostsFile="+kh,
			"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
			"-o", "ConnectTimeout=5", buildHostUser+"@127.0.0.1", "test", "-S", buildHostSocket)
		if err == nil {
			return nil
		}
	}
	logs, _ := h.outer(ctx, "logs", h.Name)
	return fmt.Errorf("build host %s does not serve: %w\n%s", h.Name, err, logs)
}

// Podman runs podman as the build user inside the host, against the
// same storage and state as its service (for test checks).
func (h *BuildHost) Podman(ctx context.Context, args ...string) (string, error) {
	return h.outer(ctx, append([]string{"exec", "--user", buildHostUser, "--workdir", "/home/build",
		"-e", "HOME=/home/build", "-e", "XDG_RUNTIME_DIR=/run/user/1000", h.Name, "podman"}, args...)...)
}

// importAs runs ImportBusybox's podman inside the host, its tarball copied
// in first.
func (h *BuildHost) importAs(ctx context.Context, name string, args ...string) (string, error) {
	tarball := filepath.Join(h.dir, "busybox.tar")
	if _, err := h.outer(ctx, "cp", tarball, h.Name+":/tmp/busybox.tar"); err != nil {
		return "", err
	}
	args = append([]string(nil), args...)
	for i, a := range args {
		if a == tarball {
			args[i] = "/tmp/busybox.tar"
		}
	}
	return h.Podman(ctx, args...)
}

// outer runs the machine's rootful podman on the host's container.
func (h *BuildHost) outer(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "", append(os.Environ(), "CONTAINERS_CONF="+h.conf), "podman", args...)
}

func (h *BuildHost) remove() {
	exec.Command("podman", "rm", "-f", "-t", "0", h.Name).Run()
}
