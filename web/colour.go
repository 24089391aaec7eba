package web

import (
	"bytes"
	"strconv"
	"strings"
)

// hasTruecolour reports whether a line may hold a truecolour sequence
// (ESC [ ... 38;2;R;G;B m, or 48 for the background; colons too), which
// terminal-to-html drops: a quick test before the rewrite.
func hasTruecolour(b []byte) bool {
	return bytes.IndexByte(b, 0x1b) >= 0 && (bytes.Contains(b, []byte("8;2")) || bytes.Contains(b, []byte("8:2")) || bytes.Contains(b, []byte("8:5")))
}

// quantiseTruecolour rewrites the colour sequences of b so that
// terminal-to-html renders them: each truecolour value becomes the
// nearest palette entry (38;5;N, which has a class: paletteCSS), and the
// colon forms (38:2::R:G:B, 38:2:R:G:B, 38:5:N) their semicolon forms.
// Only the parameters of colour sequences change, to other parameters:
// what is not a colour sequence is left as it is, and what comes out is
// digits and semicolons between ESC [ and m.
func quantiseTruecolour(b []byte) []byte {
	return sgr.ReplaceAllFunc(b, func(seq []byte) []byte {
		params := string(seq[2 : len(seq)-1])
		if !strings.Contains(params, "8;2") && !strings.Contains(params, "8:") {
			return seq
		}
		var out []string
		fields := strings.Split(params, ";")
		for i := 0; i < len(fields); i++ {
			f := fields[i]
			if sub := strings.Split(f, ":"); len(sub) > 1 {
				out = append(out, colonColour(sub)...)
				continue
			}
			if (f == "38" || f == "48") && i+1 < len(fields) && fields[i+1] == "2" {
				if i+4 >= len(fields) {
					out = append(out, "0") // cut short: as a terminal, drop what is unknown
					break
				}
				n := nearestPalette(channel(fields[i+2]), channel(fields[i+3]), channel(fields[i+4]))
				out = append(out, f, "5", strconv.Itoa(n))
				i += 4
				continue
			}
			if (f == "38" || f == "48") && i+2 < len(fields) && fields[i+1] == "5" {
				out = append(out, f, "5", fields[i+2])
				i += 2
				continue
			}
			out = append(out, f)
		}
		return []byte("\x1b[" + strings.Join(out, ";") + "m")
	})
}

// colonColour reads one colon-separated parameter (ITU T.416): 38:2:CS:R:G:B
// or 38:2:R:G:B, 38:5:N; anything else is dropped.
func colonColour(sub []string) []string {
	if sub[0] != "38" && sub[0] != "48" {
		return nil
	}
	switch {
	case sub[1] == "5" && len(sub) == 3:
		return []string{sub[0], "5", strconv.Itoa(int(channel(sub[2])))}
	case sub[1] == "2" && (len(sub) == 5 || len(sub) == 6):
		rgb := sub[len(sub)-3:]
		return []string{sub[0], "5", strconv.Itoa(nearestPalette(channel(rgb[0]), channel(rgb[1]), channel(rgb[2])))}
	}
	return nil
}

// channel reads a colour channel, 0 to 255 (what is not one: 0; more: 255).
func channel(s string) uint8 {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0
	}
	if s = strings.TrimLeft(s, "0"); len(s) > 3 {
		return 255
	}
	n, _ := strconv.Atoi(s)
	return uint8(min(n, 255))
}
