package queue

import (
	"os"

	"github.com/jobq/jobq/internal/atomicfile"
)

// writeFileAtomic replaces path with data so that a reader or a crash sees
// either the old content or the new, never a part.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.Write(path, data, perm, true)
}

// syncDir makes the entries of dir (a rename, a create, a remove) durable.
func syncDir(dir string) error { return atomicfile.SyncDir(dir) }
