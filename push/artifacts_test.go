package push

import (
	"strings"
	"testing"
	"time"
)

func TestArtifactsOptions(t *testing.T) {
	for _, tc := range []struct {
		name, artifacts, max string
		want                 []string
		bytes                int64
		files                int
		err                  string
	}{
		{name: "patterns", artifacts: " dist/*.tar.gz  report/** ", want: []string{"dist/*.tar.gz", "report/**"}},
		{name: "bound", artifacts: "out", max: "1g 5000", want: []string{"out"}, bytes: 1 << 30, files: 5000},
		{name: "size alone", artifacts: "out", max: "10m", want: []string{"out"}, bytes: 10 << 20, files: DefaultArtifactsFiles},
		{name: "absolute", artifacts: "/etc/passwd", err: `JOBQ_ARTIFACTS="/etc/passwd" holds "/etc/passwd", an absolute path`},
		{name: "dotdot", artifacts: "dist/../../home", err: `holds "dist/../../home", a ".." segment`},
		{name: "dotdot alone", artifacts: "..", err: `a ".." segment`},
		{name: "dot", artifacts: "./dist", err: `an empty or "." segment`},
		{name: "empty segment", artifacts: "dist//a", err: `an empty or "." segment`},
		{name: "control", artifacts: "a\x1b[2Jb", err: "not printable text"},
		{name: "malformed", artifacts: "dist/[a", err: "a malformed pattern"},
		{name: "star run", artifacts: "a**/b", err: `"**" within a name`},
		{name: "many stars", artifacts: "**/**/**/**/**/x", err: `more than 4 "**" segments`},
		{name: "too many", artifacts: strings.Repeat("a ", 33), err: "has 33 patterns, more than 32"},
		{name: "too long", artifacts: strings.Repeat("a", 1025), err: "a pattern over 1024 bytes"},
		{name: "max words", artifacts: "a", max: "1m 2 3", err: `JOBQ_ARTIFACTS_MAX="1m 2 3" is not SIZE [FILES]`},
		{name: "max size", artifacts: "a", max: "lots", err: `"lots" is not a size`},
		{name: "max zero", artifacts: "a", max: "0", err: `"0" is not a size`},
		{name: "max files", artifacts: "a", max: "1m 0", err: `"0" is not a count of files`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"JOBQ_COMMAND": "img true", "GL_OPTION_JOBQ_ARTIFACTS": tc.artifacts}
			if tc.max != "" {
				env["GL_OPTION_JOBQ_ARTIFACTS_MAX"] = tc.max
			}
			o, err := ParseOptions(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, "r")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want one line containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(o.Artifacts, "|") != strings.Join(tc.want, "|") || o.ArtifactsBytes != tc.bytes || o.ArtifactsFiles != tc.files {
				t.Errorf("got %q %d %d, want %q %d %d", o.Artifacts, o.ArtifactsBytes, o.ArtifactsFiles, tc.want, tc.bytes, tc.files)
			}
			b, f := ArtifactsLimits(o)
			if tc.bytes == 0 && (b != DefaultArtifactsBytes || f != DefaultArtifactsFiles) {
				t.Errorf("limits %d %d, want the defaults", b, f)
			}
		})
	}
}

func TestMatchArtifact(t *testing.T) {
	for _, tc := range []struct {
		p, name string
		want    bool
	}{
		{"dist/*.tar.gz", "dist/app.tar.gz", true},
		{"dist/*.tar.gz", "dist/sub/app.tar.gz", false},
		{"dist/*.tar.gz", "dist/app.zip", false},
		{"report/**", "report/a/b/c.html", true},
		{"report/**", "report/index.html", true},
		{"report/**", "reports/index.html", false},
		{"**/*.log", "a/b/c.log", true},
		{"**/*.log", "c.log", true},
		{"a/**/b", "a/b", true},
		{"a/**/b", "a/x/y/b", true},
		{"a/**/b", "a/x/y/c", false},
		{"out", "out", true},
		{"out", "out/x/y", true},
		{"out", "outside", false},
		{"out/app", "out/app", true},
		{"*.txt", "a.txt", true},
		{"*.txt", "d/a.txt", false},
		{"?", "a", true},
	} {
		if got := MatchArtifact(tc.p, tc.name); got != tc.want {
			t.Errorf("MatchArtifact(%q, %q) = %v, want %v", tc.p, tc.name, got, tc.want)
		}
	}
	for p, want := range map[string]string{"dist/*.tar.gz": "dist", "report/**": "report", "*.log": "", "out/app": "out/app", "a/b/[x]y": "a/b"} {
		if got := ArtifactBase(p); got != want {
			t.Errorf("ArtifactBase(%q) = %q, want %q", p, got, want)
		}
	}
}

// TestMatchArtifactBounded: a hostile name against the most "**" a
// pattern may hold takes time in the product of their segments, not
// exponential time.
func TestMatchArtifactBounded(t *testing.T) {
	name := strings.Repeat("a/", 2000) + "b"
	start := time.Now()
	if MatchArtifact("**/a/**/a/**/a/**/c", name) {
		t.Fatal("matched")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
}
