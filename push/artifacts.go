package push

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jobq/jobq/queue"
)

// Defaults and bounds of JOBQ_ARTIFACTS and JOBQ_ARTIFACTS_MAX.
const (
	// DefaultArtifactsBytes bounds the total size of a job's artifacts.
	DefaultArtifactsBytes = 100 << 20
	// DefaultArtifactsFiles bounds their count. A thousand is more than a
	// person pages through on the job's page, and with JOBQ_KEEP's 200
	// jobs it keeps a repository's artifacts to 200,000 inodes at most;
	// a job that wants more hands back a tar of its own.
	DefaultArtifactsFiles = 1000
	// maxArtifactPatterns bounds JOBQ_ARTIFACTS: every pattern is one
	// request to the archive endpoint after the job.
	maxArtifactPatterns = 32
	// maxPatternLen bounds one pattern (bytes), and maxDoubleStars its
	// "**" segments: a match costs the product of the pattern's and the
	// name's segments, no more.
	maxPatternLen  = 1024
	maxDoubleStars = 4
)

// parseArtifacts reads JOBQ_ARTIFACTS and JOBQ_ARTIFACTS_MAX into o.
func parseArtifacts(get func(string) (string, bool), o *queue.Options) error {
	bad := func(name, v, why string) error { return fmt.Errorf("%s=%q %s", name, v, why) }
	if v, ok := get("JOBQ_ARTIFACTS"); ok {
		pats := strings.Fields(v)
		if len(pats) > maxArtifactPatterns {
			return bad("JOBQ_ARTIFACTS", v, fmt.Sprintf("has %d patterns, more than %d", len(pats), maxArtifactPatterns))
		}
		for _, p := range pats {
			if why := badArtifactPattern(p); why != "" {
				return bad("JOBQ_ARTIFACTS", v, fmt.Sprintf("holds %q, %s", p, why))
			}
		}
		o.Artifacts = pats
	}
	if v, ok := get("JOBQ_ARTIFACTS_MAX"); ok && strings.TrimSpace(v) != "" {
		b, f, err := ParseArtifactsMax(v)
		if err != nil {
			return bad("JOBQ_ARTIFACTS_MAX", v, err.Error())
		}
		o.ArtifactsBytes, o.ArtifactsFiles = b, f
	}
	return nil
}

// ParseArtifactsMax reads JOBQ_ARTIFACTS_MAX: "SIZE [FILES]", a total
// size as ParseBytes reads it and, optionally, a count of files; what is
// not given keeps its default.
func ParseArtifactsMax(v string) (bytes int64, files int, err error) {
	w := strings.Fields(v)
	if len(w) == 0 || len(w) > 2 {
		return 0, 0, fmt.Errorf("is not SIZE [FILES] (like 100m or 1g 5000)")
	}
	bytes, err = ParseBytes(w[0])
	if err != nil || bytes <= 0 {
		return 0, 0, fmt.Errorf("is not SIZE [FILES]: %q is not a size (like 100m)", w[0])
	}
	files = DefaultArtifactsFiles
	if len(w) == 2 {
		n, err := strconv.Atoi(w[1])
		if err != nil || n < 1 || n > 1_000_000 {
			return 0, 0, fmt.Errorf("is not SIZE [FILES]: %q is not a count of files (1 to 1000000)", w[1])
		}
		files = n
	}
	return bytes, files, nil
}

// ArtifactsLimits are a job's bounds: its options', else the defaults.
func ArtifactsLimits(o queue.Options) (bytes int64, files int) {
	bytes, files = o.ArtifactsBytes, o.ArtifactsFiles
	if bytes <= 0 {
		bytes = DefaultArtifactsBytes
	}
	if files <= 0 {
		files = DefaultArtifactsFiles
	}
	return bytes, files
}

// badArtifactPattern says why p is not a pattern of paths under /source,
// or returns "".
func badArtifactPattern(p string) string {
	switch {
	case len(p) > maxPatternLen:
		return fmt.Sprintf("a pattern over %d bytes", maxPatternLen)
	case !utf8.ValidString(p) || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "not printable text"
	case strings.HasPrefix(p, "/"):
		return "an absolute path (patterns are relative to /source)"
	case strings.Contains(p, `\`):
		return `a "\" (patterns have no escapes)`
	}
	stars := 0
	for _, seg := range strings.Split(p, "/") {
		switch {
		case seg == "" || seg == ".":
			return `an empty or "." segment`
		case seg == "..":
			return `a ".." segment (patterns stay under /source)`
		case seg == "**":
			stars++
		case strings.Contains(seg, "**"):
			return `"**" within a name (it stands alone, as a whole segment)`
		}
		if _, err := path.Match(seg, ""); err != nil {
			return "a malformed pattern"
		}
	}
	if stars > maxDoubleStars {
		return fmt.Sprintf(`more than %d "**" segments`, maxDoubleStars)
	}
	return ""
}

// ArtifactBase is the directory under /source that pattern p can match
// in: its segments before the first with a wildcard ("" for /source
// itself); the whole pattern for one without any.
func ArtifactBase(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if strings.ContainsAny(s, "*?[") {
			return strings.Join(segs[:i], "/")
		}
	}
	return p
}

// MatchArtifact reports whether name, a path relative to /source, matches
// pattern p: "*", "?" and "[...]" within one name, as path.Match; a
// segment "**" stands for any number of directories, none included; a
// pattern without wildcards also matches everything under the directory
// it names. It takes time in the product of the pattern's and the name's
// segments, whatever they hold.
func MatchArtifact(p, name string) bool {
	ps, ns := strings.Split(p, "/"), strings.Split(name, "/")
	if ArtifactBase(p) == p && len(ns) > len(ps) {
		ns = ns[:len(ps)] // a literal directory: what lies under it
	}
	// ok[i][j]: ps[i:] matches ns[j:]; filled from the ends.
	ok := make([][]bool, len(ps)+1)
	for i := range ok {
		ok[i] = make([]bool, len(ns)+1)
	}
	ok[len(ps)][len(ns)] = true
	for i := len(ps) - 1; i >= 0; i-- {
		for j := len(ns); j >= 0; j-- {
			if ps[i] == "**" {
				ok[i][j] = ok[i+1][j] || j < len(ns) && ok[i][j+1]
				continue
			}
			if j < len(ns) && ok[i+1][j+1] {
				m, _ := path.Match(ps[i], ns[j])
				ok[i][j] = m
			}
		}
	}
	return ok[0][0]
}
