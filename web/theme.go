package web

import (
	"fmt"
	"strings"

	"github.com/jobq/jobq/queue"
)

// stateLook is how a state shows: its colour on the light and the dark
// page (text on the page's background: WCAG AA, 4.5:1, which
// TestStateContrast checks) and a sign before its name, so that no two
// states differ by colour alone (queued waits: a clock; cancelled was
// stopped: a barred circle).
type stateLook struct {
	State       queue.State
	Light, Dark string
	Sign        string
}

// Page backgrounds the state colours are read on.
const (
	lightBG = "#ffffff"
	darkBG  = "#0d1117"
)

var stateLooks = []stateLook{
	{queue.Succeeded, "#1a7f37", "#3fb950", "✓"},
	{queue.Failed, "#c62828", "#ff6b61", "✗"},
	{queue.TimedOut, "#c62828", "#ff6b61", "⌛"},
	{queue.Lost, "#c62828", "#ff6b61", "?"},
	{queue.Running, "#8a5300", "#e3b341", "●"},
	{queue.Queued, "#3b49b8", "#a5b4fc", "◷"},
	{queue.Cancelled, "#5f6368", "#b1bac4", "⊘"},
}

// stateCSS is the states' rules: text, sign and chart bar, both themes.
func stateCSS() string {
	var b strings.Builder
	for _, l := range stateLooks {
		fmt.Fprintf(&b, ".%[1]s{color:%[2]s}.%[1]s::before{content:\"%[3]s \"}svg .c-%[1]s{fill:%[2]s}\n", l.State, l.Light, l.Sign)
	}
	b.WriteString("@media (prefers-color-scheme:dark){\n")
	for _, l := range stateLooks {
		fmt.Fprintf(&b, ".%[1]s{color:%[2]s}svg .c-%[1]s{fill:%[2]s}\n", l.State, l.Dark)
	}
	b.WriteString("}\n")
	return b.String()
}

// basicColours are the log's sixteen colours (SGR 30-37 and 90-97, and
// palette entries 0-15), as the log box (always dark) shows them.
var basicColours = [16]string{
	"#666", "#f55", "#5d5", "#dd5", "#68f", "#d6d", "#5dd", "#eee",
	"#888", "#f77", "#7f7", "#ff7", "#8af", "#f8f", "#7ff", "#fff",
}

// basicBackgrounds are SGR 40-47's and 100-107's.
var basicBackgrounds = [16]string{
	"#000", "#a00", "#0a0", "#a50", "#00a", "#a0a", "#0aa", "#aaa",
	"#555", "#f55", "#5f5", "#ff5", "#55f", "#f5f", "#5ff", "#fff",
}

// cubeLevels are the six levels of each channel in xterm's 6×6×6 colour
// cube (palette entries 16-231).
var cubeLevels = [6]uint8{0, 95, 135, 175, 215, 255}

// paletteRGB is xterm's colour of palette entry n for n ≥ 16: the cube,
// then 24 greys.
func paletteRGB(n int) (r, g, b uint8) {
	if n >= 232 {
		v := uint8(8 + 10*(n-232))
		return v, v, v
	}
	n -= 16
	return cubeLevels[n/36], cubeLevels[n/6%6], cubeLevels[n%6]
}

// paletteCSS is the rules of the 256-colour palette, foreground and
// background (terminal-to-html's term-fgxN and term-bgxN): a stylesheet
// of its own, which only the job page carries (about 14 KB).
//
// A class per entry keeps the pages within the Content-Security-Policy:
// no style attribute, no inline style but the hashed ones. Truecolour has
// no class of its own (sixteen million would not fit; a stylesheet made per
// page could not follow a live log, whose colours arrive later): it is
// quantised to the nearest palette entry (nearestPalette), as a
// 256-colour terminal shows it.
func paletteCSS() string {
	var b strings.Builder
	for n := range 256 {
		var fg, bg string
		if n < 16 {
			fg, bg = basicColours[n], basicBackgrounds[n]
		} else {
			r, g, bl := paletteRGB(n)
			fg = fmt.Sprintf("#%02x%02x%02x", r, g, bl)
			bg = fg
		}
		fmt.Fprintf(&b, ".term-fgx%d{color:%s}.term-bgx%d{background:%s}", n, fg, n, bg)
	}
	return b.String()
}

// nearestPalette returns the palette entry (16-255: the cube and the
// greys, whose colours are fixed) nearest to a truecolour value, by
// Euclidean distance in RGB. Within the cube a channel is at most 47 off
// (half the widest step, 0 to 95); the greys make grey tones closer.
func nearestPalette(r, g, b uint8) int {
	best, bestD := 16, 1<<30
	// The nearest cube entry: each channel's nearest level.
	idx := func(v uint8) int {
		i := 0
		for j := range cubeLevels {
			if absDiff(v, cubeLevels[j]) < absDiff(v, cubeLevels[i]) {
				i = j
			}
		}
		return i
	}
	cube := 16 + 36*idx(r) + 6*idx(g) + idx(b)
	for _, n := range []int{cube, 232 + min(23, max(0, (int(r)+int(g)+int(b))/3-3)/10)} {
		pr, pg, pb := paletteRGB(n)
		d := sq(int(pr)-int(r)) + sq(int(pg)-int(g)) + sq(int(pb)-int(b))
		if d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func sq(v int) int { return v * v }

// stateColour is each state's colour on the badge, an image of its own
// that a README shows on any background: white text on it.
func stateColour(s queue.State) string {
	switch s {
	case queue.Succeeded:
		return "#2e7d32"
	case queue.Failed, queue.TimedOut, queue.Lost:
		return "#c62828"
	case queue.Running:
		return "#ef8f00"
	default:
		return "#9e9e9e"
	}
}
