package podman

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"golang.org/x/sys/unix"
)

// A container's output comes live from its conmon's attach socket: for a
// local service straight from the socket (attachConmon, as the podman CLI
// reads it), for a remote one through the service (attach). The service
// sends it as one multiplexed stream: frames of an 8-byte header (stream 1
// or 2, three zero bytes, the size, big-endian) and the payload; readLogs
// reads the container's k8s-file log in the same form; demux unpacks both.

// openStream opens a created container's output before its start, and
// returns what copies it to w until it ends. local: the service's
// containers are on this host.
func openStream(conn context.Context, id string, local bool) (copyTo func(w io.Writer) error, err error) {
	if local {
		// Its error is the job's (a command that is not there): the
		// service's attach would only try it again.
		if err := containers.ContainerInit(conn, id, nil); err != nil {
			return nil, fmt.Errorf("start container: %w", err)
		}
		// Falls back to the service's stream where conmon's socket is not
		// to be had here (a service's socket mounted from elsewhere).
		if s, err := attachConmon(conn, id); err == nil {
			return func(w io.Writer) error {
				defer s.Close()
				return s.copyTo(w)
			}, nil
		}
	}
	body, err := attach(conn, id)
	if err != nil {
		return nil, fmt.Errorf("attach to container: %w", err)
	}
	return func(w io.Writer) error {
		defer body.Close()
		_, err := demux(&lazyReader{r: body}, 0, w)
		return err
	}, nil
}

// streamBuffer is what one read of a stream takes: many frames of the
// service's 8 KiB.
const streamBuffer = 64 << 10

// attach opens the attach stream of a created container, stdout and stderr
// and no logs. Once it returns, the service is attached (it answers after
// it has connected to conmon), so a start cannot lose output.
//
// Not the bindings' Attach: it reads the socket unbuffered, a header and
// then a frame at a time, and allocates every frame anew, so a job's log
// costs the worker more CPU than the service and conmon together; it also
// asks the service for a new connection's version and for the container's
// TTY setting (jobq's containers have none) first.
// Read through demux and a lazyReader, the stream costs a fraction of it.
func attach(ctx context.Context, id string) (io.ReadCloser, error) {
	c, err := bindings.GetClient(ctx)
	if err != nil {
		return nil, err
	}
	// A client of its own, to get at the socket the answer came on (as
	// the bindings' Attach does).
	t := c.Client.Transport.(*http.Transport).Clone()
	dial := t.DialContext
	var socket net.Conn
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		socket = conn
		return conn, err
	}
	ac := &bindings.Connection{URI: c.URI, Client: &http.Client{Transport: t}}
	params := url.Values{"stdout": {"true"}, "stderr": {"true"}, "stream": {"true"}}
	headers := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"tcp"}}
	resp, err := ac.DoRequest(ctx, nil, http.MethodPost, "/containers/%s/attach", params, headers, id)
	if err != nil {
		return nil, err
	}
	if !resp.IsSuccess() && !resp.IsInformational() {
		defer resp.Body.Close()
		return nil, resp.Process(nil)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return resp.Body, nil
	}
	// Upgraded: the socket is the stream's, and nothing of it is read yet
	// (the container has not started). Out of the runtime's poller, the
	// service's writes wake no one while the reader waits (lazyReader).
	if f, err := blocking(socket); err == nil {
		return f, nil
	}
	return resp.Body, nil
}

// attachConmon connects to the attach socket of an initialised
// container's conmon, in the container's bundle directory. Relayed by the
// service instead, the output costs the service CPU on the cores the job
// and conmon need, and the capture falls behind the podman CLI's, which
// reads the socket itself.
func attachConmon(conn context.Context, id string) (*conmonSocket, error) {
	data, err := containers.Inspect(conn, id, nil)
	if err != nil {
		return nil, err
	}
	if data.StaticDir == "" {
		return nil, errors.New("the service does not say where the container's bundle is")
	}
	return dialConmon(filepath.Join(data.StaticDir, "attach"))
}

// conmonSocket is a connection to conmon's attach socket (SOCK_SEQPACKET):
// each packet is a byte that names the stream (2 stdout, 3 stderr) and up
// to 8 KiB of output (conmon's STDIO_BUF_SIZE). conmon writes to it with
// blocking writes, so a slow reader slows the job and loses nothing; it
// closes it when it exits, after the container's last output.
type conmonSocket struct{ fd int }

// dialConmon connects to the attach socket at path. Through /proc/self/fd,
// as libpod does: the path is longer than a socket address can be.
func dialConmon(path string) (*conmonSocket, error) {
	dir, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("conmon's attach socket: %w", err)
	}
	defer unix.Close(dir)
	// Blocking, outside the runtime's poller, where each packet would
	// wake a thread (see blocking).
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("conmon's attach socket: %w", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: "/proc/self/fd/" + strconv.Itoa(dir)}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("conmon's attach socket: %w", err)
	}
	return &conmonSocket{fd: fd}, nil
}

