package worker

import (
	"fmt"
	"syscall"
	"time"

	"github.com/jobq/jobq/internal/human"
	"github.com/jobq/jobq/push"
)

// DefaultMinFreeInodes is the worker's default JOBQ_MIN_FREE_INODES: as
// many inodes as ext4 gives the 1 GiB JOBQ_MIN_FREE keeps by default (one
// per 16 KiB). A push of a small repository takes tens of them, a job's
// checkout one per file.
const DefaultMinFreeInodes = 65536

// spaceEvery is how often a running job's filesystems are looked at: a
// statfs costs about a microsecond, and a job that writes at a GiB a
// second uses a tenth of the default margin (half of JOBQ_MIN_FREE) in
// this time.
const spaceEvery = 100 * time.Millisecond

// Free is what a filesystem has left for unprivileged users.
type Free struct {
	Bytes int64
	// Inodes is the count of free inodes; < 0 when the filesystem does
	// not count them (btrfs, a tmpfs without nr_inodes: it reports none).
	Inodes int64
}

// FreeSpace is the space and inodes left on dir's filesystem.
func FreeSpace(dir string) (Free, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return Free{}, fmt.Errorf("free space of %s: %w", dir, err)
	}
	f := Free{Bytes: int64(st.Bavail) * st.Bsize, Inodes: int64(st.Ffree)}
	if st.Files == 0 {
		f.Inodes = -1
	}
	return f, nil
}

// lowSpace says why no job may start for lack of space or inodes on the
// filesystems jobs write to (the data directory's, then WatchDirs'), or
// "" if there is enough.
func (w *Worker) lowSpace() (string, error) {
	return w.shortOf(1)
}

// lowSpaceError is the cause that stops a running job whose filesystems
// run short: what spaceGone said.
type lowSpaceError string

func (e lowSpaceError) Error() string { return string(e) }

// spaceGone says why a running job is stopped: a filesystem jobs write to
// has less than half of JOBQ_MIN_FREE or JOBQ_MIN_FREE_INODES left. Half:
// a job that started had the minimum, so the other half is its margin,
// and what is left still takes the pushes and logs of the others.
func (w *Worker) spaceGone() string {
	why, err := w.shortOf(2)
	if err != nil {
		return "" // a filesystem that cannot be asked stops nothing
	}
	return why
}

// shortOf says which filesystem has less than 1/div of MinFree bytes or
// MinFreeInodes inodes free, and how much, or "" if none.
func (w *Worker) shortOf(div int64) (string, error) {
	if w.MinFree <= 0 && w.MinFreeInodes <= 0 {
		return "", nil
	}
	free := FreeSpace
	if w.FreeSpace != nil {
		free = w.FreeSpace
	}
	half := ""
	if div == 2 {
		half = "under half of "
	}
	for i, dir := range append([]string{w.Store.Dir()}, w.WatchDirs...) {
		f, err := free(dir)
		if err != nil {
			return "", err
		}
		// The data directory's is the filesystem named first and most:
		// it is said without its name.
		on := ""
		if i > 0 {
			on = " on " + dir
		}
		if w.MinFree > 0 && f.Bytes < w.MinFree/div {
			return fmt.Sprintf("%s free%s, %sJOBQ_MIN_FREE=%s", human.Bytes(f.Bytes), on, half, push.FormatBytes(w.MinFree)), nil
		}
		if w.MinFreeInodes > 0 && f.Inodes >= 0 && f.Inodes < w.MinFreeInodes/div {
			return fmt.Sprintf("%d inodes free%s, %sJOBQ_MIN_FREE_INODES=%d", f.Inodes, on, half, w.MinFreeInodes), nil
		}
	}
	return "", nil
}
