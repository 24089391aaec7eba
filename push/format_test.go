package push

import "testing"

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 1 << 30: "1g", 3 << 29: "1536m", 100 << 10: "100k", 7: "7"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
		if back, err := ParseBytes(FormatBytes(n)); err != nil || back != n {
			t.Errorf("ParseBytes(FormatBytes(%d)) = %d, %v", n, back, err)
		}
	}
}
