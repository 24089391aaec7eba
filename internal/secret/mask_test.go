package secret

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// reference masks all of in at once, the plain way: at each place the
// longest pattern that matches there, else one byte.
func reference(in []byte, values [][]byte) []byte {
	pats := Patterns(values)
	var out []byte
	for i := 0; i < len(in); {
		best := 0
		for _, p := range pats {
			if len(p) > best && bytes.HasPrefix(in[i:], p) {
				best = len(p)
			}
		}
		if best > 0 {
			out = append(out, Mask...)
			i += best
		} else {
			out = append(out, in[i])
			i++
		}
	}
	return out
}

// maskChunks writes in through a Masker in the pieces cuts make, then
// flushes.
func maskChunks(t testing.TB, in []byte, values [][]byte, cuts ...int) []byte {
	var out bytes.Buffer
	m := NewMasker(&out, values)
	prev := 0
	for _, c := range cuts {
		if _, err := m.Write(in[prev:c]); err != nil {
			t.Fatal(err)
		}
		prev = c
	}
	if _, err := m.Write(in[prev:]); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestMasker(t *testing.T) {
	key := "-----BEGIN KEY-----\nAAAAB3NzaC1yc2EAAAADAQABAAABAQ\nC7vbqajDhA2b\n}\n-----END KEY-----\n"
	tests := []struct {
		name   string
		values []string
		in     string
		want   string
	}{
		{"none", nil, "hello secret\n", "hello secret\n"},
		{"once", []string{"hunter22"}, "pw=hunter22\n", "pw=***\n"},
		{"twice in one write", []string{"hunter22"}, "hunter22 and hunter22\n", "*** and ***\n"},
		{"back to back", []string{"hunter22"}, "hunter22hunter22hunter22", "*********"},
		{"at the very end, no newline", []string{"hunter22"}, "done: hunter22", "done: ***"},
		{"a prefix only", []string{"hunter22"}, "hunter2 hunter", "hunter2 hunter"},
		{"two values", []string{"tok-aaaaaa", "tok-bbbbbbbb"}, "tok-bbbbbbbb tok-aaaaaa tok-a", "*** *** tok-a"},
		{"one inside another: the longest", []string{"abcdef", "xxabcdefxx"}, "xxabcdefxx abcdef", "*** ***"},
		{"overlapping: the leftmost", []string{"abcdefgh", "efghijkl"}, "abcdefghijkl", "***ijkl"},
		{"multi-line whole, its last newline kept", []string{key}, "k=" + key + "ok", "k=***\nok"},
		{"a value's last newline kept", []string{"tok-123456\n"}, "tok-123456\ntok-123456\r\nx", "***\n***\r\nx"},
		{"multi-line, a line alone", []string{key}, "AAAAB3NzaC1yc2EAAAADAQABAAABAQ\n", "***\n"},
		{"multi-line, lines with CRLF", []string{key}, "-----BEGIN KEY-----\r\nAAAAB3NzaC1yc2EAAAADAQABAAABAQ\r\n", "***\r\n***\r\n"},
		{"multi-line, a short line is not masked alone", []string{key}, "}\n", "}\n"},
		{"a value with its newline: the line too", []string{"mytoken1\n"}, "curl -H mytoken1 x\n", "curl -H *** x\n"},
		{"binary", []string{"\x00\xff\x00\xff\x00\xff"}, "a\x00\xff\x00\xff\x00\xffb", "a***b"},
		{"short value whole", []string{"ab"}, "xabx", "x***x"},
		{"one-byte value", []string{"z"}, "zaz", "***a***"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var values [][]byte
			for _, v := range tt.values {
				values = append(values, []byte(v))
			}
			if got := string(reference([]byte(tt.in), values)); got != tt.want {
				t.Fatalf("reference: %q, want %q", got, tt.want)
			}
			in := []byte(tt.in)
			// Whole, then cut at every offset, then one byte at a time.
			if got := string(maskChunks(t, in, values)); got != tt.want {
				t.Errorf("whole: %q, want %q", got, tt.want)
			}
			for c := 0; c <= len(in); c++ {
				if got := string(maskChunks(t, in, values, c)); got != tt.want {
					t.Errorf("cut at %d: %q, want %q", c, got, tt.want)
				}
			}
			var every []int
			for c := 1; c < len(in); c++ {
				every = append(every, c)
			}
			if got := string(maskChunks(t, in, values, every...)); got != tt.want {
				t.Errorf("byte by byte: %q, want %q", got, tt.want)
			}
		})
	}
}

