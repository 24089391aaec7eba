package safetar

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	f.Fuzz(checkExtract)
}

// fuzzLimits are small, so that inputs reach them.
var fuzzLimits = Limits{Files: 5, Bytes: 1000, Entries: 50, Read: 1 << 20}

// checkExtract extracts data and checks what any stream must leave.
func checkExtract(t *testing.T, data []byte) {
	lim := fuzzLimits
	{
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
	}
}

// TestExtractMutated runs checkExtract on seeded mutations of valid tars
// (bytes flipped, cut, repeated): what the fuzzer does, in every test run.
func TestExtractMutated(t *testing.T) {
	seeds := [][]byte{
		tarOf(t, entry{name: "a/b", data: "x"}, entry{name: "c", typ: tar.TypeLink, link: "a/b"}, entry{name: "d", data: strings.Repeat("y", 600)}),
		tarOf(t, entry{name: "l", typ: tar.TypeSymlink, link: ".."}, entry{name: "l/x", data: "x"}, entry{name: "p", typ: tar.TypeFifo}),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		data := slices.Clone(seeds[i%len(seeds)])
		for range 1 + rng.IntN(8) {
			switch p := rng.IntN(len(data)); rng.IntN(3) {
			case 0:
				data[p] = byte(rng.IntN(256))
			case 1:
				data = data[:p]
			default:
				data = append(data[:p:p], append(slices.Clone(data[p:min(len(data), p+512)]), data[p:]...)...)
			}
			if len(data) == 0 {
				break
			}
		}
		checkExtract(t, data)
	}
}
