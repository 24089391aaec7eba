package push

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/jobq/jobq/queue"
)

// Defaults and bounds of the cache options.
const (
	// DefaultCacheProtected are the refs whose jobs write a repository's
	// main cache: those a deploy is usually made from.
	DefaultCacheProtected = "refs/heads/master refs/heads/main refs/tags/**"
	// DefaultCacheSize bounds each cache.
	DefaultCacheSize = 1 << 30
	// MaxCachePaths bounds the paths of JOBQ_CACHE: each is a volume, a
	// mount and a lock per job.
	MaxCachePaths = 8
	// maxCachePath bounds one path's length.
	maxCachePath = 200
	// CacheNoWait is the flag word of JOBQ_CACHE that runs a job without
	// its cache when another job uses it, rather than wait.
	CacheNoWait = "nowait"
)

// reservedDirs are container paths a cache may neither be nor lie under:
// the kernel's and Podman's own file systems, which a volume would hide
// or which Podman refuses.
var reservedDirs = []string{"/proc", "/sys", "/dev", "/run/secrets"}

// parseCache reads JOBQ_CACHE, JOBQ_CACHE_PROTECTED and JOBQ_CACHE_SIZE
// into o.
func parseCache(get func(string) (string, bool), o *queue.Options) error {
	bad := func(name, v, why string) error { return fmt.Errorf("%s=%q %s", name, v, why) }
	if v, ok := get("JOBQ_CACHE"); ok {
		paths, nowait, err := ParseCachePaths(v)
		if err != nil {
			return bad("JOBQ_CACHE", v, err.Error())
		}
		o.Cache, o.CacheNoWait = paths, nowait
	}
	if v, ok := get("JOBQ_CACHE_PROTECTED"); ok && strings.TrimSpace(v) != "" {
		if _, err := ParseProtected(v); err != nil {
			return bad("JOBQ_CACHE_PROTECTED", v, err.Error())
		}
		o.CacheProtected = v
	}
	if v, ok := get("JOBQ_CACHE_SIZE"); ok && strings.TrimSpace(v) != "" {
		n, err := ParseBytes(v)
		if err != nil || n <= 0 {
			return bad("JOBQ_CACHE_SIZE", v, "is not a size (like 512m or 2g)")
		}
		o.CacheSize = n
	}
	return nil
}

// ParseCachePaths reads JOBQ_CACHE: absolute container paths, and the flag
// word nowait. Every path is clean (no "..", no "." and no trailing
// slash), of plain characters, neither the root, /source itself nor a
// kernel file system, neither a duplicate of nor nested in another, and
// there are at most MaxCachePaths: a hostile value gets its one-line
// reason, and no job.
func ParseCachePaths(v string) (paths []string, nowait bool, err error) {
	for _, w := range strings.Fields(v) {
		if !strings.HasPrefix(w, "/") {
			if w == CacheNoWait {
				nowait = true
				continue
			}
			return nil, false, fmt.Errorf("holds %q, neither an absolute path nor %s", w, CacheNoWait)
		}
		if err := checkCachePath(w); err != nil {
			return nil, false, err
		}
		for _, p := range paths {
			switch {
			case p == w:
				return nil, false, fmt.Errorf("names %s twice", w)
			case strings.HasPrefix(w, p+"/"), strings.HasPrefix(p, w+"/"):
				return nil, false, fmt.Errorf("nests %s and %s: a cache cannot hold another", p, w)
			}
		}
		paths = append(paths, w)
	}
	if len(paths) > MaxCachePaths {
		return nil, false, fmt.Errorf("names %d paths: at most %d", len(paths), MaxCachePaths)
	}
	if nowait && len(paths) == 0 {
		return nil, false, fmt.Errorf("names no path")
	}
	return paths, nowait, nil
}

func checkCachePath(p string) error {
	if len(p) > maxCachePath {
		return fmt.Errorf("holds a path of %d characters: at most %d", len(p), maxCachePath)
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+@", r)) {
			return fmt.Errorf("holds %s, with %s: only letters, digits and / . _ - + @", strconv.Quote(p), strconv.QuoteRune(r))
		}
	}
	if path.Clean(p) != p {
		return fmt.Errorf("holds %s, not a clean absolute path (no . or .. parts, no trailing /)", p)
	}
	if p == "/" || p == "/source" {
		return fmt.Errorf("holds %s: a cache cannot be the container's root or its /source", p)
	}
	for _, d := range reservedDirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return fmt.Errorf("holds %s: a cache cannot be in %s", p, d)
		}
	}
	return nil
}

// ParseProtected reads JOBQ_CACHE_PROTECTED: ref patterns as
// JOBQ_REF_FILTER's, "" for DefaultCacheProtected. Unlike a ref filter it
// must name the refs it protects: excluding patterns alone would protect
// every other ref, so they are refused.
func ParseProtected(v string) (RefFilter, error) {
	if strings.TrimSpace(v) == "" {
		v = DefaultCacheProtected
	}
	include := false
	for _, w := range strings.Fields(v) {
		include = include || !strings.HasPrefix(w, "!")
	}
	if !include {
		return RefFilter{}, fmt.Errorf("names no ref to protect (only excluding patterns)")
	}
	return ParseRefFilter(v)
}
