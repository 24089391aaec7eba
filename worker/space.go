package worker

import (
	"fmt"
	"syscall"

	"github.com/jobq/jobq/push"
)

// FreeSpace is the space left to unprivileged users on dir's filesystem.
func FreeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// humanBytes shows a size to people, rounded down: 200 MiB.
func humanBytes(n int64) string {
	switch {
	case n >= 10<<30:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 10<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 10<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// lowSpace says why no job may start for lack of space on the data
// directory's filesystem, or "" if there is enough.
func (w *Worker) lowSpace() (string, error) {
	if w.MinFree <= 0 {
		return "", nil
	}
	free := FreeSpace
	if w.FreeSpace != nil {
		free = w.FreeSpace
	}
	n, err := free(w.Store.Dir())
	if err != nil {
		return "", err
	}
	if n >= w.MinFree {
		return "", nil
	}
	return fmt.Sprintf("%s free, JOBQ_MIN_FREE=%s", humanBytes(n), push.FormatBytes(w.MinFree)), nil
}
