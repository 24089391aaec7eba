package host

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jobq/jobq/internal/secret"
	"github.com/jobq/jobq/runner"
	"golang.org/x/sys/unix"
)

// secretsRecord is the job's record, in its run directory, of the
// directory its secrets are in (JOBQ_SECRETS_DIR): for Cleanup to remove
// it, whoever ends the job.
func secretsRecord(j runner.Job) string { return filepath.Join(j.Dir, "secrets") }

// secretsPrefix begins the name of every job's secrets directory.
const secretsPrefix = "jobq-exec-secrets-"

// secretsBase is where secrets directories are made: on a filesystem in
// memory, which a power loss or reboot empties, never the data
// directory's disk: the worker's $XDG_RUNTIME_DIR (the account's own,
// 0700), else /dev/shm.
func secretsBase() (string, error) {
	var tried []string
	for _, d := range []string{os.Getenv("XDG_RUNTIME_DIR"), "/dev/shm"} {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		var fs unix.Statfs_t
		if err := unix.Statfs(d, &fs); err == nil && (fs.Type == unix.TMPFS_MAGIC || fs.Type == unix.RAMFS_MAGIC) {
			return d, nil
		}
		tried = append(tried, d)
	}
	return "", fmt.Errorf("no filesystem in memory for the job's secrets (tried %s)", strings.Join(tried, ", "))
}

// writeSecrets puts j's secrets in a directory of their own, 0700, one
// file per secret, 0400, named by the secret, and returns its path. The
// record is written before the directory is made, so that no directory
// is ever left that no record names.
func writeSecrets(j runner.Job) (dir string, err error) {
	base, err := secretsBase()
	if err != nil {
		return "", err
	}
	b := make([]byte, 12)
	rand.Read(b)
	dir = filepath.Join(base, secretsPrefix+hex.EncodeToString(b))
	if err := os.WriteFile(secretsRecord(j), []byte(dir+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("secrets record: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
			os.Remove(secretsRecord(j))
		}
	}()
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("secrets directory: %w", err)
	}
	for _, s := range j.Secrets {
		if err := secret.ValidName(s.Name); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, s.Name), s.Value, 0o400); err != nil {
			return "", fmt.Errorf("secret %s: %w", s.Name, err)
		}
	}
	return dir, nil
}

// secretArgs are the supervisor's arguments for j's secrets in dir: the
// directory and which variable each NAME:VAR sets; names, never values.
func secretArgs(dir string, secrets []runner.Secret) []string {
	args := []string{"--secrets=" + dir}
	for _, s := range secrets {
		if s.Var != "" {
			args = append(args, "--secret-var="+s.Var+"="+s.Name)
		}
	}
	return args
}

// removeSecrets removes j's secrets directory and its record. The
// record is the data directory's, but is trusted only for a path of the
// form writeSecrets makes.
func removeSecrets(j runner.Job) error {
	b, err := os.ReadFile(secretsRecord(j))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if dir := strings.TrimSpace(string(b)); filepath.IsAbs(dir) && filepath.Clean(dir) == dir &&
		strings.HasPrefix(filepath.Base(dir), secretsPrefix) {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove the job's secrets: %w", err)
		}
	}
	return removeFile(secretsRecord(j))
}

// supervisorSecrets is what the supervisor does with a job's secrets.
type supervisorSecrets struct {
	dir  string   // --secrets: the directory, removed when the job ends
	vars []string // --secret-var: VAR=NAME
	mask [][]byte // --mask-fd: values withheld from the job, masked all the same
}

// writeMask writes values for readMask: each as its length, 4 bytes big
// endian, then its bytes.
func writeMask(w io.Writer, values [][]byte) error {
	var b []byte
	for _, v := range values {
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	_, err := w.Write(b)
	return err
}

// maxMask bounds what readMask reads: a worker sends values of the
// store, each at most secret.MaxLen.
const maxMask = 64 << 20

// readMask reads what writeMask wrote, to its end; an incomplete value
// is an error (the worker died while writing), since the job must not
// start with less masked than its worker meant.
func readMask(r io.Reader) ([][]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxMask))
	if err != nil {
		return nil, fmt.Errorf("values to mask: %w", err)
	}
	var values [][]byte
	for len(b) > 0 {
		if len(b) < 4 || uint32(len(b)-4) < binary.BigEndian.Uint32(b) {
			return nil, errors.New("values to mask: cut short")
		}
		n := binary.BigEndian.Uint32(b)
		values = append(values, b[4:4+n])
		b = b[4+n:]
	}
	return values, nil
}

// load reads the secrets' values from the directory (never from the
// command line or the environment) and the job's variables from them.
func (s *supervisorSecrets) load() (values [][]byte, env []string, err error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, nil, err
	}
	byName := map[string][]byte{}
	for _, e := range ents {
		v, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			return nil, nil, err
		}
		byName[e.Name()] = v
		values = append(values, v)
	}
	for _, vn := range s.vars {
		v, name, _ := strings.Cut(vn, "=")
		value, ok := byName[name]
		if !ok {
			return nil, nil, fmt.Errorf("--secret-var %s: no secret %s", v, name)
		}
		env = append(env, v+"="+string(value))
	}
	return values, env, nil
}

// drainGrace is how long the supervisor, once the job and every
// descendant are gone, waits for the end of the job's output: a process
// that escaped it (given the pipe over a socket) cannot hold it up.
const drainGrace = 5 * time.Second

// maskOutput starts copying what the job writes into the returned pipe's
// write end to w, each of values masked (secret.Masker); wait, once the
// job's processes are gone, waits for the copy to end (at most
// drainGrace), flushes and closes.
func maskOutput(w io.Writer, values [][]byte) (jobOut *os.File, wait func(), err error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	m := secret.NewMasker(w, values)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		io.CopyBuffer(struct{ io.Writer }{m}, pr, buf)
	}()
	wait = func() {
		pw.Close() // the supervisor's own copy: EOF once the job's are gone
		select {
		case <-done:
		case <-time.After(drainGrace):
			pr.Close()
			<-done
		}
		m.Flush()
		pr.Close()
	}
	return pw, wait, nil
}

// withVars is env with vars (KEY=VALUE) set, replacing any earlier value:
// ForkExec passes duplicates on, and a C program's getenv finds the first.
func withVars(env, vars []string) []string {
	set := map[string]bool{}
	for _, kv := range vars {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	out := make([]string, 0, len(env)+len(vars))
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			out = append(out, kv)
		}
	}
	return append(out, vars...)
}
