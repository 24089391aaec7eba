package podman

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// frame is one frame of a multiplexed log stream.
func frame(stream byte, payload string) string {
	h := make([]byte, 8)
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(payload)))
	return string(h) + payload
}

// The log stream is read in order, both streams into one, bytes as they
// are (NUL, \r, no final newline), and the skip, which an adopting worker
// sets to the output the job's log holds, may end within a frame.
func TestDemux(t *testing.T) {
	stream := frame(1, "one\n") + frame(2, "err\r\x00") + frame(1, "") + frame(1, "two, no newline")
	all := "one\nerr\r\x00two, no newline"
	for _, tt := range []struct {
		name    string
		in      string
		skip    int64
		want    string
		seen    int64
		wantErr string
	}{
		{"all", stream, 0, all, int64(len(all)), ""},
		{"skip a frame", stream, 4, all[4:], int64(len(all)), ""},
		{"skip within a frame", stream, 6, all[6:], int64(len(all)), ""},
		{"skip everything", stream, int64(len(all)), "", int64(len(all)), ""},
		{"skip more than there is", stream, 1000, "", int64(len(all)), ""},
		{"empty", "", 0, "", 0, ""},
		{"cut within a header", stream[:3], 0, "", 0, "unexpected EOF"},
		{"cut within a frame", frame(1, "abcdef")[:11], 0, "abc", 3, "EOF"},
		{"an error frame", frame(3, "boom"), 0, "", 0, "stream 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			seen, err := demux(strings.NewReader(tt.in), tt.skip, &out)
			if out.String() != tt.want || seen != tt.seen {
				t.Errorf("got %q, seen %d; want %q, %d", out.String(), seen, tt.want, tt.seen)
			}
			if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}
