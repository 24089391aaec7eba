package safetar

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entry is one tar entry of a test stream; data longer than size is a
// header that lies about its size.
type entry struct {
	name, link string
	typ        byte
	size       int64
	data       string
}

func tarOf(t testing.TB, es ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		size := e.size
		if size == 0 && typ == tar.TypeReg {
			size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Size: size, Mode: 0o644, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			d := e.data
			if int64(len(d)) > size {
				// A lying header: the bytes past its size go into the
				// stream raw, where the next header should be.
				tw.Write([]byte(d[:size]))
				tw.Flush()
				b.WriteString(d[size:])
				continue
			}
			tw.Write([]byte(d))
		}
	}
	tw.Close()
	return b.Bytes()
}

var testLimits = Limits{Files: 10, Bytes: 1 << 20, Entries: 100, Read: 4 << 20}

// tree lists what dir holds: name → "file:CONTENT" or "dir"; anything
// else fails the test.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		switch {
		case d.Type().IsRegular():
			b, _ := os.ReadFile(p)
			got[rel] = "file:" + string(b)
		case d.IsDir():
			got[rel] = "dir"
		default:
			t.Errorf("%s: a %v was written", rel, d.Type())
		}
		return nil
	})
	return got
}

func TestExtract(t *testing.T) {
	for _, tc := range []struct {
		name    string
		es      []entry
		lim     Limits
		want    map[string]string
		reports []string
		err     string // a substring of Extract's error, or "" for nil
	}{
		{
			name: "files and directories",
			es:   []entry{{name: "report/", typ: tar.TypeDir}, {name: "report/a.html", data: "<p>"}, {name: "./report/sub/b", data: "b"}},
			want: map[string]string{"report": "dir", "report/a.html": "file:<p>", "report/sub": "dir", "report/sub/b": "file:b"},
		},
		{
			name:    "dotdot",
			es:      []entry{{name: "../escape", data: "x"}, {name: "a/../../escape", data: "x"}, {name: "ok", data: "y"}},
			want:    map[string]string{"ok": "file:y"},
			reports: []string{`"../escape" left out: a name that is . or ..`, `"a/../../escape" left out: a name that is . or ..`},
		},
		{
			name:    "absolute",
			es:      []entry{{name: "/etc/cron.d/x", data: "x"}},
			want:    map[string]string{},
			reports: []string{`"/etc/cron.d/x" left out: an absolute name`},
		},
		{
			name: "symlink to home, then a file through it",
			es: []entry{{name: "home", typ: tar.TypeSymlink, link: os.Getenv("HOME")},
				{name: "home/.bashrc", data: "evil"}},
			// The file lands in a directory of the artifacts' own.
			want:    map[string]string{"home": "dir", "home/.bashrc": "file:evil"},
			reports: []string{`"home" left out: a symlink (only files are collected)`},
		},
		{
			name:    "hard link out",
			es:      []entry{{name: "passwd", typ: tar.TypeLink, link: "/etc/passwd"}, {name: "up", typ: tar.TypeLink, link: "../x"}},
			want:    map[string]string{},
			reports: []string{`"passwd" left out: a hard link: an absolute name`, `"up" left out: a hard link: a name that is . or ..`},
		},
		{
			name:    "hard link inside is a copy",
			es:      []entry{{name: "a", data: "same"}, {name: "b", typ: tar.TypeLink, link: "a"}, {name: "c", typ: tar.TypeLink, link: "never"}},
			want:    map[string]string{"a": "file:same", "b": "file:same"},
			reports: []string{`"c" left out: a hard link: a hard link to a file not collected`},
		},
		{
			name:    "devices and fifos",
			es:      []entry{{name: "null", typ: tar.TypeChar}, {name: "sda", typ: tar.TypeBlock}, {name: "fifo", typ: tar.TypeFifo}},
			want:    map[string]string{},
			reports: []string{`"null" left out: a device node`, `"sda" left out: a device node`, `"fifo" left out: a fifo`},
		},
		{
			name:    "names",
			es:      []entry{{name: "a\nb", data: "x"}, {name: "x/.git/config", data: "x"}, {name: "\xff", data: "x"}, {name: "a//b", data: "x"}},
			want:    map[string]string{},
			reports: []string{`"a\nb" left out: a name with control characters`, `"x/.git/config" left out: a .git entry`, `"\xff" left out: a name that is not UTF-8`, `"a//b" left out: an empty name`},
		},
		{
			name: "a name twice",
			es:   []entry{{name: "a", data: "first"}, {name: "a", data: "second"}},
			want: map[string]string{"a": "file:first"},
		},
		{
			name:    "over the size, judged by the header",
			es:      []entry{{name: "big", data: strings.Repeat("x", 100)}, {name: "small", data: "s"}},
			lim:     Limits{Files: 10, Bytes: 50, Entries: 100, Read: 1 << 20},
			want:    map[string]string{"small": "file:s"},
			reports: []string{`"big" left out: 100 bytes, over what is left of JOBQ_ARTIFACTS_MAX's 50 bytes`},
		},
		{
			name: "larger than its header says",
			es:   []entry{{name: "liar", size: 4, data: "1234" + strings.Repeat("\x00EVIL", 2000)}},
			lim:  Limits{Files: 10, Bytes: 50, Entries: 100, Read: 1 << 20},
			want: map[string]string{"liar": "file:1234"},
			err:  "the container's tar",
		},
		{
			name: "too many files",
			es:   []entry{{name: "1", data: "1"}, {name: "2", data: "2"}, {name: "3", data: "3"}},
			lim:  Limits{Files: 2, Bytes: 50, Entries: 100, Read: 1 << 20},
			want: map[string]string{"1": "file:1", "2": "file:2"},
			err:  `stopped: 2 files collected, the most JOBQ_ARTIFACTS_MAX allows; "3" and any after it left out`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := t.TempDir() // beside it: must stay empty
			var reports []string
			lim := tc.lim
			if lim == (Limits{}) {
				lim = testLimits
			}
			x, err := New(dir, Options{Limits: lim, Report: func(l string) { reports = append(reports, l) }})
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			err = x.Extract(context.Background(), bytes.NewReader(tarOf(t, tc.es...)))
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("err = %v, want %q", err, tc.err)
			}
			got := tree(t, dir)
			if len(got) != len(tc.want) {
				t.Errorf("wrote %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s: %q, want %q", k, got[k], v)
				}
			}
			if strings.Join(reports, "\n") != strings.Join(tc.reports, "\n") {
				t.Errorf("reports:\n%s\nwant:\n%s", strings.Join(reports, "\n"), strings.Join(tc.reports, "\n"))
			}
			if ents, _ := os.ReadDir(out); len(ents) != 0 {
				t.Errorf("written outside: %v", ents)
			}
		})
	}
}

