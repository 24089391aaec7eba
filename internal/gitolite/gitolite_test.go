package gitolite

import (
	"context"
	"testing"
)

// Names gitolite's sanity check dies on are refused before gitolite is
// asked: its death is not a refusal, and the web view would answer them
// with a 500 where every other unreadable name gets the one 404.
func TestValidRepo(t *testing.T) {
	for name, want := range map[string]bool{
		"app": true, "team/app": true, "a.b-c_d@e+f": true,
		"x.git": false, "a.git/b": false, "a/../b": false, "a/": false, "@all": false,
		"-q": false, "": false, "a b": false, ".hidden": false,
	} {
		if got := ValidRepo(name); got != want {
			t.Errorf("ValidRepo(%q) = %v, want %v", name, got, want)
		}
	}
	// No gitolite is run for such a name: "false" would fail the call.
	for _, name := range []string{"x.git", "a.git/b"} {
		ok, err := Access(context.Background(), "/bin/false", nil, name, "alice", "R", AnyRef)
		if ok || err != nil {
			t.Errorf("Access(%q): %v, %v; want a refusal", name, ok, err)
		}
	}
}
