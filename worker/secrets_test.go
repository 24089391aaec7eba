package worker

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/jobq/jobq/internal/secret"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// secretRunner records the secrets each job was run with.
type secretRunner struct {
	mu  sync.Mutex
	got map[string][]runner.Secret // by ref
}

func (r *secretRunner) Run(ctx context.Context, j runner.Job) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[j.Ref] = j.Secrets
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
	return func(context.Context, string) (string, error) { return s, nil }
}

// A job gets the secrets its repository grants to its ref, as the store
// has them when it starts, and its log names what it got and what was
// withheld and why, never a value.
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
	r := &secretRunner{got: map[string][]runner.Secret{}}
	w := &Worker{Store: s, Runners: map[string]runner.Runner{"exec": r},
		Grants: grantsOf("deploy_key:DEPLOY_KEY@refs/heads/master tag_token@refs/tags/* all_refs")}
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
		{"gitolite failing", func(context.Context, string) (string, error) { return "", errors.New("gitolite: boom") },
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

// Without a gitolite, the worker's own JOBQ_SECRETS grants, never the
// GL_OPTION_JOBQ_SECRETS of the push whose hook started it.
func TestGrantsWithoutGitolite(t *testing.T) {
	env := map[string]string{"HOME": t.TempDir(), "JOBQ_SECRETS": "a@refs/heads/x", "GL_OPTION_JOBQ_SECRETS": "b"}
	got, err := Grants(func(k string) string { return env[k] })(context.Background(), "r")
	if err != nil || got != "a@refs/heads/x" {
		t.Fatalf("%q %v", got, err)
	}
}