// The masker holds back only what may begin a value: a line that does not
// reaches the writer at once, without a Flush, for the live stream.
func TestMaskerHoldsBackOnlyAPossibleValue(t *testing.T) {
	var out bytes.Buffer
	m := NewMasker(&out, [][]byte{[]byte("s3cr3t-value"), bytes.Repeat([]byte("k"), MaxLen)})
	m.Write([]byte("step 1 done\n"))
	if out.String() != "step 1 done\n" {
		t.Fatalf("written before a flush: %q", out.String())
	}
	m.Write([]byte("token: s3cr3t"))
	if out.String() != "step 1 done\ntoken: " {
		t.Fatalf("written: %q, want the possible value held back", out.String())
	}
	m.Write([]byte("-value\n"))
	if out.String() != "step 1 done\ntoken: ***\n" {
		t.Fatalf("written: %q", out.String())
	}
	m.Write(bytes.Repeat([]byte("k"), MaxLen-1))
	if held := len(m.pending); held != MaxLen-1 {
		t.Fatalf("held %d bytes, want %d", held, MaxLen-1)
	}
	m.Write([]byte("k\n"))
	if !strings.HasSuffix(out.String(), "***\n") || len(m.pending) != 0 {
		t.Fatalf("written %q, held %d", out.String()[len(out.String())-10:], len(m.pending))
	}
}

type failWriter struct{}

func (failWriter) Write(p []byte) (int, error) { return 0, errors.New("disk full") }

// A writer's error reaches the caller, of Write or of Flush.
func TestMaskerWriteError(t *testing.T) {
	m := NewMasker(failWriter{}, [][]byte{[]byte("s3cr3t")})
	if _, err := m.Write([]byte("line\n")); err == nil {
		t.Fatal("no error")
	}
	m = NewMasker(failWriter{}, [][]byte{[]byte("s3cr3t")})
	if _, err := m.Write([]byte("s3c")); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(); err == nil {
		t.Fatal("no error from Flush")
	}
}

// FuzzMasker: however the output is cut into writes (at every offset,
// and at random places), the masker writes what the reference does with
// the whole output at once.
func FuzzMasker(f *testing.F) {
	f.Add([]byte("pw=hunter22 hunter22hunter22"), []byte("hunter22"), []byte("line-one\nline-two\n"), int64(1))
	f.Add([]byte("-----BEGIN\nabcdefgh\n}\n-----END\nabcdefgh"), []byte("-----BEGIN\nabcdefgh\n}\n-----END"), []byte("zz"), int64(2))
	f.Add([]byte("aaaaaaaaaaaaaaaaa"), []byte("aaaaaa"), []byte("aaaaaaaa"), int64(3))
	f.Fuzz(func(t *testing.T, in, v1, v2 []byte, seed int64) {
		if len(in) > 4096 || len(v1) > 512 || len(v2) > 512 {
			return
		}
		values := [][]byte{v1, v2}
		want := reference(in, values)
		for c := 0; c <= len(in); c++ {
			if got := maskChunks(t, in, values, c); !bytes.Equal(got, want) {
				t.Fatalf("cut at %d: %q, want %q", c, got, want)
			}
		}
		r := rand.New(rand.NewSource(seed))
		var cuts []int
		for c := 0; c < len(in); c += 1 + r.Intn(8) {
			cuts = append(cuts, c)
		}
		if got := maskChunks(t, in, values, cuts...); !bytes.Equal(got, want) {
			t.Fatalf("cuts %v: %q, want %q", cuts, got, want)
		}
	})
}

