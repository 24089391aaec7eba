package podman

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containers/podman/v5/pkg/bindings/containers"
	podimages "github.com/containers/podman/v5/pkg/bindings/images"
	"github.com/containers/podman/v5/pkg/bindings/volumes"
	"github.com/containers/podman/v5/pkg/specgen"
	spec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/jobq/jobq/images"
	"github.com/jobq/jobq/internal/secret"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// A job's secrets (runner.Job.Secrets) are files /run/secrets/NAME in its
// container, each owned by the container's user (the image's USER, mapped
// into the job's own ID range) and readable by that user only, and held
// in memory only, never on a disk. Not Podman 4's own secrets (podman
// secret, --secret): whatever the store's driver (the file driver keeps
// the value in secrets/filedriver/secretsdata.json, base64; a shell
// driver where its commands say), the container mounts a copy that Podman
// writes into the container's directory under graphroot
// (overlay-containers/ID/userdata/secrets/NAME), on disk. No value is ever in the container's spec, so none is in podman
// inspect: not in its environment (Podman 4.3 shows type=env secrets
// there), labels, annotations or mount options.
//
//   - A local service: a directory of the job's own on a tmpfs of this
//     host (secretsBase: XDG_RUNTIME_DIR where it is a tmpfs, else
//     /dev/shm), written before the container is created, and each file
//     bind-mounted read-only at /run/secrets/NAME with U, which makes
//     Podman chown it to the container's user at the container's init. It
//     costs no request to the service: a bind mount more per secret.
//   - A build host: an anonymous tmpfs volume at /run/secrets (Podman
//     mounts a volume with options when the container is initialised, in
//     its own mount namespace, and unmounts it when the container stops),
//     made in the container's create request, and filled before the start
//     through the archive endpoint, which chowns what it writes to the
//     container's user. Mounted read-only in the container. Removed with
//     the container; named as the /source volume is (sourceVolume), so
//     that the sweep finds one that a removal cut short left.
//
// NAME:VAR: a variable is set inside the container by jobq-env, the
// container's entrypoint (envEntry), which reads the file, sets VAR and
// executes the job's own command: the image's ENTRYPOINT and the job's
// arguments, or the image's CMD without any, as Podman would have run
// them. Only a job with a variable has it: bind-mounted read-only from
// this host, or, on a build host, shipped as the source is, into a volume
// of its own mounted read-only at /run/jobq. Not into the secrets volume:
// runc looks the entrypoint up when the container is initialised (runc
// create), and the tmpfs is mounted only then, so jobq-env must be there
// before, on the volume's disk.

// secretsPath is where a job's secrets are in its container.
const secretsPath = "/run/secrets"

// envDir and envEntry are where jobq-env is in the container.
const (
	envDir   = "/run/jobq"
	envEntry = envDir + "/env"
)

// EnvHelper is jobq-env's file name, next to the worker's binary.
const EnvHelper = "jobq-env"

// secretDirs is the name of the directory of the account's jobs' secret
// directories, in secretsBase: one per account (by UID), as another
// account may use the same /dev/shm.
func secretDirs(base string) string {
	return filepath.Join(base, "jobq-secrets-"+strconv.Itoa(os.Geteuid()))
}

// delivery is how a job's secrets reach its container.
type delivery struct {
	secrets []runner.Secret
	// dir: a local service's job, the directory of its secret files.
	dir string
	// volume: a build host's job, the name of the volume at /run/secrets;
	// envVolume, of the volume at envDir for a job with a variable.
	volume, envVolume string
	// env is jobq-env on this host, for a job with a variable; "" without.
	env string
}

// checkSecrets refuses what no store or grant should have let through:
// a name that is not a file name of its own, a variable that is not a
// variable's name, a name or variable given twice.
func checkSecrets(ss []runner.Secret) error {
	names, vars := map[string]bool{}, map[string]bool{}
	for _, s := range ss {
		if err := secret.ValidName(s.Name); err != nil {
			return fmt.Errorf("secret: %w", err)
		}
		if names[s.Name] {
			return fmt.Errorf("secret %s is given twice", s.Name)
		}
		names[s.Name] = true
		if s.Var == "" {
			continue
		}
		if err := secret.ValidVar(s.Var); err != nil {
			return fmt.Errorf("secret %s: %w", s.Name, err)
		}
		if vars[s.Var] {
			return fmt.Errorf("secret %s: the variable %s is given twice", s.Name, s.Var)
		}
		vars[s.Var] = true
	}
	return nil
}

