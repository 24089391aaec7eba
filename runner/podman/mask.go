package podman

import (
	"bytes"
	"io"

	"github.com/jobq/jobq/internal/secret"
)

// A job given secrets has its output masked (secret.Masker) on its way to
// the log, so the log no longer holds the container's output byte for
// byte, which adoption and resume count on (logstart: byte k of the
// container's log is byte START+k of the job's). What holds instead: the
// log holds, from START, a prefix of the masked output of the container's
// whole log, since a Masker writes only what no later output can change
// and holds back a possible start of a value (until Flush, which only the
// end of the output may call). So adoption and resume mask the container's
// log from its first byte with a new Masker and drop as many masked bytes
// as the log holds (skipWriter): the masked output is the same however its
// writes were split.

// maskStage is the masking between a job's output and its log.
type maskStage struct {
	m   *secret.Masker
	dst io.Writer // where the masker writes; finish changes it
	// tail keeps the last tailWindow bytes of output, unmasked, for the
	// check that the stream held all of it (tailHeld compares the end of
	// the container's log with it; the log's own end is masked).
	tail []byte
}

// newMaskStage masks values in what is written to it, into dst.
func newMaskStage(dst io.Writer, values [][]byte) *maskStage {
	s := &maskStage{dst: dst}
	s.m = secret.NewMasker(writerFunc(func(p []byte) (int, error) { return s.dst.Write(p) }), values)
	return s
}

func (s *maskStage) Write(p []byte) (int, error) {
	n, err := s.m.Write(p)
	s.keep(p[:n])
	return n, err
}

// keep appends p to the tail, keeping its last tailWindow bytes.
func (s *maskStage) keep(p []byte) {
	if len(p) >= tailWindow {
		s.tail = append(s.tail[:0], p[len(p)-tailWindow:]...)
		return
	}
	s.tail = append(s.tail, p...)
	if len(s.tail) > 2*tailWindow {
		s.tail = s.tail[:copy(s.tail, s.tail[len(s.tail)-tailWindow:])]
	}
}

// endsWith reports whether the output so far ends with tail.
func (s *maskStage) endsWith(tail []byte) bool { return bytes.HasSuffix(s.tail, tail) }

// finish writes what the masker holds back, masked, to w: the output has
// ended, and all of it came.
func (s *maskStage) finish(w io.Writer) error {
	s.dst = w
	return s.m.Flush()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// skipWriter drops the first n bytes written to it and writes the rest to
// w.
type skipWriter struct {
	w io.Writer
	n int64
}

func (s *skipWriter) Write(p []byte) (int, error) {
	if s.n >= int64(len(p)) {
		s.n -= int64(len(p))
		return len(p), nil
	}
	rest := p[s.n:]
	s.n = 0
	if _, err := s.w.Write(rest); err != nil {
		return 0, err
	}
	return len(p), nil
}
