package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ContainersConf is the containers.conf that makes Podman work on hosts
// like the CI machines (hybrid cgroups, no CAP_SYS_RESOURCE): runc, not
// crun; cgroupfs; ulimits within the hard limits.
const ContainersConf = `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
`

// Busybox is the test image, imported from the host's static busybox.
const Busybox = "localhost/jobq-busybox:latest"

// ImportBusybox imports Busybox into the storage that podman, as run by
// runAs (nil: this process), uses.
func ImportBusybox(ctx context.Context, dir string, runAs func(ctx context.Context, name string, args ...string) (string, error)) error {
	rootfs := filepath.Join(dir, "busybox-rootfs")
	tarball := filepath.Join(dir, "busybox.tar")
	if _, err := os.Stat(tarball); err != nil {
		if err := os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755); err != nil {
			return err
		}
		for _, d := range []string{"tmp", "etc", "proc", "sys", "dev", "source"} {
			os.MkdirAll(filepath.Join(rootfs, d), 0o755)
		}
		os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777)
		if _, err := run(ctx, "", nil, "cp", "/bin/busybox", filepath.Join(rootfs, "bin", "busybox")); err != nil {
			return fmt.Errorf("busybox-static is needed: %w", err)
		}
		out, err := run(ctx, "", nil, "/bin/busybox", "--list")
		if err != nil {
			return err
		}
		for _, applet := range strings.Fields(out) {
			if applet != "busybox" {
				os.Symlink("busybox", filepath.Join(rootfs, "bin", applet))
			}
		}
		if _, err := run(ctx, "", nil, "tar", "-C", rootfs, "-cf", tarball, "."); err != nil {
			return err
		}
		os.Chmod(tarball, 0o644)
	}
	if runAs == nil {
		runAs = func(ctx context.Context, name string, args ...string) (string, error) {
			return run(ctx, "", nil, name, args...)
		}
	}
	// Once: each import under the same name left the last one behind,
	// untagged, and a storage of hundreds of images slows every create.
	if _, err := runAs(ctx, "podman", "image", "exists", Busybox); err == nil {
		return nil
	}
	_, err := runAs(ctx, "podman", "import", "--change", "ENV PATH=/bin", "--change", `CMD ["/bin/sh"]`, tarball, Busybox)
	return err
}

// rootlessPodman gives the hosting account the containers.conf these hosts
// need and the Busybox image, as an operator would set them up.
func (e *Env) rootlessPodman(ctx context.Context) error {
	conf := filepath.Join(e.Home, ".config", "containers", "containers.conf")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(conf, []byte(ContainersConf), 0o644); err != nil {
		return err
	}
	if _, err := run(ctx, "", nil, "chown", "-R", e.User+":", filepath.Join(e.Home, ".config")); err != nil {
		return err
	}
	return ImportBusybox(ctx, e.Dir, func(ctx context.Context, name string, args ...string) (string, error) {
		return e.AsUser(ctx, nil, name, args...)
	})
}

// RootfulPodman is a rootful Podman service of the tests' own.
type RootfulPodman struct {
	URI  string
	Conf string // its containers.conf
	cmd  *exec.Cmd
	sock string
}

// StartRootfulPodman starts "podman system service" as root on a socket in
// dir, with ContainersConf, and imports Busybox into it.
func StartRootfulPodman(ctx context.Context, dir string) (*RootfulPodman, error) {
	if _, err := exec.LookPath("podman"); err != nil {
		return nil, fmt.Errorf("podman is not installed (run scripts/setup)")
	}
	p := &RootfulPodman{Conf: filepath.Join(dir, "containers.conf"), sock: filepath.Join(dir, "podman.sock")}
	p.URI = "unix://" + p.sock
	if err := os.WriteFile(p.Conf, []byte(ContainersConf), 0o644); err != nil {
		return nil, err
	}
	env := append(os.Environ(), "CONTAINERS_CONF="+p.Conf)
	as := func(ctx context.Context, name string, args ...string) (string, error) {
		return run(ctx, "", env, name, args...)
	}
	if err := ImportBusybox(ctx, dir, as); err != nil {
		return nil, fmt.Errorf("import busybox: %w", err)
	}
	if err := p.start(); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// start starts the service on p.sock and waits until it listens.
func (p *RootfulPodman) start() error {
	os.Remove(p.sock)
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(p.sock), "podman-service.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	p.cmd = exec.Command("podman", "system", "service", "--time=0", p.URI)
	p.cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.Conf)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("unix", p.sock); err == nil {
			c.Close()
			return nil
		}
	}
	return fmt.Errorf("podman service did not listen on %s", p.sock)
}

// Stop stops the service (containers it started keep running, as after a
// crash of the service).
func (p *RootfulPodman) Stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		p.cmd = nil
	}
}

// Restart starts the service again on the same socket.
func (p *RootfulPodman) Restart() error {
	p.Stop()
	return p.start()
}

// Podman runs the podman CLI against the same storage, for test checks.
func (p *RootfulPodman) Podman(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "", append(os.Environ(), "CONTAINERS_CONF="+p.Conf), "podman", args...)
}
