package queue

import (
	"fmt"
	"strings"
)

// maxName bounds repository and queue names; gitolite has no limit, but a
// directory entry does (255 bytes), and escaping can triple a character.
const maxName = 80

// ValidName reports whether name can be a repository or queue name: gitolite's
// repository name pattern, no "..", no empty path segment. Any name that
// passes maps to exactly one directory entry under the data directory.
func ValidName(name string) error {
	if name == "" || len(name) > maxName {
		return fmt.Errorf("invalid name %q: must be 1 to %d characters", name, maxName)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && strings.ContainsRune("-._@/+", r)
		if !ok {
			return fmt.Errorf("invalid name %q: only letters, digits and -._@/+ are allowed, and it must start with a letter or digit", name)
		}
	}
	if strings.Contains(name, "..") || strings.Contains(name, "//") || strings.HasSuffix(name, "/") {
		return fmt.Errorf("invalid name %q: no '..', '//' or trailing '/'", name)
	}
	return nil
}

// ownQueue begins the name of a repository's own queue, the one its jobs
// go to unless the administrator names one (JOBQ_QUEUE). No JOBQ_QUEUE
// can begin so (ValidName refuses ':'), so a repository joins another's
// queue only where the administrator named the same queue for both: not
// by being named like another repository's queue.
const ownQueue = "repo:"

// DefaultQueue is repository repo's own queue.
func DefaultQueue(repo string) string { return ownQueue + repo }

// ValidQueue reports whether q can be a queue's name: a name as
// ValidName takes it (JOBQ_QUEUE's), or a repository's own queue.
func ValidQueue(q string) error {
	if repo, ok := strings.CutPrefix(q, ownQueue); ok {
		if err := ValidName(repo); err != nil {
			return fmt.Errorf("invalid queue %q: %w", q, err)
		}
		return nil
	}
	return ValidName(q)
}

// escape maps a valid name to one directory entry. Every path of the
// store goes through it: most names need no change, and cost nothing.
func escape(name string) string {
	if !strings.ContainsAny(name, "%/") {
		return name
	}
	return strings.ReplaceAll(strings.ReplaceAll(name, "%", "%25"), "/", "%2F")
}

func unescape(s string) string {
	return strings.NewReplacer("%2F", "/", "%25", "%").Replace(s)
}
