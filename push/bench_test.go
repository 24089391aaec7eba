package push

import (
	"strings"
	"testing"
)

func BenchmarkRefFilter(b *testing.B) {
	f, _ := ParseRefFilter("refs/heads/master refs/tags/** !refs/tags/wip-*")
	for b.Loop() {
		f.Match("refs/tags/release/" + strings.Repeat("v", 20))
	}
}

func BenchmarkParseOptions(b *testing.B) {
	env := map[string]string{"GL_OPTION_JOBQ_COMMAND": "docker.io/library/ubuntu make -f Makefile.ci deploy",
		"GL_OPTION_JOBQ_REF_FILTER": "refs/heads/master refs/tags/*", "GL_OPTION_JOBQ_TIMEOUT": "20m"}
	for b.Loop() {
		if _, err := ParseOptions(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, "r"); err != nil {
			b.Fatal(err)
		}
	}
}
