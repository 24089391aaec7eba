package web

import (
	"encoding/binary"
	"os"
	"sync"
	"syscall"
)

// Watcher tells followers when a job's directory changes (its log grows,
// its record is replaced), through one inotify descriptor for the whole
// process: a hundred browsers following one job cost one watch, not a
// hundred descriptors or a poll each (inotify instances are few: 128 per
// user by default).
type Watcher struct {
	mu   sync.Mutex
	f    *os.File
	fd   int
	err  error          // inotify is unavailable: followers poll
	wds  map[string]int // directory → watch descriptor
	subs map[int]map[*subscription]bool
}

type subscription struct {
	dir string
	c   chan struct{}
}

// start makes the inotify descriptor on first use.
func (w *Watcher) start() error {
	if w.f != nil || w.err != nil {
		return w.err
	}
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		w.err = err
		return err
	}
	// A non-blocking descriptor in an *os.File goes through the runtime's
	// poller: the reading goroutine parks instead of holding a thread.
	w.f, w.fd = os.NewFile(uintptr(fd), "inotify"), fd
	w.wds = map[string]int{}
	w.subs = map[int]map[*subscription]bool{}
	go w.read(w.f)
	return nil
}

// Subscribe returns a channel that receives (coalesced) after each change
// in dir, and a function that ends the subscription. ok is false where
// inotify is unavailable; the caller then polls.
func (w *Watcher) Subscribe(dir string) (c <-chan struct{}, cancel func(), ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.start(); err != nil {
		return nil, func() {}, false
	}
	wd, found := w.wds[dir]
	if !found {
		const mask = syscall.IN_MODIFY | syscall.IN_CREATE | syscall.IN_MOVED_TO | syscall.IN_CLOSE_WRITE
		var err error
		if wd, err = syscall.InotifyAddWatch(w.fd, dir, mask); err != nil {
			return nil, func() {}, false
		}
		w.wds[dir] = wd
		w.subs[wd] = map[*subscription]bool{}
	}
	s := &subscription{dir: dir, c: make(chan struct{}, 1)}
	w.subs[wd][s] = true
	return s.c, func() { w.unsubscribe(wd, s) }, true
}

func (w *Watcher) unsubscribe(wd int, s *subscription) {
	w.mu.Lock()
	defer w.mu.Unlock()
	subs := w.subs[wd]
	if subs == nil || !subs[s] {
		return
	}
	delete(subs, s)
	if len(subs) == 0 {
		delete(w.subs, wd)
		delete(w.wds, s.dir)
		syscall.InotifyRmWatch(w.fd, uint32(wd))
	}
}

// read wakes the subscribers of each event's directory.
func (w *Watcher) read(f *os.File) {
	buf := make([]byte, 64*1024)
	for {
		n, err := f.Read(buf)
		if err != nil {
			w.mu.Lock()
			w.err = err // from now on, followers poll
			for _, subs := range w.subs {
				for s := range subs {
					notify(s.c)
				}
			}
			w.mu.Unlock()
			return
		}
		w.mu.Lock()
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			wd := int(int32(binary.NativeEndian.Uint32(buf[off:])))
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			for s := range w.subs[wd] {
				notify(s.c)
			}
			off += syscall.SizeofInotifyEvent + nameLen
		}
		w.mu.Unlock()
	}
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default: // one wake-up pending is enough
	}
}
