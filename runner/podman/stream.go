package podman

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/containers/podman/v5/pkg/bindings"
)

// A container's output comes from the service as one multiplexed stream:
// frames of an 8-byte header (stream 1 or 2, three zero bytes, the size,
// big-endian) and the payload. attach reads it live from the start,
// readLogs from the container's k8s-file log; demux unpacks both.

// streamBuffer is what one read of a stream takes: many frames of the
// service's 8 KiB.
const streamBuffer = 64 << 10

// attach opens the attach stream of a created container, stdout and stderr
// and no logs. Once it returns, the service is attached (it answers after
// it has connected to conmon), so a start cannot lose output.
//
// Not the bindings' Attach: it reads the socket unbuffered, a header and
// then a frame at a time, and allocates every frame anew, so a job's log
// cost the worker 5.5 s of CPU a GiB, more than the service and conmon
// together; it also asks the service for a new connection's version and
// for the container's TTY setting (jobq's containers have none) first.
func attach(ctx context.Context, id string) (io.ReadCloser, error) {
	c, err := bindings.GetClient(ctx)
	if err != nil {
		return nil, err
	}
	params := url.Values{"stdout": {"true"}, "stderr": {"true"}, "stream": {"true"}}
	headers := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"tcp"}}
	resp, err := c.DoRequest(ctx, nil, http.MethodPost, "/containers/%s/attach", params, headers, id)
	if err != nil {
		return nil, err
	}
	if !resp.IsSuccess() && !resp.IsInformational() {
		defer resp.Body.Close()
		return nil, resp.Process(nil)
	}
	return resp.Body, nil
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
