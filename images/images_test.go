package images

import (
	"strings"
	"testing"
)

// Check refuses, before the service is asked, a reference that the
// bindings could read as an option and a policy that is none of the three.
func TestCheck(t *testing.T) {
	for _, row := range []struct {
		ref, policy, want string // want "": accepted
	}{
		{"docker.io/library/alpine:3", PullMissing, ""},
		{"localhost/jobq-test:latest", PullNever, ""},
		{"alpine@sha256:" + strings.Repeat("a", 64), PullAlways, ""},
		{"", PullMissing, `image "" is not an image reference`},
		{"-v=/:/host", PullMissing, `image "-v=/:/host" is not an image reference`},
		{"--privileged", PullAlways, `image "--privileged" is not an image reference`},
		{"alpine", "", `unknown pull policy ""`},
		{"alpine", "sometimes", `unknown pull policy "sometimes"`},
		{"alpine", "Always", `unknown pull policy "Always"`},
	} {
		err := Check(row.ref, row.policy)
		switch {
		case row.want == "" && err != nil:
			t.Errorf("Check(%q, %q): %v", row.ref, row.policy, err)
		case row.want != "" && (err == nil || err.Error() != row.want):
			t.Errorf("Check(%q, %q) = %v, want %q", row.ref, row.policy, err, row.want)
		}
	}
}
