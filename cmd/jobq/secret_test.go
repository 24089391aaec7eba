package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/internal/secret"
)

// The hosting account sets, lists and removes secrets; a value goes in on
// stdin only and never comes out, in the table or the JSON.
func TestSecretCommands(t *testing.T) {
	home := t.TempDir()
	vars := map[string]string{"JOBQ_HOME": home, "HOME": t.TempDir(), "JOBQ_SECRETS": "deploy_key@refs/heads/master missing_key"}
	const value = "hunter2-is-the-value\nsecond-line-value\n"
	if code, out, stderr := invoke(t, vars, value, "secret", "set", "deploy_key"); code != 0 || out != "secret deploy_key set (39 bytes)\n" {
		t.Fatalf("set: exit %d %q %q", code, out, stderr)
	}
	if v, err := secret.Open(home).Get("deploy_key"); err != nil || string(v) != value {
		t.Fatalf("stored %q %v", v, err)
	}
	code, out, stderr := invoke(t, vars, "", "secret", "ls")
	if code != 0 || !strings.Contains(out, "deploy_key   39 bytes") || !strings.Contains(out, "*@refs/heads/master") ||
		!strings.Contains(out, "missing_key") || !strings.Contains(out, "not in the store") {
		t.Fatalf("ls: exit %d\n%s%s", code, out, stderr)
	}
	code, js, _ := invoke(t, vars, "", "secret", "ls", "--json")
	var rows []secretInfo
	if err := json.Unmarshal([]byte(js), &rows); code != 0 || err != nil || len(rows) != 2 || rows[0].Name != "deploy_key" || rows[0].Size != 39 || rows[1].Size != -1 {
		t.Fatalf("ls --json: exit %d %v\n%s", code, err, js)
	}
	for _, o := range []string{out, js} {
		if strings.Contains(o, "hunter2") || strings.Contains(o, "second-line") {
			t.Fatalf("a value is shown:\n%s", o)
		}
	}
	if code, out, _ := invoke(t, vars, "", "secret", "rm", "deploy_key"); code != 0 || out != "secret deploy_key removed\n" {
		t.Fatalf("rm: exit %d %q", code, out)
	}
	if code, _, stderr := invoke(t, vars, "", "secret", "rm", "deploy_key"); code != 1 || stderr != "jobq: no secret deploy_key in the store\n" {
		t.Fatalf("rm twice: exit %d %q", code, stderr)
	}
}

// Bad input is one line, exit 2, and stores nothing: a value on the
// command line (it would be in ps and the shell's history), a short or
// long value, a name that is a path.
func TestSecretSetRefuses(t *testing.T) {
	for _, tt := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"secret", "set", "name", "the-value-here"}},
		{"12345", []string{"secret", "set", "name"}},
		{strings.Repeat("x", secret.MaxLen+1), []string{"secret", "set", "name"}},
		{"value-123", []string{"secret", "set", "../name"}},
		{"value-123", []string{"secret", "set", "a/b"}},
		{"value-123", []string{"secret", "rm", "../../etc"}},
		{"", []string{"secret", "set"}},
	} {
		home := t.TempDir()
		code, out, stderr := invoke(t, map[string]string{"JOBQ_HOME": home, "HOME": t.TempDir()}, tt.stdin, tt.args...)
		if code != cli.Usage || out != "" || strings.Count(stderr, "\n") != 1 || strings.Contains(stderr, "the-value-here") {
			t.Errorf("%q: exit %d %q %q", tt.args, code, out, stderr)
		}
		if ents, _ := os.ReadDir(filepath.Join(home, "secrets")); len(ents) != 0 {
			t.Errorf("%q stored %v", tt.args, ents)
		}
	}
}

// Through gitolite (GL_USER set) jobq secret is refused as the host's
// other commands are, whatever its arguments, touching nothing.
func TestSecretRefusedThroughSSH(t *testing.T) {
	for _, args := range [][]string{
		{"secret", "ls"}, {"secret", "ls", "--json"}, {"secret", "set", "x"}, {"secret", "rm", "x"}, {"secret"},
		{"secret", "--help"}, {"secret", "set", "--help"}, {"--json", "secret", "ls"},
	} {
		home := filepath.Join(t.TempDir(), "data")
		vars := map[string]string{"JOBQ_HOME": home, "GL_USER": "bob", "HOME": t.TempDir()}
		code, out, stderr := invoke(t, vars, "stolen-value", args...)
		if code != cli.Usage || out != "" || !strings.Contains(stderr, "the host's own command, not available through ssh") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("jobq %q as bob: exit %d\n%s%s", args, code, out, stderr)
		}
		if _, err := os.Stat(home); !os.IsNotExist(err) {
			t.Errorf("jobq %q as bob created the data directory", args)
		}
	}
}

// The hook says on the push that JOBQ_SECRETS is malformed, and still
// queues the job (grants are read when it starts) and exits 0.
func TestHookChecksGrants(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no jobq-worker
	home := t.TempDir()
	vars := map[string]string{"JOBQ_HOME": home, "GL_REPO": "r", "GIT_DIR": t.TempDir(), "GL_OPTION_JOBQ_COMMAND": "img true",
		"JOBQ_ASYNC": "1", "GL_OPTION_JOBQ_SECRETS": "deploy_key:PATH@refs/heads/main"}
	code, _, stderr := invoke(t, vars, hookLine("refs/heads/main"), "post-receive")
	if code != 0 || !strings.Contains(stderr, "queued r job 0") ||
		!strings.Contains(stderr, `jobq: JOBQ_SECRETS entry "deploy_key:PATH@refs/heads/main": PATH is a variable the job needs for itself; the jobs of this repository will fail to start until it is fixed`) {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	vars["GL_OPTION_JOBQ_SECRETS"] = "deploy_key:DEPLOY_KEY@refs/heads/main"
	if code, _, stderr := invoke(t, vars, hookLine("refs/heads/main"), "post-receive"); code != 0 || strings.Contains(stderr, "JOBQ_SECRETS") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}
