package safetar

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// FuzzExtract: whatever the stream, only regular files and directories are
// written, all inside the directory, within the limits, and the directory
// beside it stays empty.
func FuzzExtract(f *testing.F) {
	f.Add(tarOf(f, entry{name: "a/b", data: "x"}, entry{name: "c", typ: tar.TypeLink, link: "a/b"}))
	f.Add(tarOf(f, entry{name: "../x", data: "x"}, entry{name: "/abs", data: "y"}))
	f.Add(tarOf(f, entry{name: "l", typ: tar.TypeSymlink, link: ".."}, entry{name: "l/x", data: "x"}))
	f.Add(tarOf(f, entry{name: "d", typ: tar.TypeChar}, entry{name: "p", typ: tar.TypeFifo}))
	f.Add(tarOf(f, entry{name: "liar", size: 2, data: "abcdefgh"}))
	f.Add([]byte("not a tar at all"))
	lim := Limits{Files: 5, Bytes: 1000, Entries: 50, Read: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		dir, out := filepath.Join(base, "in"), filepath.Join(base, "out")
		os.Mkdir(dir, 0o700)
		os.Mkdir(out, 0o700)
		x, err := New(dir, Options{Limits: lim})
		if err != nil {
			t.Fatal(err)
		}
		x.Extract(context.Background(), bytes.NewReader(data))
		x.Close()
		files, size := 0, int64(0)
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case d.Type().IsRegular():
				fi, _ := d.Info()
				files++
				size += fi.Size()
			case !d.IsDir():
				t.Errorf("%s: a %v was written", p, d.Type())
			}
			return nil
		})
		if files > lim.Files || size > lim.Bytes {
			t.Errorf("%d files, %d bytes: over the limits", files, size)
		}
		if r := x.Result(); r.Files != files || r.Bytes != size {
			t.Errorf("result %+v, on disk %d files, %d bytes", r, files, size)
		}
		if ents, _ := os.ReadDir(out); len(ents) != 0 {
			t.Errorf("written outside: %v", ents)
		}
	})
}
