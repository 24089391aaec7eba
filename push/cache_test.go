package push

import (
	"slices"
	"strings"
	"testing"
)

func TestParseCacheOptions(t *testing.T) {
	tests := []struct {
		name, cache, protected, size string
		paths                        []string
		nowait                       bool
		wantErr                      string
	}{
		{name: "two paths", cache: "/root/.cache /source/node_modules", paths: []string{"/root/.cache", "/source/node_modules"}},
		{name: "nowait", cache: "nowait /root/.cache", paths: []string{"/root/.cache"}, nowait: true},
		{name: "protected and size", cache: "/c", protected: "refs/heads/release/*", size: "2g", paths: []string{"/c"}},
		{name: "empty is none", cache: "  "},
		// Hostile values: each its one line, and no job.
		{name: "relative", cache: "root/.cache", wantErr: `neither an absolute path nor nowait`},
		{name: "dot dot", cache: "/root/../etc", wantErr: "not a clean absolute path"},
		{name: "trailing dot dot", cache: "/root/..", wantErr: "not a clean absolute path"},
		{name: "trailing slash", cache: "/root/", wantErr: "not a clean absolute path"},
		{name: "double slash", cache: "//root", wantErr: "not a clean absolute path"},
		{name: "root", cache: "/", wantErr: "the container's root or its /source"},
		{name: "source itself", cache: "/source", wantErr: "the container's root or its /source"},
		{name: "proc", cache: "/proc", wantErr: "cannot be in /proc"},
		{name: "under proc", cache: "/proc/self/root", wantErr: "cannot be in /proc"},
		{name: "sys", cache: "/sys/fs", wantErr: "cannot be in /sys"},
		{name: "dev", cache: "/dev", wantErr: "cannot be in /dev"},
		{name: "secrets", cache: "/run/secrets/x", wantErr: "cannot be in /run/secrets"},
		{name: "duplicate", cache: "/c /c", wantErr: "names /c twice"},
		{name: "nested", cache: "/c /c/d", wantErr: "nests /c and /c/d"},
		{name: "nested reversed", cache: "/c/d /c", wantErr: "nests /c/d and /c"},
		{name: "too many", cache: "/a /b /c /d /e /f /g /h /i", wantErr: "names 9 paths: at most 8"},
		{name: "odd characters", cache: "/a,b", wantErr: `with ','`},
		{name: "colon", cache: "/a:/b", wantErr: `with ':'`},
		{name: "too long", cache: "/" + strings.Repeat("a", 300), wantErr: "at most 200"},
		{name: "nowait alone", cache: "nowait", wantErr: "names no path"},
		{name: "unknown word", cache: "/c fast", wantErr: `holds "fast"`},
		{name: "protected excludes only", cache: "/c", protected: "!refs/heads/dev", wantErr: "JOBQ_CACHE_PROTECTED"},
		{name: "protected bad pattern", cache: "/c", protected: "refs/***", wantErr: "JOBQ_CACHE_PROTECTED"},
		{name: "size zero", cache: "/c", size: "0", wantErr: "JOBQ_CACHE_SIZE"},
		{name: "size words", cache: "/c", size: "big", wantErr: "JOBQ_CACHE_SIZE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"JOBQ_COMMAND": "img", "JOBQ_CACHE": tt.cache}
			if tt.protected != "" {
				env["JOBQ_CACHE_PROTECTED"] = tt.protected
			}
			if tt.size != "" {
				env["JOBQ_CACHE_SIZE"] = tt.size
			}
			o, err := ParseOptions(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, "repo")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want one line with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(o.Cache, tt.paths) || o.CacheNoWait != tt.nowait {
				t.Errorf("Cache = %q nowait %v, want %q %v", o.Cache, o.CacheNoWait, tt.paths, tt.nowait)
			}
			if tt.protected != "" && o.CacheProtected != tt.protected {
				t.Errorf("CacheProtected = %q", o.CacheProtected)
			}
			if tt.size == "2g" && o.CacheSize != 2<<30 {
				t.Errorf("CacheSize = %d", o.CacheSize)
			}
		})
	}
}

func TestProtected(t *testing.T) {
	def, err := ParseProtected("")
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]bool{"refs/heads/master": true, "refs/heads/main": true, "refs/tags/v1": true, "refs/tags/a/b": true,
		"refs/heads/dev": false, "refs/heads/master2": false, "refs/heads/feature/master": false, "refs/merge-requests/1/head": false} {
		if got := def.Match(ref); got != want {
			t.Errorf("default protects %s: %v, want %v", ref, got, want)
		}
	}
}
