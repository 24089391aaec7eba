package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/secret"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// secretRunner records the secrets each job was run with.
type secretRunner struct {
	mu   sync.Mutex
	got  map[string][]runner.Secret // by ref
	mask map[string][][]byte        // by ref
}

func (r *secretRunner) Run(ctx context.Context, j runner.Job) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[j.Ref] = j.Secrets
	if r.mask != nil {
		r.mask[j.Ref] = j.Mask
	}
	// A job that prints what it was given: the runner masks it, not this
	// fake, so only names go to the log.
	for _, s := range j.Secrets {
		j.Log.WriteString("got " + s.Name + "\n")
	}
	return 0, nil
}
func (r *secretRunner) Adopt(context.Context, runner.Job, string) (int, error) {
	return 0, runner.ErrGone
}
func (r *secretRunner) Cleanup(context.Context, runner.Job) error { return nil }

func grantsOf(s string) GrantsFunc {
	return func(context.Context, *queue.Job) (string, error) { return s, nil }
}

// A job gets the secrets its repository grants to its ref, as the store
// has them when it starts, and its log names what it got and what was
// withheld and why, never a value. The values of those withheld are for
// the runner to mask (a job may find one in a cache); one withheld but
// missing from the store has none, and fails nothing.
func TestJobSecrets(t *testing.T) {
	s := newStore(t)
	store := secret.Open(s.Dir())
	store.Set("deploy_key", []byte("old-deploy-key-value"))
	store.Set("tag_token", []byte("tag-token-value"))
	store.Set("all_refs", []byte("all-refs-value"))
	for _, ref := range []string{"refs/heads/master", "refs/heads/master-x"} {
		j := newJob("r", "q")
		j.Ref = ref
		if _, err := s.Enqueue(j); err != nil {
			t.Fatal(err)
		}
	}
	// Rotated while the jobs wait: the new value is the one they get.
	store.Set("deploy_key", []byte("new-deploy-key-value"))
	r := &secretRunner{got: map[string][]runner.Secret{}, mask: map[string][][]byte{}}
	w := &Worker{Store: s, Runners: map[string]runner.Runner{"exec": r},
		Grants: grantsOf("deploy_key:DEPLOY_KEY@refs/heads/master tag_token@refs/tags/* all_refs not_set@refs/tags/*")}
	if err := w.Drain(context.Background(), "q", false); err != nil {
		t.Fatal(err)
	}
	want := map[string][]runner.Secret{
		"refs/heads/master": {{Name: "all_refs", Value: []byte("all-refs-value")},
			{Name: "deploy_key", Var: "DEPLOY_KEY", Value: []byte("new-deploy-key-value")}},
		"refs/heads/master-x": {{Name: "all_refs", Value: []byte("all-refs-value")}},
	}
	if !reflect.DeepEqual(r.got, want) {
		t.Fatalf("secrets given: %+v, want %+v", r.got, want)
	}
	wantMask := map[string][][]byte{
		"refs/heads/master":   {[]byte("tag-token-value")},
		"refs/heads/master-x": {[]byte("new-deploy-key-value"), []byte("tag-token-value")},
	}
	if !reflect.DeepEqual(r.mask, wantMask) {
		t.Fatalf("values to mask: %q, want %q", r.mask, wantMask)
	}
	logs := map[int64][]string{
		0: {"jobq: secrets given: all_refs, deploy_key (also $DEPLOY_KEY)\n",
			"jobq: secret tag_token withheld: JOBQ_SECRETS grants it to refs/tags/* only, not to this job's ref refs/heads/master\n"},
		1: {"jobq: secrets given: all_refs\n",
			"jobq: secret deploy_key withheld: JOBQ_SECRETS grants it to refs/heads/master only, not to this job's ref refs/heads/master-x\n",
			"jobq: secret tag_token withheld: JOBQ_SECRETS grants it to refs/tags/* only, not to this job's ref refs/heads/master-x\n"},
	}
	for id, lines := range logs {
		b, _ := os.ReadFile(s.LogPath("r", id))
		for _, l := range lines {
			if !bytes.Contains(b, []byte(l)) {
				t.Errorf("log of job %d lacks %q:\n%s", id, l, b)
			}
		}
		if j, _ := s.Job("r", id); j.State != queue.Succeeded {
			t.Errorf("job %d: %s %s", id, j.State, j.Error)
		}
	}
	noValueOutsideStore(t, s.Dir(), "deploy-key-value", "tag-token-value", "all-refs-value")
}

