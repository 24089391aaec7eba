package human

import (
	"math"
	"testing"
)

func TestBytes(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{0, "0 bytes"},
		{-5, "-5 bytes"},
		{1023, "1023 bytes"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{1<<20 - 1, "1023.9 KiB"}, // rounded down, never 1024.0 KiB
		{1 << 20, "1.0 MiB"},
		{200 << 20, "200.0 MiB"},
		{2<<30 - 1, "1.9 GiB"}, // under a 2 GiB limit, it shows under it
		{5 << 40, "5.0 TiB"},
		{1 << 60, "1.0 EiB"},
		{math.MaxInt64, "7.9 EiB"},
	} {
		if got := Bytes(tt.n); got != tt.want {
			t.Errorf("Bytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
