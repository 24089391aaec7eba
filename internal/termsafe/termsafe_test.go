package termsafe

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// filter runs s through a Writer in writes of n bytes (0: one write).
func filter(t testing.TB, s string, n int) string {
	t.Helper()
	var b bytes.Buffer
	w := NewWriter(&b)
	if n <= 0 {
		n = len(s) + 1
	}
	for i := 0; i < len(s); i += n {
		if _, err := w.Write([]byte(s[i:min(i+n, len(s))])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestWriter(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "hello\n\tworld\n", "hello\n\tworld\n"},
		{"unicode", "héllo ✓ 🙂 \ufffd\n", "héllo ✓ 🙂 \ufffd\n"},
		{"title", "\x1b]0;TITLE\x07", "^[]0;TITLE^G"},
		{"clear screen", "\x1b[2Jx", "^[[2Jx"},
		{"cursor", "\x1b[H\x1b[1;1H\x1b[?25l", "^[[H^[[1;1H^[[?25l"},
		{"charset", "\x1b(0q\x0e", "^[(0q^N"},
		{"colour", "\x1b[31mred\x1b[0m plain\n", "\x1b[31mred\x1b[0m plain\n"},
		{"colour 256 and rgb", "\x1b[38;5;196mx\x1b[38:2::1:2:3my\x1b[m", "\x1b[38;5;196mx\x1b[38:2::1:2:3my\x1b[m"},
		{"colour left on", "\x1b[1mbold", "\x1b[1mbold\x1b[0m"},
		{"hidden before own line", "\x1b[8mhidden\njobq: failed, exit code 1\n", "\x1b[8mhidden\n\x1b[0mjobq: failed, exit code 1\n"},
		{"own line without colour", "jobq: job 0\nout\njobq: succeeded\n", "jobq: job 0\nout\njobq: succeeded\n"},
		{"colour before own prefix", "\x1b[8mjobq: fake\n", "\x1b[8m\x1b[0mjobq: fake\n"},
		{"own prefix mid-line", "\x1b[8mx jobq: y\n", "\x1b[8mx jobq: y\n\x1b[0m"},
		{"partial own prefix", "\x1b[8m\njob\njobs\n", "\x1b[8m\njob\njobs\n\x1b[0m"},
		{"own prefix at the end", "\x1b[8m\njobq:", "\x1b[8m\n\x1b[0mjobq:"},
		{"crlf", "a\r\nb\r\n", "a\nb\n"},
		{"lone cr", "50%\r100%\r", "50%^M100%^M"},
		{"cr cr lf", "a\r\r\n", "a^M\n"},
		{"c0", "\x00\x01\x07\x08\x1f\x7f", "^@^A^G^H^_^?"},
		{"c1 as utf-8", "\u009b2J\u0085\u0080", `\u009b2J\u0085\u0080`},
		{"c1 as a raw byte", "\x9b2J", `\x9b2J`},
		{"invalid utf-8", "\xe2(\xa1\xff\xc0\xaf", `\xe2(\xa1\xff\xc0\xaf`},
		{"truncated utf-8 at the end", "a\xe2\x82", `a\xe2\x82`},
		{"esc at the end", "a\x1b", "a^["},
		{"csi at the end", "a\x1b[31", "a^[[31"},
		{"esc esc", "\x1b\x1b[1m", "^[\x1b[1m\x1b[0m"},
		{"sgr too long", "\x1b[" + strings.Repeat("1;", 40) + "m", "^[[" + strings.Repeat("1;", 32) + strings.Repeat("1;", 8) + "m"},
		{"sgr with bad byte", "\x1b[3\x07m", "^[[3^Gm"},
		{"fake result line hidden after", "jobq: succeeded, exit code 0\n\x1b[8m", "jobq: succeeded, exit code 0\n\x1b[8m\x1b[0m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, n := range []int{0, 1, 2, 3, 7} {
				if got := filter(t, tt.in, n); got != tt.want {
					t.Errorf("in writes of %d: %q\ngot  %q\nwant %q", n, tt.in, got, tt.want)
				}
			}
		})
	}
}

func TestLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"refs/heads/main", "refs/heads/main"},
		{"refs/heads/é", "refs/heads/é"},
		{"a\nb\tc\x1b[31m", "a^Jb^Ic^[[31m"},
		{"\u009b\x9b\x7f", `\u009b\x9b^?`},
	}
	for _, tt := range tests {
		if got := Line(tt.in); got != tt.want {
			t.Errorf("Line(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// A write error is returned, and returned again after.
func TestWriteError(t *testing.T) {
	w := NewWriter(failWriter{})
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("no error")
	}
	if err := w.Close(); err == nil {
		t.Fatal("no error from Close")
	}
}

type failWriter struct{}

func (failWriter) Write(p []byte) (int, error) { return 0, bytes.ErrTooLarge }

// The filter's promises, whatever the input and however it is split.
func FuzzWriter(f *testing.F) {
	for _, s := range []string{
		"\x1b]0;TITLE\x07\x1b[2Jjobq: succeeded, exit code 0\n\x1b[8m",
		"\x1b[31mred\x1b[0m\r\n\u009b\x9b\xe2\x82",
		"jobq: x\n\x1b[38;5;1mjobq: y\x1b[",
	} {
		f.Add([]byte(s), uint(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint) {
		whole := filter(t, string(in), 0)
		if bytewise := filter(t, string(in), 1); bytewise != whole {
			t.Fatalf("byte by byte %q, whole %q", bytewise, whole)
		}
		if n := int(split%64) + 1; filter(t, string(in), n) != whole {
			t.Fatalf("in writes of %d: %q, whole %q", n, filter(t, string(in), n), whole)
		}
		checkSafe(t, whole)
		if plain(in) && whole != string(in) {
			t.Fatalf("plain text changed: %q -> %q", in, whole)
		}
	})
}

// checkSafe fails unless out is valid UTF-8 without controls other than
// newline, tab and whole SGR sequences, and every line that starts with
// "jobq:", and the end, has the default attributes.
func checkSafe(t *testing.T, out string) {
	if !utf8.ValidString(out) {
		t.Fatalf("not UTF-8: %q", out)
	}
	coloured, lineStart := false, true
	for i := 0; i < len(out); {
		if lineStart && strings.HasPrefix(out[i:], ownPrefix) && coloured {
			t.Fatalf("a jobq: line in colour at %d: %q", i, out)
		}
		r, size := utf8.DecodeRuneInString(out[i:])
		switch {
		case r == 0x1b:
			j := i + 2
			for j < len(out) && strings.IndexByte("0123456789;:", out[j]) >= 0 {
				j++
			}
			if !strings.HasPrefix(out[i:], "\x1b[") || j >= len(out) || out[j] != 'm' {
				t.Fatalf("ESC not in an SGR at %d: %q", i, out)
			}
			params := out[i+2 : j]
			coloured = params != "" && params != "0"
			i = j + 1
			continue // an SGR leaves lineStart as it was
		case r == '\n':
			lineStart = true
			i += size
			continue
		case r < 0x20 && r != '\t', r == 0x7f, r >= 0x80 && r <= 0x9f:
			t.Fatalf("control %U at %d: %q", r, i, out)
		}
		lineStart = false
		i += size
	}
	if coloured {
		t.Fatalf("ends in colour: %q", out)
	}
}

// plain reports whether in has nothing the filter changes.
func plain(in []byte) bool {
	if !utf8.Valid(in) {
		return false
	}
	for _, r := range string(in) {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f || r >= 0x80 && r <= 0x9f {
			return false
		}
	}
	return true
}
