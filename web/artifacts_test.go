package web

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/jobq/jobq/queue"
)

// withArtifacts gives job id of repo the artifacts files.
func (f *fixture) withArtifacts(repo string, id int64, files map[string]string) {
	f.t.Helper()
	j, err := f.store.Job(repo, id)
	if err != nil {
		f.t.Fatal(err)
	}
	dir, err := f.store.NewArtifacts(j)
	if err != nil {
		f.t.Fatal(err)
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, []byte(data), 0o600)
	}
	if err := f.store.PublishArtifacts(j); err != nil {
		f.t.Fatal(err)
	}
}

// An artifact is served as an attachment, as bytes, sandboxed; the job
// page links each with its size.
func TestArtifactServed(t *testing.T) {
	f := newFixture(t)
	id := f.job("pub", "refs/heads/master", queue.Succeeded, "log\n")
	html := `<script>document.title="ran"</script>`
	f.withArtifacts("pub", id, map[string]string{"report/index.html": html, "dist/ä b.tar.gz": "tgz"})

	got := f.get("", "/pub/0/artifact?path=report/index.html")
	if got.code != 200 || got.body != html {
		t.Fatalf("artifact: %d %q", got.code, got.body)
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": "sandbox; default-src 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Content-Type":            "application/octet-stream",
		"Content-Disposition":     `attachment; filename=index.html`,
	} {
		if v := got.header.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}
	if cd := f.get("", "/pub/0/artifact?path=dist/%C3%A4%20b.tar.gz").header.Get("Content-Disposition"); cd != `attachment; filename*=utf-8''%C3%A4%20b.tar.gz` {
		t.Errorf("Content-Disposition of a name not ASCII: %q", cd)
	}
	list := f.get("", "/pub/0/artifact")
	if list.code != 200 || !strings.Contains(list.body, `"path": "report/index.html",`) || !strings.Contains(list.body, `"size": 37`) {
		t.Errorf("list: %d %s", list.code, list.body)
	}
	page := f.get("", "/pub/0")
	for _, want := range []string{`<ul class="artifacts" id="artifacts">`,
		`<a href="/pub/0/artifact?path=report%2Findex.html" download>report/index.html</a> <span class="note">37 bytes</span>`,
		`<a href="/pub/0/artifact?path=dist%2F%C3%A4&#43;b.tar.gz" download>dist/ä b.tar.gz</a>`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("job page lacks %s:\n%s", want, page.body)
		}
	}
	// A job without artifacts has no such block.
	f.job("pub", "refs/heads/master", queue.Succeeded, "log\n")
	if page := f.get("", "/pub/1"); strings.Contains(page.body, "artifacts") {
		t.Errorf("a job without artifacts lists some:\n%s", page.body)
	}
}

// Artifacts answer as everything else does: what the visitor may not
// read, what does not exist and what tries to climb out get the one 404,
// byte for byte.
func TestArtifactNotFoundIsOneAnswer(t *testing.T) {
	f := newFixture(t)
	f.withArtifacts("pub", f.job("pub", "refs/heads/master", queue.Succeeded, "log\n"), map[string]string{"a.txt": "a"})
	f.withArtifacts("secret", f.job("secret", "refs/heads/master", queue.Succeeded, "log\n"), map[string]string{"key.txt": "secret"})
	want := f.get("", "/nope/")
	for _, c := range []struct{ user, target string }{
		// A reader of pub guessing at secret's.
		{"", "/secret/0/artifact?path=key.txt"}, {"", "/secret/0/artifact"}, {"bob", "/secret/0/artifact?path=key.txt"},
		{"", "/secret/1/artifact?path=key.txt"}, {"", "/nope/0/artifact?path=key.txt"},
		// Paths that climb out, or name what is not an artifact.
		{"", "/pub/0/artifact?path=../job.json"}, {"", "/pub/0/artifact?path=../../secret/0/artifacts/key.txt"},
		{"", "/pub/0/artifact?path=/etc/passwd"}, {"", "/pub/0/artifact?path=."}, {"", "/pub/0/artifact?path="},
		{"", "/pub/0/artifact?path=nope"}, {"", "/pub/7/artifact?path=a.txt"}, {"", "/pub/0/artifact/"},
		{"", "/pub/0/artifact?path=a.txt%00"},
	} {
		got := f.get(c.user, c.target)
		if got.code != want.code || got.body != want.body || !reflect.DeepEqual(got.header, want.header) {
			t.Errorf("%s as %q: %d %v %q\nwant the missing repository's answer", c.target, c.user, got.code, got.header, got.body)
		}
	}
	if got := f.get("alice", "/secret/0/artifact?path=key.txt"); got.code != 200 || got.body != "secret" {
		t.Errorf("alice: %d %q", got.code, got.body)
	}
}
