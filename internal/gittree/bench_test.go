package gittree

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/jobq/jobq/internal/testenv"
)

// BenchmarkCheckout checks out a generated tree of 1,000 files.
func BenchmarkCheckout(b *testing.B) {
	files := map[string]string{}
	for i := range 1000 {
		files[fmt.Sprintf("d%02d/f%03d.go", i%40, i)] = fmt.Sprintf("package p\n\n// file %d\nvar X%d = %d\n", i, i, i)
	}
	gitDir, rev := testenv.MakeRepo(b, files)
	base := b.TempDir()
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(base, fmt.Sprint(i))
		os.Mkdir(dir, 0o755)
		if err := Checkout(context.Background(), gitDir, rev, dir, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dir) // a growing tree of dirty pages would slow later rounds
		b.StartTimer()
	}
}
