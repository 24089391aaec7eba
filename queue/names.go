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

// escape maps a valid name to one directory entry.
func escape(name string) string {
	return strings.NewReplacer("%", "%25", "/", "%2F").Replace(name)
}

func unescape(s string) string {
	return strings.NewReplacer("%2F", "/", "%25", "%").Replace(s)
}