func (s *conmonSocket) Close() error { return unix.Close(s.fd) }

// recv reads one packet into p, which must be larger than any packet:
// a read takes one packet, and drops what of it does not fit. A plain
// read, not recvmsg, which returns (and allocates) conmon's address with
// every packet.
//
// No waiting for more to gather, as lazyReader does for the service's
// stream: conmon's socket holds about a dozen packets before conmon
// blocks, and so does the job, so a reader that waited even 0.1 ms when the
// socket was empty would halve the capture, though it woke less often.
func (s *conmonSocket) recv(p []byte) (int, error) {
	for {
		n, err := unix.Read(s.fd, p)
		switch {
		case err == unix.EINTR:
		case err != nil:
			return 0, err
		case n == len(p):
			return 0, fmt.Errorf("a packet of %d bytes or more", len(p))
		default:
			return n, nil
		}
	}
}

// copyTo writes the output of the packets to w, stdout and stderr in the
// order they came, until conmon closes the socket.
func (s *conmonSocket) copyTo(w io.Writer) error {
	buf := make([]byte, streamBuffer)
	for {
		n, err := s.recv(buf)
		if err != nil {
			if errors.Is(err, unix.ECONNRESET) {
				return nil // conmon went, as libpod reads it
			}
			return fmt.Errorf("container output: %w", err)
		}
		if n == 0 {
			return nil
		}
		if buf[0] != 2 && buf[0] != 3 {
			return fmt.Errorf("container output: a packet of stream %d", buf[0])
		}
		if _, err := w.Write(buf[1:n]); err != nil {
			return err
		}
	}
}

// blocking makes conn a file read with blocking reads, outside the Go
// runtime's poller: there, each frame the service writes wakes the
// worker, even while no one reads.
func blocking(conn net.Conn) (*os.File, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("not a socket")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	if cerr := raw.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	conn.Close() // takes it out of the poller; fd keeps the socket
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "attach"), nil
}

// readLogs reads the container's log through the logs endpoint, in order,
// and writes to w the output after its first skip bytes; follow reads on
// until the container exits. It returns the bytes of output it saw.
func readLogs(ctx context.Context, id string, follow bool, skip int64, w io.Writer) (int64, error) {
	c, err := bindings.GetClient(ctx)
	if err != nil {
		return 0, err
	}
	params := url.Values{"stdout": {"true"}, "stderr": {"true"}, "follow": {strconv.FormatBool(follow)}}
	resp, err := c.DoRequest(ctx, nil, http.MethodGet, "/containers/%s/logs", params, nil, id)
	if err != nil {
		return 0, fmt.Errorf("container log: %w", err)
	}
	defer resp.Body.Close()
	if !resp.IsSuccess() {
		return 0, fmt.Errorf("container log: %w", resp.Process(nil))
	}
	return demux(resp.Body, skip, w)
}

// demux copies the payload of a multiplexed stream after its first skip
// bytes to w, and returns the payload bytes it read. Payloads go to w
// straight from the read buffer: nothing is allocated per frame.
func demux(r io.Reader, skip int64, w io.Writer) (int64, error) {
	br := bufio.NewReaderSize(r, streamBuffer)
	var hdr [8]byte
	var seen int64
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return seen, nil
			}
			return seen, fmt.Errorf("container output: %w", err)
		}
		size := int64(binary.BigEndian.Uint32(hdr[4:]))
		if hdr[0] != 1 && hdr[0] != 2 {
			// Stream 3 is the service's error message.
			msg, _ := br.Peek(int(min(size, 200)))
			return seen, fmt.Errorf("container output: a frame of stream %d: %q", hdr[0], msg)
		}
		for size > 0 {
			chunk, err := br.Peek(int(min(size, streamBuffer)))
			if len(chunk) == 0 {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return seen, fmt.Errorf("container output: %w", err)
			}
			out := chunk[min(int64(len(chunk)), max(skip-seen, 0)):]
			if len(out) > 0 {
				if _, err := w.Write(out); err != nil {
					return seen, err
				}
			}
			br.Discard(len(chunk))
			seen += int64(len(chunk))
			size -= int64(len(chunk))
		}
	}
}

// lazyReader waits a moment before a read that follows a short one. The
// service writes the stream a frame (8 KiB) at a time, and a reader that
// wakes for each pays a context switch each, more than the copy costs (in
// a VM, an interrupt to the other CPU as well): output that comes in a
// burst now arrives in reads of up to the whole buffer. Output that comes
// now and then is late by a millisecond at most; the log's writer flushes
// every 100 ms anyway.
type lazyReader struct {
	r     io.Reader
	short bool
}

func (l *lazyReader) Read(p []byte) (int, error) {
	if l.short {
		time.Sleep(time.Millisecond)
	}
	n, err := l.r.Read(p)
	l.short = n < len(p)/2
	return n, err
}
