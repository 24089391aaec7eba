package cache

import (
	"strings"
	"testing"
)

func TestScope(t *testing.T) {
	for _, tc := range []struct{ ref, protected, want string }{
		{"refs/heads/master", "", Main},
		{"refs/heads/main", "", Main},
		{"refs/tags/v1.2", "", Main},
		{"refs/heads/dev", "", "refs/heads/dev"},
		{"refs/heads/master", "refs/heads/release/*", "refs/heads/master"},
		{"refs/heads/release/1", "refs/heads/release/*", Main},
		// Patterns that do not parse protect nothing.
		{"refs/heads/master", "!refs/heads/master", "refs/heads/master"},
	} {
		if got := ScopeOf(tc.ref, tc.protected); got != tc.want {
			t.Errorf("ScopeOf(%q, %q) = %q, want %q", tc.ref, tc.protected, got, tc.want)
		}
	}
}

// Records are kept per repository, incarnation and scope: a repository
// made again (another incarnation) sees none of the old one's.
func TestStore(t *testing.T) {
	st := Open(t.TempDir())
	inc, other := strings.Repeat("a", 32), strings.Repeat("b", 32)
	for _, r := range []*Record{
		{Repo: "r", Incarnation: inc, Scope: "refs/heads/dev", Volumes: []Volume{{Path: "/c", Name: "v1", Size: 5}, {Path: "/d", Name: "v2", Size: 7}}},
		{Repo: "r", Incarnation: inc, Scope: Main, Volumes: []Volume{{Path: "/c", Name: "v0"}}},
		{Repo: "r", Incarnation: other, Scope: Main, Volumes: []Volume{{Path: "/c", Name: "old"}}},
		{Repo: "x/y", Incarnation: inc, Scope: Main},
	} {
		if err := st.Save(r); err != nil {
			t.Fatal(err)
		}
	}
	l, err := st.List("r", inc)
	if err != nil || len(l) != 2 || l[0].Scope != Main || l[1].Scope != "refs/heads/dev" || l[1].Size() != 12 || l[1].Volume("/d").Name != "v2" {
		t.Fatalf("List: %+v %v", l, err)
	}
	if r, err := st.Load("r", other, "refs/heads/dev"); r != nil || err != nil {
		t.Errorf("another incarnation's dev: %+v %v", r, err)
	}
	names, err := st.Named()
	if err != nil || len(names) != 4 || !names["old"] {
		t.Errorf("Named: %v %v", names, err)
	}
	if ok, err := st.Remove("r", inc, Main); !ok || err != nil {
		t.Errorf("Remove: %v %v", ok, err)
	}
	if ok, err := st.Remove("r", inc, Main); ok || err != nil {
		t.Errorf("Remove again: %v %v", ok, err)
	}
	// One holder at a time; a clean release forgets the holder, an
	// unclean one names it to the next, which may refuse to take it.
	a, err := st.Lock("r", inc, Main, "r/1", nil)
	if err != nil || a == nil {
		t.Fatal(a, err)
	}
	if b, err := st.Lock("r", inc, Main, "r/2", nil); b != nil || err != nil {
		t.Errorf("second holder: %v %v", b, err)
	}
	Unlock(a, false)
	var last string
	if b, err := st.Lock("r", inc, Main, "r/2", func(l string) bool { last = l; return false }); b != nil || err != nil || last != "r/1" {
		t.Errorf("after an unclean release: %v %v, last %q", b, err, last)
	}
	b, err := st.Lock("r", inc, Main, "r/2", func(l string) bool { last = l; return true })
	if b == nil || err != nil || last != "r/1" {
		t.Fatalf("taken over: %v %v, last %q", b, err, last)
	}
	Unlock(b, true)
	last = ""
	if c, _ := st.Lock("r", inc, Main, "r/3", func(l string) bool { last = l; return true }); c == nil || last != "" {
		t.Errorf("after a clean release, the last holder is %q", last)
	}
}