// noValueOutsideStore fails if any file of the data directory dir but
// the store's holds one of values.
func noValueOutsideStore(t *testing.T, dir string, values ...string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path == secret.Dir(dir) {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(path)
			for _, v := range values {
				if bytes.Contains(b, []byte(v)) {
					t.Errorf("%s holds a secret's value", path)
				}
			}
		}
		return nil
	})
}

// A job whose grants cannot be honoured does not start: it fails with one
// line that says why, and its runner never sees it.
func TestJobSecretsRefused(t *testing.T) {
	tests := []struct {
		name   string
		grants GrantsFunc
		want   string
	}{
		{"a granted name not in the store", grantsOf("missing_key@refs/heads/main"),
			"secret missing_key is granted to this ref (JOBQ_SECRETS) but not in the store (jobq secret set missing_key); the job did not start"},
		{"a bad JOBQ_SECRETS", grantsOf("deploy_key:PATH"),
			`JOBQ_SECRETS entry "deploy_key:PATH": PATH is a variable the job needs for itself; the job did not start`},
		{"gitolite failing", func(context.Context, *queue.Job) (string, error) { return "", errors.New("gitolite: boom") },
			"could not read the repository's JOBQ_SECRETS: gitolite: boom; the job did not start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if _, err := s.Enqueue(newJob("r", "q")); err != nil {
				t.Fatal(err)
			}
			ran := false
			w := &Worker{Store: s, Grants: tt.grants, Runners: runWith(func(context.Context, *queue.Job, *os.File) (int, error) {
				ran = true
				return 0, nil
			})}
			if err := w.Drain(context.Background(), "q", false); err != nil {
				t.Fatal(err)
			}
			j, _ := s.Job("r", 0)
			if ran || j.State != queue.Failed || j.Error != tt.want || j.ExitCode != nil {
				t.Fatalf("ran %v, state %s, error %q, want %q", ran, j.State, j.Error, tt.want)
			}
			b, _ := os.ReadFile(s.LogPath("r", 0))
			if !strings.Contains(string(b), "jobq: failed: "+tt.want) {
				t.Errorf("log:\n%s", b)
			}
		})
	}
}

// Without a gitolite, the grants are those the push had (recorded in the
// job), never the worker's environment's, which is that of whichever push
// started it: another repository's grants must not reach this one's jobs.
func TestGrantsWithoutGitolite(t *testing.T) {
	env := map[string]string{"HOME": t.TempDir(), "JOBQ_SECRETS": "b@refs/heads/x", "GL_OPTION_JOBQ_SECRETS": "c"}
	j := newJob("r", "q")
	j.Options.Secrets = "a@refs/heads/x"
	got, err := Grants(func(k string) string { return env[k] })(context.Background(), j)
	if err != nil || got != "a@refs/heads/x" {
		t.Fatalf("%q %v", got, err)
	}
	j.Options.Secrets = ""
	if got, err := Grants(func(k string) string { return env[k] })(context.Background(), j); err != nil || got != "" {
		t.Fatalf("%q %v", got, err)
	}
}