// secretValues are the values to mask in j's output: those of the
// secrets it is given and of those withheld from it (runner.Job.Mask),
// which it may find where another ref's job left one (its cache). Only
// j.Secrets are ever delivered.
func secretValues(j runner.Job) [][]byte {
	v := append([][]byte(nil), j.Mask...)
	for _, s := range j.Secrets {
		v = append(v, s.Value)
	}
	return v
}

// envHelper is jobq-env's path on this host: Config.EnvHelper, or next to
// the running binary.
func (r *Runner) envHelper() (string, error) {
	p := r.cfg.EnvHelper
	if p == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("%s: %w", EnvHelper, err)
		}
		p = filepath.Join(filepath.Dir(exe), EnvHelper)
	}
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o005 != 0o005 {
		return "", fmt.Errorf("a secret given as a variable needs %s, installed with jobq-worker (make build) and readable by all: %s is not", EnvHelper, p)
	}
	return p, nil
}

// prepareSecrets makes what delivers j's secrets before its container is
// created: the record first (so that a worker that dies from here leaves
// nothing its Cleanup does not find), then, for a local service, the
// files. nil without secrets.
func (r *Runner) prepareSecrets(j runner.Job, remote bool) (*delivery, error) {
	if len(j.Secrets) == 0 {
		return nil, nil
	}
	if err := checkSecrets(j.Secrets); err != nil {
		return nil, err
	}
	d := &delivery{secrets: j.Secrets}
	for _, s := range j.Secrets {
		if s.Var != "" {
			p, err := r.envHelper()
			if err != nil {
				return nil, err
			}
			d.env = p
			break
		}
	}
	if remote {
		d.volume = sourceVolume(r.cfg.Home, j.Job)
		rec := "volume " + d.volume + "\n"
		if d.env != "" {
			d.envVolume = sourceVolume(r.cfg.Home, j.Job)
			rec += "volume " + d.envVolume + "\n"
		}
		if err := os.WriteFile(record(j, "secrets"), []byte(rec), 0o600); err != nil {
			return nil, fmt.Errorf("secrets: %w", err)
		}
		return d, nil
	}
	base, err := secretsBase(r.cfg.Service.Getenv)
	if err != nil {
		return nil, err
	}
	parent := secretDirs(base)
	if err := privateDir(parent); err != nil {
		return nil, err
	}
	d.dir = filepath.Join(parent, sourceVolume(r.cfg.Home, j.Job))
	if err := os.WriteFile(record(j, "secrets"), []byte("dir "+d.dir+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	if err := os.Mkdir(d.dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	for _, s := range j.Secrets {
		if err := writeSecret(filepath.Join(d.dir, s.Name), s.Value); err != nil {
			return nil, fmt.Errorf("secret %s: %w", s.Name, err)
		}
	}
	return d, nil
}

// writeSecret writes a new file, readable by its owner only.
func writeSecret(path string, value []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o400)
	if err != nil {
		return err
	}
	_, err = f.Write(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// secretsBase is the tmpfs a local job's secret files are written to:
// XDG_RUNTIME_DIR where it is one (logind's /run/user/UID), else
// /dev/shm. Never a disk: a value written there may outlive its job in
// the disk's blocks.
func secretsBase(getenv func(string) string) (string, error) {
	var tried []string
	for _, d := range []string{getenv("XDG_RUNTIME_DIR"), "/dev/shm"} {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		if isTmpfs(d) {
			return d, nil
		}
		tried = append(tried, d)
	}
	return "", fmt.Errorf("secrets: no tmpfs to hold them (%s: not a tmpfs); a job's secrets are never written to a disk", strings.Join(tried, ", "))
}

func isTmpfs(dir string) bool {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}

// privateDir makes dir, 0700, or checks that the one there is a
// directory of this account's that no one else may enter: in /dev/shm,
// another user could have made it first.
func privateDir(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("secrets: %w", err)
	}
	if err := ownDir(dir, os.Geteuid()); err != nil {
		return fmt.Errorf("secrets: %s %w; remove it", dir, err)
	}
	if fi, err := os.Lstat(dir); err != nil || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("secrets: %s may be entered by others than its owner; remove it", dir)
	}
	return nil
}

// imageCommand is what Podman would run for a job of image args[0]: the
// image's ENTRYPOINT, then the job's arguments, or, without any, the
// image's CMD (makeCommand in Podman's specgen). jobq-env runs it instead
// of Podman. An image that is not present is pulled first, as Run would.
func imageCommand(conn context.Context, j *queue.Job, args []string, log io.Writer) ([]string, error) {
	img, err := podimages.GetImage(conn, args[0], nil)
	if err != nil && notFound(err) {
		if _, perr := images.Ensure(conn, args[0], j.Options.Pull, log); perr != nil {
			return nil, perr
		}
		img, err = podimages.GetImage(conn, args[0], nil)
	}
	if err != nil {
		return nil, fmt.Errorf("inspect image %s: %w", args[0], err)
	}
	var entry, cmd []string
	if img.Config != nil {
		entry, cmd = img.Config.Entrypoint, img.Config.Cmd
	}
	var out []string
	if len(entry) != 1 || entry[0] != "" {
		out = append(out, entry...)
	}
	if len(args) > 1 {
		out = append(out, args[1:]...)
	} else {
		out = append(out, cmd...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("image %s has no ENTRYPOINT or CMD, and JOBQ_COMMAND names no command", args[0])
	}
	return out, nil
}

// apply adds the secrets to the container's spec s: mounts only, never a
// value. command is what jobq-env runs (imageCommand), for a job with a
// variable.
func (d *delivery) apply(s *specgen.SpecGenerator, selinux bool, command []string) {
	if d.volume != "" {
		// ro: the job cannot write to the tmpfs (no memory of the host's
		// to fill, nothing to replace); the archive endpoint writes on
		// the service's side. U: its root is the container user's. The
		// mount repeats the tmpfs's noexec, nosuid and nodev: a bind in a
		// user namespace may not drop them (runc's remount: EPERM).
		s.Volumes = append(s.Volumes, &specgen.NamedVolume{
			Name: d.volume, Dest: secretsPath, IsAnonymous: true,
			Options: []string{"ro", "U", "nocopy", "noexec", "nosuid", "nodev", "volume-opt=type=tmpfs", "volume-opt=device=tmpfs", "volume-opt=o=nodev,nosuid,noexec,mode=0700"},
		})
		if d.envVolume != "" {
			s.Volumes = append(s.Volumes, &specgen.NamedVolume{Name: d.envVolume, Dest: envDir, IsAnonymous: true, Options: []string{"ro", "nocopy"}})
		}
	} else {
		opts := []string{"rbind", "ro", "U"}
		if selinux {
			opts = append(opts, "Z")
		}
		for _, sec := range d.secrets {
			s.Mounts = append(s.Mounts, spec.Mount{Type: "bind", Source: filepath.Join(d.dir, sec.Name), Destination: secretsPath + "/" + sec.Name, Options: opts})
		}
		if d.env != "" {
			// Not chowned, not relabelled: it is jobq's installed binary.
			s.Mounts = append(s.Mounts, spec.Mount{Type: "bind", Source: d.env, Destination: envEntry, Options: []string{"rbind", "ro"}})
		}
	}
	if d.env == "" {
		return
	}
	s.Entrypoint = []string{envEntry}
	s.Command = nil
	for _, sec := range d.secrets {
		if sec.Var != "" {
			s.Command = append(s.Command, sec.Name+"="+sec.Var)
		}
	}
	s.Command = append(append(s.Command, "--"), command...)
}

// shipEnv copies jobq-env into a build host's job's created container,
// before its init (see envEntry).
func (d *delivery) shipEnv(conn context.Context, id string) error {
	if d == nil || d.envVolume == "" {
		return nil
	}
	b, err := envArchive(d.env)
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	return copyArchive(conn, id, envDir, bytes.NewReader(b))
}

// envArchive is jobq-env at path as a gzipped tar of the one file env,
// mode 0555: half the bytes to send (the archive endpoint takes a
// compressed tar).
func envArchive(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err := writeTar(zw, map[string][]byte{filepath.Base(envEntry): b}, 0o555); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ship fills a build host's job's secrets volume: the container is
// initialised first, which mounts the tmpfs (before that, what is copied
// would land on the disk beneath it).
func (d *delivery) ship(conn context.Context, id string) error {
	if d == nil || d.volume == "" {
		return nil
	}
	if err := containers.ContainerInit(conn, id, nil); err != nil {
		return fmt.Errorf("start container: %w", err)
	}
	files := map[string][]byte{}
	for _, s := range d.secrets {
		files[s.Name] = s.Value
	}
	return copyFiles(conn, id, secretsPath, files, 0o400)
}

// copyFiles copies files into dir of container id (copyArchive): a tar
// made here, in memory (a few secrets of at most 64 KiB).
func copyFiles(conn context.Context, id, dir string, files map[string][]byte, mode int64) error {
	var buf bytes.Buffer
	if err := writeTar(&buf, files, mode); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	return copyArchive(conn, id, dir, &buf)
}

// writeTar writes files as a tar, each of mode.
func writeTar(w io.Writer, files map[string][]byte, mode int64) error {
	tw := tar.NewWriter(w)
	now := time.Now()
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// copyArchive copies a tar into dir of container id, through the archive
// endpoint, which chowns what it writes to the container's user.
func copyArchive(conn context.Context, id, dir string, archive io.Reader) error {
	copyFn, err := containers.CopyFromArchive(conn, id, dir, archive)
	if err == nil {
		err = copyFn()
	}
	if err != nil {
		return fmt.Errorf("copy into the container's %s: %w", dir, err)
	}
	return nil
}

// removeSecrets removes what the job's secrets record names, then the
// record: a local job's directory, or a build host's volumes (gone with
// the container, as a rule; here for a creation or removal cut short),
// once containerGone says that no container holds them.
func (r *Runner) removeSecrets(ctx context.Context, j runner.Job, containerGone bool) error {
	rec := record(j, "secrets")
	b, err := os.ReadFile(rec)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("secrets record: %w", err)
	}
	var conn context.Context
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		kind, name, _ := strings.Cut(line, " ")
		switch kind {
		case "dir":
			if err := removeSecretDir(name); err != nil {
				return err
			}
		case "volume":
			if _, _, ok := volumeJob(r.cfg.Home, name); !ok {
				return fmt.Errorf("secrets record names %q, not a volume of a job's", name)
			}
			if !containerGone {
				return nil // the container's removal failed: said already
			}
			if conn == nil {
				if conn, err = r.connect(ctx, j.Job); err != nil {
					return err
				}
			}
			// No force: a volume a container still uses is not removed.
			if err := volumes.Remove(conn, name, nil); err != nil && !notFound(err) {
				return fmt.Errorf("remove secrets volume: %w", err)
			}
		default:
			return fmt.Errorf("secrets record: %q", line)
		}
	}
	return removeRecord(rec)
}

// removeSecretDir removes a job's secret directory: files that Podman
// chowned to the job's IDs, in a directory of the account's own, which is
// all the removal needs.
func removeSecretDir(dir string) error {
	if !filepath.IsAbs(dir) || !strings.HasPrefix(filepath.Base(filepath.Dir(dir)), "jobq-secrets-") {
		return fmt.Errorf("secrets record names %q, not a secrets directory", dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove secrets: %w", err)
	}
	return nil
}

// sweepSecretDirs removes the secret directories of home's jobs that no
// longer run, current aside: what a job whose record was lost left. Only
// in this account's directory of them, on either tmpfs.
func (r *Runner) sweepSecretDirs(current *queue.Job) {
	for _, base := range []string{r.cfg.Service.Getenv("XDG_RUNTIME_DIR"), "/dev/shm"} {
		if base == "" || !filepath.IsAbs(base) {
			continue
		}
		parent := secretDirs(base)
		ents, err := os.ReadDir(parent)
		if err != nil {
			continue
		}
		for _, e := range ents {
			repo, id, ok := volumeJob(r.cfg.Home, e.Name())
			if !ok || current != nil && repo == current.Repo && id == current.ID || r.cfg.Active != nil && r.cfg.Active(repo, id) {
				continue
			}
			os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
}