// benchValues are 20 secrets as a host might have them: tokens, passwords,
// and an ssh key of many lines.
func benchValues() [][]byte {
	r := rand.New(rand.NewSource(1))
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	word := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = b64[r.Intn(len(b64))]
		}
		return b
	}
	var vs [][]byte
	for i := 0; i < 19; i++ {
		vs = append(vs, word(12+r.Intn(40)))
	}
	key := []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n")
	for i := 0; i < 6; i++ {
		key = append(append(key, word(70)...), '\n')
	}
	vs = append(vs, append(key, "-----END OPENSSH PRIVATE KEY-----\n"...))
	return vs
}

// benchLog is build output: compiler lines, paths, hashes, numbers.
func benchLog(size int) []byte {
	r := rand.New(rand.NewSource(2))
	var b bytes.Buffer
	for b.Len() < size {
		switch r.Intn(4) {
		case 0:
			fmt.Fprintf(&b, "go: downloading example.com/mod/v%d v%d.%d.%d\n", r.Intn(5), r.Intn(3), r.Intn(40), r.Intn(20))
		case 1:
			fmt.Fprintf(&b, "ok  \tgithub.com/jobq/jobq/internal/pkg%d\t%d.%03ds\n", r.Intn(100), r.Intn(9), r.Intn(1000))
		case 2:
			fmt.Fprintf(&b, "#%d [build %d/%d] RUN apt-get install -y libfoo%d sha256:%016x%016x\n", r.Intn(30), r.Intn(9), r.Intn(9), r.Intn(9), r.Uint64(), r.Uint64())
		default:
			fmt.Fprintf(&b, "cc -O2 -Wall -c src/file_%d.c -o build/file_%d.o\n", r.Intn(500), r.Intn(500))
		}
	}
	return b.Bytes()[:size]
}

// BenchmarkCapture is a job's log capture as a worker does it: the job's
// output read from a pipe, 32 KiB at a time, and appended to a log file,
// with no secrets and with 20 given and masked. bench/run.sh runs it on
// 1 GiB (JOBQ_BENCH_CAPTURE bytes) and reports the ratio.
func BenchmarkCapture(b *testing.B) {
	size := 64 << 20
	if s := os.Getenv("JOBQ_BENCH_CAPTURE"); s != "" {
		fmt.Sscan(s, &size)
	}
	data := benchLog(8 << 20)
	for _, bb := range []struct {
		name   string
		values [][]byte
	}{{"none", nil}, {"20secrets", benchValues()}} {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				capture(b, data, size, bb.values)
			}
		})
	}
}

// capture copies size bytes of data, written into a pipe by another
// goroutine, into a fresh log file, through a Masker of values if any.
func capture(b *testing.B, data []byte, size int, values [][]byte) {
	b.StopTimer()
	f, err := os.Create(filepath.Join(b.TempDir(), "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.StartTimer()
	go func() {
		defer w.Close()
		for left := size; left > 0; {
			n := min(left, len(data))
			if _, err := w.Write(data[:n]); err != nil {
				return
			}
			left -= n
		}
	}()
	var dst io.Writer = f
	var m *Masker
	if values != nil {
		m = NewMasker(f, values)
		dst = m
	}
	buf := make([]byte, 32<<10)
	if _, err := io.CopyBuffer(struct{ io.Writer }{dst}, r, buf); err != nil {
		b.Fatal(err)
	}
	if m != nil {
		if err := m.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMask is the masker alone, writing to io.Discard.
func BenchmarkMask(b *testing.B) {
	data := benchLog(8 << 20)
	m := NewMasker(io.Discard, benchValues())
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for off := 0; off < len(data); off += 32 << 10 {
			m.Write(data[off:min(off+32<<10, len(data))])
		}
	}
}