// With a gitolite, the grants are its options as they are when the job
// starts, asked only for a job queued while the repository had grants.
func TestGrantsFromGitolite(t *testing.T) {
	home, bin := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(home, ".gitolite.rc"), nil, 0o600)
	calls := filepath.Join(t.TempDir(), "calls")
	script := "#!/bin/sh\necho \"$*\" >>" + calls + "\nprintf 'r\\tgitolite-options.ENV.JOBQ_SECRETS\\tkey@refs/heads/master\\nother\\tgitolite-options.ENV.JOBQ_SECRETS\\tnot-r\\n'\n"
	if err := os.WriteFile(filepath.Join(bin, "gitolite"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOME": home, "GL_BINDIR": bin, "JOBQ_SECRETS": "from-env"}
	grants := Grants(func(k string) string { return env[k] })
	j := newJob("r", "q")
	if got, err := grants(context.Background(), j); err != nil || got != "" {
		t.Fatalf("a job queued without grants: %q %v", got, err)
	}
	if _, err := os.Stat(calls); !os.IsNotExist(err) {
		t.Fatal("gitolite was asked for a job queued without grants")
	}
	j.Options.Secrets = "stale@refs/heads/master" // as the push had it
	if got, err := grants(context.Background(), j); err != nil || got != "key@refs/heads/master" {
		t.Fatalf("grants %q %v", got, err)
	}
	if b, _ := os.ReadFile(calls); string(b) != "git-config -r r ^gitolite-options\\.ENV\\.JOBQ_SECRETS$\n" {
		t.Errorf("gitolite called with %q", b)
	}
}

// secretAdopter runs a job until the worker stops, then on adoption
// records the secrets it was handed.
type secretAdopter struct {
	started chan struct{}
	adopted []runner.Secret
}

func (a *secretAdopter) Run(ctx context.Context, j runner.Job) (int, error) {
	j.Log.WriteString("partial line")
	close(a.started)
	<-ctx.Done()
	return 0, runner.ErrDetached
}
func (a *secretAdopter) Adopt(ctx context.Context, j runner.Job, notice string) (int, error) {
	a.adopted = j.Secrets
	return 0, nil
}
func (a *secretAdopter) Cleanup(context.Context, runner.Job) error { return nil }

// Adopting, the worker reads the grants and values again, for the runner
// to mask, and writes nothing into the job's log (its output goes on
// there); a value gone from the store meanwhile is the worker's log's
// concern, not a reason to stop a running job.
func TestAdoptedJobSecrets(t *testing.T) {
	s := newStore(t)
	store := secret.Open(s.Dir())
	store.Set("key_a", []byte("value-a-1"))
	store.Set("key_b", []byte("value-b-1"))
	j := newJob("r", "q")
	j.Ref = "refs/heads/master"
	s.Enqueue(j)
	a := &secretAdopter{started: make(chan struct{})}
	var logged []string
	w := &Worker{Store: s, Runners: map[string]runner.Runner{"exec": a}, Poll: 10 * time.Millisecond,
		Grants: grantsOf("key_a:KEY_A key_b@refs/heads/master"),
		Logf:   func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Drain(ctx, "q", false) }()
	<-a.started
	stop()
	<-done
	before, _ := os.ReadFile(s.LogPath("r", 0))
	store.Set("key_a", []byte("value-a-2")) // rotated while no worker watched
	store.Remove("key_b")
	if err := w.Drain(context.Background(), "q", false); err != nil {
		t.Fatal(err)
	}
	want := []runner.Secret{{Name: "key_a", Var: "KEY_A", Value: []byte("value-a-2")}}
	if !reflect.DeepEqual(a.adopted, want) {
		t.Errorf("adopted with %+v, want %+v", a.adopted, want)
	}
	after, _ := os.ReadFile(s.LogPath("r", 0))
	if rest := strings.TrimPrefix(string(after), string(before)); strings.Contains(rest, "secret") {
		t.Errorf("the adoption wrote about secrets into the job's log:\n%s", rest)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "secret key_b is granted to this ref (JOBQ_SECRETS) but not in the store") {
		t.Errorf("worker's log: %q", logged)
	}
	if j, _ := s.Job("r", 0); j.State != queue.Succeeded {
		t.Errorf("job %s %s", j.State, j.Error)
	}
}
