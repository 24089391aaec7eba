package push

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/queue"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		check   func(queue.Options) bool
		wantErr string
	}{
		{"defaults", map[string]string{"JOBQ_COMMAND": "img make"}, func(o queue.Options) bool {
			return o.Queue == "repo:repo" && o.Timeout == 600*time.Second && o.Runner == "podman" && o.Pull == "missing" &&
				o.PIDs == 1024 && o.Keep == 200 && !o.Async && o.RefFilter == DefaultRefFilter
		}, ""},
		// The podman runner's command is split once, here: the job keeps
		// the image and its arguments (Options.Argv) for the runner.
		{"podman argv", map[string]string{"JOBQ_COMMAND": `img sh -c "make ci"`}, func(o queue.Options) bool {
			return slices.Equal(o.Argv, []string{"img", "sh", "-c", "make ci"})
		}, ""},
		{"gitolite names", map[string]string{"GL_OPTION_JOBQ_COMMAND": "img", "GL_OPTION_JOBQ_QUEUE": "deploy", "GL_OPTION_JOBQ_ASYNC": "1"},
			func(o queue.Options) bool { return o.Command == "img" && o.Queue == "deploy" && o.Async }, ""},
		{"JOBQ_X wins over GL_OPTION_JOBQ_X", map[string]string{"JOBQ_COMMAND": "a", "GL_OPTION_JOBQ_COMMAND": "b", "GL_OPTION_JOBQ_TIMEOUT": "5", "JOBQ_TIMEOUT": "1m"},
			func(o queue.Options) bool { return o.Command == "a" && o.Timeout == time.Minute }, ""},
		{"timeout in seconds", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_TIMEOUT": "90"}, func(o queue.Options) bool { return o.Timeout == 90*time.Second }, ""},
		{"sizes and limits", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_MEMORY": "512m", "JOBQ_CPUS": "1.5", "JOBQ_PIDS": "0", "JOBQ_KEEP": "3"},
			func(o queue.Options) bool { return o.Memory == 512<<20 && o.CPUs == 1.5 && o.PIDs == 0 && o.Keep == 3 }, ""},
		{"async words", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_ASYNC": "Yes"}, func(o queue.Options) bool { return o.Async }, ""},
		{"exec runner keeps shell syntax", map[string]string{"JOBQ_COMMAND": "echo 'unterminated", "JOBQ_RUNNER": "exec"},
			func(o queue.Options) bool { return o.Runner == "exec" && o.Argv == nil }, ""},
		{"pass env", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_PASS_ENV": "TOKEN  HOME_URL"},
			func(o queue.Options) bool { return slices.Equal(o.PassEnv, []string{"TOKEN", "HOME_URL"}) }, ""},
		// The grants as the push had them; the worker checks them.
		{"secrets", map[string]string{"JOBQ_COMMAND": "a", "GL_OPTION_JOBQ_SECRETS": " key@refs/heads/master "}, func(o queue.Options) bool { return o.Secrets == "key@refs/heads/master" }, ""},
		{"no secrets", map[string]string{"JOBQ_COMMAND": "a", "GL_OPTION_JOBQ_SECRETS": "  "}, func(o queue.Options) bool { return o.Secrets == "" }, ""},
		// A repository named like a queue does not join it: only a queue
		// the administrator names is shared.
		{"own queue", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_QUEUE": " "}, func(o queue.Options) bool { return o.Queue == "repo:repo" }, ""},
		{"queue named as a repository's own", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_QUEUE": "repo:other"}, nil, `JOBQ_QUEUE="repo:other" is not a valid queue name`},
		{"no command", map[string]string{}, nil, "JOBQ_COMMAND is not set"},
		{"blank command", map[string]string{"JOBQ_COMMAND": "  "}, nil, "JOBQ_COMMAND is not set"},
		{"bad timeout", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_TIMEOUT": "abc"}, nil, `JOBQ_TIMEOUT="abc" is not a duration`},
		{"zero timeout", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_TIMEOUT": "0"}, nil, "JOBQ_TIMEOUT"},
		{"negative timeout", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_TIMEOUT": "-5s"}, nil, "JOBQ_TIMEOUT"},
		{"bad runner", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_RUNNER": "docker"}, nil, `JOBQ_RUNNER="docker"`},
		{"bad pull", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_PULL": "sometimes"}, nil, "JOBQ_PULL"},
		{"bad memory", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_MEMORY": "lots"}, nil, "JOBQ_MEMORY"},
		{"bad cpus", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_CPUS": "-1"}, nil, "JOBQ_CPUS"},
		{"bad pids", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_PIDS": "many"}, nil, "JOBQ_PIDS"},
		{"bad keep", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_KEEP": "0"}, nil, "JOBQ_KEEP"},
		{"bad queue", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_QUEUE": "../etc"}, nil, "JOBQ_QUEUE"},
		{"bad async", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_ASYNC": "maybe"}, nil, "JOBQ_ASYNC"},
		{"bad pass env", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_PASS_ENV": "A-B"}, nil, "JOBQ_PASS_ENV"},
		{"podman command unterminated", map[string]string{"JOBQ_COMMAND": "img 'sh"}, nil, "JOBQ_COMMAND"},
		{"bad ref filter", map[string]string{"JOBQ_COMMAND": "a", "JOBQ_REF_FILTER": "refs/***"}, nil, "JOBQ_REF_FILTER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			o, err := ParseOptions(lookup, "repo")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is more than one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(o) {
				t.Errorf("options %+v", o)
			}
		})
	}
}

func TestRefFilter(t *testing.T) {
	tests := []struct {
		filter string
		ref    string
		want   bool
	}{
		{"refs/heads/master refs/tags/*", "refs/heads/master", true},
		{"refs/heads/master refs/tags/*", "refs/heads/main", false},
		{"refs/heads/master refs/tags/*", "refs/tags/v1.0", true},
		{"refs/heads/master refs/tags/*", "refs/tags/a/b", false},
		{"", "refs/heads/a/b/c", true},
		{"", "refs/tags/v1", true},
		{"", "refs/notes/commits", false},
		{"refs/heads/**", "refs/heads/x", true},
		{"refs/**/main", "refs/main", true},
		{"refs/**/main", "refs/heads/main", true},
		{"refs/**/main", "refs/heads/a/main", true},
		{"refs/**/main", "refs/heads/xmain", false},
		{"refs/heads/release-*", "refs/heads/release-1.2", true},
		{"refs/heads/release-*", "refs/heads/release-1/x", false},
		{"refs/heads/*/done", "refs/heads/a/done", true},
		{"refs/heads/** !refs/heads/wip/**", "refs/heads/wip/x", false},
		{"refs/heads/** !refs/heads/wip/**", "refs/heads/work", true},
		{"!refs/tags/**", "refs/heads/main", true},
		{"!refs/tags/**", "refs/tags/v1", false},
		{"refs/heads/*", "refs/heads/", true},
	}
	for _, tt := range tests {
		f, err := ParseRefFilter(tt.filter)
		if err != nil {
			t.Fatalf("%q: %v", tt.filter, err)
		}
		if got := f.Match(tt.ref); got != tt.want {
			t.Errorf("%q matches %q: %v, want %v", tt.filter, tt.ref, got, tt.want)
		}
	}
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"img make -f Makefile.ci deploy", []string{"img", "make", "-f", "Makefile.ci", "deploy"}, false},
		{"  img   a  ", []string{"img", "a"}, false},
		{`img sh -c 'sh ci.sh'`, []string{"img", "sh", "-c", "sh ci.sh"}, false},
		{`img "a b" 'c "d"'`, []string{"img", "a b", `c "d"`}, false},
		{`img "a \" \\ \n"`, []string{"img", `a " \ \n`}, false},
		{`img a\ b`, []string{"img", "a b"}, false},
		{`img ''`, []string{"img", ""}, false},
		{`img x""y`, []string{"img", "xy"}, false},
		{"", nil, false},
		{`img 'open`, nil, true},
		{`img "open`, nil, true},
		{`img \`, nil, true},
	}
	for _, tt := range tests {
		got, err := SplitWords(tt.in)
		if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("SplitWords(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseUpdates(t *testing.T) {
	z, a, b := strings.Repeat("0", 40), strings.Repeat("a", 40), strings.Repeat("b", 40)
	us, err := ParseUpdates(strings.NewReader(z + " " + a + " refs/heads/new\n" + a + " " + z + " refs/heads/gone\n\n" + a + " " + b + " refs/tags/v1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != 3 || us[0].Deletion() || !us[1].Deletion() || us[2].Ref != "refs/tags/v1" {
		t.Errorf("%+v", us)
	}
	for _, bad := range []string{"garbage\n", a + " " + b + "\n", a + " " + b + " heads/x\n", "zz" + a[2:] + " " + b + " refs/heads/x\n", a + " " + b + " refs/x extra\n"} {
		if _, err := ParseUpdates(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzRefFilter(f *testing.F) {
	for _, s := range []string{"refs/heads/** refs/tags/*", "!refs/**/x", "refs/*/a/**/b", "***"} {
		f.Add(s, "refs/heads/a/b")
	}
	f.Fuzz(func(t *testing.T, filter, ref string) {
		fl, err := ParseRefFilter(filter)
		if err != nil {
			return
		}
		m := fl.Match(ref)
		// A filter of exactly the ref always matches it, unless it has
		// wildcards or the ref is excluded.
		if !strings.ContainsAny(ref, "*! \t\n\r") && ref != "" && !m {
			f2, _ := ParseRefFilter(ref)
			if !f2.Match(ref) {
				t.Errorf("%q does not match itself", ref)
			}
		}
	})
}

func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{"img a b", `img 'a b' "c\"d"`, `a\ b`, `"`, `'`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitWords(s)
		if err != nil {
			return
		}
		// Quoting each word and splitting again gives the same words.
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
		}
		again, err := SplitWords(strings.Join(quoted, " "))
		if err != nil || !slices.Equal(again, words) {
			t.Errorf("%q: %q, requoted %q: %v", s, words, again, err)
		}
	})
}

func FuzzParseOptions(f *testing.F) {
	f.Add("img make", "600", "1", "512m", "refs/heads/**")
	f.Add("img 'x", "abc", "maybe", "lots", "!")
	f.Fuzz(func(t *testing.T, cmd, timeout, async, mem, refs string) {
		env := map[string]string{"JOBQ_COMMAND": cmd, "JOBQ_TIMEOUT": timeout, "JOBQ_ASYNC": async, "JOBQ_MEMORY": mem, "JOBQ_REF_FILTER": refs}
		o, err := ParseOptions(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, "r")
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error %q", err)
			}
			return
		}
		if o.Timeout <= 0 || o.Memory < 0 {
			t.Errorf("accepted %+v", o)
		}
		if _, err := ParseRefFilter(o.RefFilter); err != nil {
			t.Errorf("accepted ref filter %q: %v", o.RefFilter, err)
		}
	})
}
