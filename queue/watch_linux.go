package queue

import (
	"os"
	"syscall"
	"time"
)

// watcher wakes Follow when something in a job's directory changes (the
// log grows, the record is replaced), instead of polling: a synchronous
// push sees its job end at once.
type watcher struct {
	f   *os.File
	buf []byte
}

// watch watches dir; nil (and Follow polls) where inotify is unavailable.
func watch(dir string) *watcher {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil
	}
	const mask = syscall.IN_MODIFY | syscall.IN_CREATE | syscall.IN_MOVED_TO | syscall.IN_CLOSE_WRITE
	if _, err := syscall.InotifyAddWatch(fd, dir, mask); err != nil {
		syscall.Close(fd)
		return nil
	}
	// A non-blocking descriptor in an *os.File goes through the poller, so
	// reads honour deadlines.
	return &watcher{f: os.NewFile(uintptr(fd), "inotify"), buf: make([]byte, 4096)}
}

// wait returns after a change in the directory, or after d.
func (w *watcher) wait(d time.Duration) {
	if w == nil {
		time.Sleep(d)
		return
	}
	w.f.SetReadDeadline(time.Now().Add(d))
	w.f.Read(w.buf)
}

func (w *watcher) close() {
	if w != nil {
		w.f.Close()
	}
}
