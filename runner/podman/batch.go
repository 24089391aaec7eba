package podman

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// batchWriter gathers the attach stream's small frames into large writes
// to the log, flushing at least every flushEvery, so that followers still
// see output live.
type batchWriter struct {
	mu         sync.Mutex
	w          *bufio.Writer
	err        error
	discarding bool // drop what comes: the job is over its log limit
	stop       chan struct{}
	done       chan struct{}
}

const flushEvery = 100 * time.Millisecond

func newBatchWriter(w io.Writer) *batchWriter {
	b := &batchWriter{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.mu.Lock()
				if b.err == nil {
					b.err = b.w.Flush()
				}
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *batchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if b.discarding {
		return len(p), nil
	}
	n, err := b.w.Write(p)
	b.err = err
	return n, err
}

// Close flushes what is left and stops the flusher.
func (b *batchWriter) Close() error {
	close(b.stop)
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = b.w.Flush()
	}
	return b.err
}

// discard drops what is written from now on, and what is buffered.
func (b *batchWriter) discard() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.discarding = true
	b.w.Reset(io.Discard)
}

// detach writes what is buffered, then drops what comes: the worker stops
// and leaves the job running, and the log is the next worker's.
func (b *batchWriter) detach() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = b.w.Flush()
	}
	b.discarding = true
	b.w.Reset(io.Discard)
}

// discarded reports whether output was dropped (the log limit, a detach).
func (b *batchWriter) discarded() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.discarding
}