// TestExtractPlantedSymlink: even a symlink already in the directory (a
// writer other than the Extractor) leads nothing out: os.Root refuses.
func TestExtractPlantedSymlink(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	os.Symlink(out, filepath.Join(dir, "out"))
	x, err := New(dir, Options{Limits: testLimits})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	err = x.Extract(context.Background(), bytes.NewReader(tarOf(t, entry{name: "out/x", data: "x"})))
	if err == nil {
		t.Error("wrote through a symlink")
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("written outside: %v", ents)
	}
}

// countingTar writes a tar of n empty files to w, counting the headers
// it got written before w refused.
func countingTar(w *io.PipeWriter, n int, written *int) {
	tw := tar.NewWriter(w)
	for i := range n {
		if err := tw.WriteHeader(&tar.Header{Name: "f" + strings.Repeat("x", 10) + string(rune('a'+i%26)) + "/" + itoa(i), Typeflag: tar.TypeReg, Mode: 0o644}); err != nil {
			w.CloseWithError(err)
			return
		}
		if err := tw.Flush(); err != nil {
			w.CloseWithError(err)
			return
		}
		*written = i + 1
	}
	w.CloseWithError(tw.Close())
}

func itoa(i int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		if i /= 10; i == 0 {
			return string(b)
		}
	}
}

// TestExtractMillionEntries: a tar of 10^6 entries is read no further than
// the entry bound: the writer is refused soon after.
func TestExtractMillionEntries(t *testing.T) {
	dir := t.TempDir()
	pr, pw := io.Pipe()
	written := 0
	done := make(chan struct{})
	go func() { countingTar(pw, 1_000_000, &written); close(done) }()
	x, err := New(dir, Options{Limits: Limits{Files: 1_000_000, Bytes: 1 << 30, Entries: 5000, Read: 1 << 30}, Select: func(n string) (string, bool) { return n, !strings.HasPrefix(n, "f") }})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	err = x.Extract(context.Background(), pr)
	pr.CloseWithError(errors.New("done"))
	<-done
	if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "read 5000 entries") {
		t.Fatalf("err = %v", err)
	}
	if written > 5100 {
		t.Errorf("the writer got %d headers through, want about 5000", written)
	}
}

// TestExtractReadBound: a huge entry that nothing selects is read no
// further than the read bound.
func TestExtractReadBound(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		tw.WriteHeader(&tar.Header{Name: "huge", Typeflag: tar.TypeReg, Size: 1 << 40, Mode: 0o644})
		_, err := io.Copy(tw, zeros{})
		pw.CloseWithError(err)
	}()
	x, err := New(t.TempDir(), Options{Limits: Limits{Files: 10, Bytes: 1 << 20, Entries: 10, Read: 8 << 20}, Select: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	err = x.Extract(context.Background(), pr)
	pr.CloseWithError(errors.New("done"))
	if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "read 8.0 MiB from the container") {
		t.Fatalf("err = %v", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestExtractRoom: Room stops the writing before the file that would not
// fit, whatever the limits allow.
func TestExtractRoom(t *testing.T) {
	dir := t.TempDir()
	x, err := New(dir, Options{Limits: testLimits, Room: func(n int64) string {
		if n > 3 {
			return "low on space"
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	err = x.Extract(context.Background(), bytes.NewReader(tarOf(t, entry{name: "a", data: "abc"}, entry{name: "b", data: "abcd"}, entry{name: "c", data: "c"})))
	if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), `low on space; "b" and any after it left out`) {
		t.Fatalf("err = %v", err)
	}
	if got := tree(t, dir); len(got) != 1 || got["a"] != "file:abc" {
		t.Errorf("wrote %v", got)
	}
}

// TestExtractReportsBounded: a million symlinks make maxReports lines, and
// a count.
func TestExtractReportsBounded(t *testing.T) {
	var es []entry
	for i := range 100 {
		es = append(es, entry{name: "l" + itoa(i), typ: tar.TypeSymlink, link: "/"})
	}
	n := 0
	x, _ := New(t.TempDir(), Options{Limits: Limits{Files: 10, Bytes: 10, Entries: 1000, Read: 1 << 20}, Report: func(string) { n++ }})
	defer x.Close()
	if err := x.Extract(context.Background(), bytes.NewReader(tarOf(t, es...))); err != nil {
		t.Fatal(err)
	}
	if n != maxReports || x.Result().Unreported != 100-maxReports {
		t.Errorf("%d reports, %d unreported", n, x.Result().Unreported)
	}
}
