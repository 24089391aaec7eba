package web

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobq/jobq/queue"
)

// BenchmarkRender renders 1 MiB of 100-byte log lines as a follower does,
// 64 KiB at a time.
func BenchmarkRender(b *testing.B) {
	var sb strings.Builder
	for i := 0; sb.Len() < 1<<20; i++ {
		fmt.Fprintf(&sb, "%08d %s\n", i, strings.Repeat("x", 90))
	}
	data := []byte(sb.String())
	// The log's record of jobq's lines: a header's.
	path := filepath.Join(b.TempDir(), "log")
	f, _ := os.Create(path)
	queue.WriteOwn(f, "jobq: job 0 of r\njobq: ref refs/heads/main\n")
	f.Close()
	for _, judged := range []bool{false, true} {
		b.Run(fmt.Sprintf("judged=%v", judged), func(b *testing.B) { benchRender(b, data, path, judged) })
	}
}

func benchRender(b *testing.B, data []byte, path string, judged bool) {
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r := newLineRenderer()
		var own *queue.Own
		if judged {
			own = queue.OpenOwn(path)
			r.withOwn(own, 0)
		}
		for off := 0; off < len(data); off += 64 << 10 {
			chunk := data[off:min(off+64<<10, len(data))]
			r.Render(chunk)
		}
		if own != nil {
			own.Close()
		}
	}
}

// The fast path renders what the screen renders.
func TestRenderPaths(t *testing.T) {
	pieces := []string{
		"plain line\n", "tab\there\n", "  leading and trailing  \n", "\n", "\n\n", "<&>\"'/ all escaped\n",
		"unicode: héllo wörld ✓ 日本語 🎉\n", "https://example.com/a?b=c&d=e\n", strings.Repeat("long ", 1000) + "\n",
		"\x1b[31mred\x1b[0m then plain\n", "after colour\n", "\x1b[32mgreen open\n", "still green\n", "\x1b[0m\n", "plain again\n",
		"\x1b]8;;https://x.example\x1b\\link\x1b]8;;\x1b\\ closed\n", "after link\n",
		"10%\r50%\r100%\n", "bad utf8 \xff\xfe\n", "c1 \xc2\x9b csi\n", "bell \a and bs x\by\n", "del \x7f\n",
		"\x1b[1;31mbold red\x1b[m\n", "after m\n", "\x1b[38;5;208morange\x1b[39m\n", "after 39\n",
	}
	for i := range pieces {
		// Every split of the sequence into two renders, at each piece.
		fast, slow := newLineRenderer(), newLineRenderer()
		slow.plain = false // never the fast path
		var a, b strings.Builder
		for j, p := range pieces {
			if j == i {
				a.WriteString("|")
				b.WriteString("|")
			}
			a.WriteString(fast.Render([]byte(p)))
			slow.plain = false // never the fast path
			b.WriteString(slow.Render([]byte(p)))
		}
		if i == 0 {
			t.Logf("%q", b.String())
		}
		if a.String() != b.String() {
			t.Fatalf("fast path differs from the screen:\n%q\n%q", a.String(), b.String())
		}
	}
}
