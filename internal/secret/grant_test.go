package secret

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseGrants(t *testing.T) {
	gs, err := ParseGrants("deploy_key@refs/heads/master registry_token:REGISTRY_TOKEN@refs/tags/*  npm.token\tdeploy_key@refs/heads/release/**")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range gs {
		got = append(got, g.Name+"|"+g.Var+"|"+g.Pattern)
	}
	want := []string{"deploy_key||refs/heads/master", "registry_token|REGISTRY_TOKEN|refs/tags/*", "npm.token||", "deploy_key||refs/heads/release/**"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if gs, err := ParseGrants("  "); err != nil || len(gs) != 0 {
		t.Fatalf("empty: %v %v", gs, err)
	}
}

func TestParseGrantsRefuses(t *testing.T) {
	for _, s := range []string{
		"../x", "a/b", ".", "a@", "a@master", "a@heads/master", "a@refs/heads/***", "a@!",
		"a:", "a:1X", "a:X-Y", "a:X=Y", "a:PATH", "a:HOME", "a:LD_PRELOAD", "a:JOBQ_SECRETS_DIR",
		"a:GIT_DIR", "a:GL_USER", "a:BASH_FUNC_x%%", "a:CI", "a:IFS", "a:XDG_RUNTIME_DIR",
		"a:A@refs/heads/x a:B@refs/heads/y", "a:TOKEN b:TOKEN",
	} {
		if _, err := ParseGrants(s); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseGrants(%q): %v", s, err)
		}
	}
}

// Resolve gives a secret only to the refs its pattern selects, as
// JOBQ_REF_FILTER's matcher selects them: lookalike refs get nothing.
func TestResolve(t *testing.T) {
	gs, err := ParseGrants("deploy_key:DEPLOY_KEY@refs/heads/master tag_token@refs/tags/v* all_refs rel@refs/heads/release/** rel@refs/heads/hotfix")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ref      string
		given    []string
		withheld []string
	}{
		{"refs/heads/master", []string{"all_refs", "deploy_key:DEPLOY_KEY"}, []string{"rel", "tag_token"}},
		{"refs/heads/dev", []string{"all_refs"}, []string{"deploy_key", "rel", "tag_token"}},
		{"refs/heads/master-x", []string{"all_refs"}, []string{"deploy_key", "rel", "tag_token"}},
		{"refs/heads/master/x", []string{"all_refs"}, []string{"deploy_key", "rel", "tag_token"}},
		{"refs/heads/master/../x", []string{"all_refs"}, []string{"deploy_key", "rel", "tag_token"}},
		{"refs/heads/x/refs/heads/master", []string{"all_refs"}, []string{"deploy_key", "rel", "tag_token"}},
		{"refs/tags/master", []string{"all_refs"}, []string{"deploy_key", "rel", "tag_token"}},
		{"refs/heads/refs/heads/master", []string{"all_refs"}, []string{"deploy_key", "rel", "tag_token"}},
		{"refs/tags/v1.0", []string{"all_refs", "tag_token"}, []string{"deploy_key", "rel"}},
		{"refs/tags/v1/x", []string{"all_refs"}, []string{"deploy_key", "rel", "tag_token"}},
		{"refs/heads/release/1/2", []string{"all_refs", "rel"}, []string{"deploy_key", "tag_token"}},
		{"refs/heads/hotfix", []string{"all_refs", "rel"}, []string{"deploy_key", "tag_token"}},
	}
	for _, tt := range tests {
		given, withheld := Resolve(gs, tt.ref)
		var names []string
		for _, g := range given {
			n := g.Name
			if g.Var != "" {
				n += ":" + g.Var
			}
			names = append(names, n)
		}
		if !reflect.DeepEqual(names, tt.given) || !reflect.DeepEqual(withheld, tt.withheld) {
			t.Errorf("%s: given %q withheld %q, want %q %q", tt.ref, names, withheld, tt.given, tt.withheld)
		}
	}
}
