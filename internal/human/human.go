// Package human shows quantities to people, in messages, listings and
// pages, in one style wherever they appear.
package human

import "strconv"

// Bytes shows a byte count: "512 bytes" below a KiB, else in the largest
// binary unit it reaches with one decimal, rounded down: "1.5 MiB",
// "200.0 GiB". Rounding down keeps a figure from claiming more than there
// is: 1.99 GiB free never shows as the 2.0 GiB a limit asks for.
func Bytes(n int64) string {
	if n < 1<<10 {
		return strconv.FormatInt(n, 10) + " bytes"
	}
	u, div := 0, uint64(1<<10)
	for uint64(n)/div >= 1<<10 && u < len(units)-1 {
		div <<= 10
		u++
	}
	whole, tenths := uint64(n)/div, uint64(n)%div*10/div
	return strconv.FormatUint(whole, 10) + "." + strconv.FormatUint(tenths, 10) + " " + units[u]
}

var units = [...]string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
