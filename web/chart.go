package web

import (
	"slices"
	"strconv"
	"time"

	"github.com/jobq/jobq/internal/jobview"
)

// chart is an SVG bar chart of jobs' durations, oldest left, each bar
// coloured by the job's state (a class: the theme gives the colour) and
// linked to its page, with a duration axis and a legend of the states
// shown.
//
// One job far longer than the rest (a timeout after an hour among
// one-minute builds) would flatten every other bar into a sliver on a
// linear axis up to it. So when the longest job is more than three times
// the 90th percentile, the axis ends a little above the percentile
// instead, and the bars beyond it reach the top and are marked (▲, and
// their real duration in their title). A log scale would keep every bar
// but make the ordinary differences (a build 20% slower) hard to see.
type chart struct {
	Width, Height int
	Max           string // the longest duration
	Cap           string // where the axis ends
	Over          int    // bars beyond the axis
	Bars          []bar
	Ticks         []tick
	Legend        []legendItem

	Left, Right, Top, Bottom int
	TickX, LabelX            int
	AxisTitleY, LegendY      int
	OverX, OverTextX         int
}

type bar struct {
	ID         int64
	X, Y, W, H int
	State      string
	Label      string
	Over       bool
	MarkY      int
	Half       int
}

type tick struct {
	Y     int
	Label string
}

type legendItem struct {
	State    string
	X, TextX int
}

// newChart draws rows (newest first, as listed) oldest left.
func newChart(rows []row) chart {
	const barW, gap, plot = 10, 2, 80
	now := time.Now()
	var jobs []row
	var ds []time.Duration
	for _, r := range rows {
		if r.Job != nil {
			jobs = append(jobs, r)
			ds = append(ds, r.Job.Duration(now))
		}
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	var longest time.Duration
	if len(sorted) > 0 {
		longest = sorted[len(sorted)-1]
	}
	limit := longest
	if len(sorted) >= 4 {
		p90 := sorted[(len(sorted)*9-1)/10]
		if p90 > 0 && longest > 3*p90 {
			limit = p90 + p90/5
		}
	}
	axis := niceCeil(limit)
	c := chart{Max: jobview.Duration(longest), Cap: axisLabel(axis)}
	c.Left, c.Top = 48, 8
	c.Bottom = c.Top + plot
	c.TickX, c.LabelX = c.Left-4, c.Left-6
	c.AxisTitleY, c.LegendY = c.Bottom+14, c.Bottom+32
	c.Height = c.LegendY + 6
	for _, f := range []int{0, 1, 2} {
		c.Ticks = append(c.Ticks, tick{Y: c.Bottom - plot*f/2, Label: axisLabel(axis * time.Duration(f) / 2)})
	}
	states := map[string]bool{}
	for i := range jobs {
		r := jobs[len(jobs)-1-i]
		d := ds[len(jobs)-1-i]
		h := 2 // a job that has not run shows as a sliver
		over := d > axis
		switch {
		case over:
			h = plot
		case axis > 0:
			h = max(int(int64(plot)*int64(d)/int64(axis)), 2)
		}
		x := c.Left + 4 + i*(barW+gap)
		b := bar{ID: r.ID, X: x, Y: c.Bottom - h, W: barW, H: h, State: r.State(), Label: jobview.Duration(d), Over: over, MarkY: c.Top, Half: barW / 2}
		if over {
			c.Over++
			b.Y, b.H = c.Top+1, plot-1 // below the mark
		}
		c.Bars = append(c.Bars, b)
		states[r.State()] = true
	}
	c.Right = c.Left + 4 + len(jobs)*(barW+gap)
	x := c.Left
	for _, l := range stateLooks {
		if states[string(l.State)] {
			c.Legend = append(c.Legend, legendItem{State: string(l.State), X: x, TextX: x + 14})
			x += 14 + 7*len(l.State) + 14
		}
	}
	if c.Over > 0 {
		c.OverX, c.OverTextX = x, x+14
		x += 14 + 7*len("beyond the axis") + 14
	}
	c.Width = max(c.Right+4, x, c.Left+7*len("duration (axis up to 10 min) · jobs, oldest left"))
	return c
}

// axisSteps are the round durations an axis ends at.
var axisSteps = []time.Duration{
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 4 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 4 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// niceCeil is the first round duration at or above d (at least 1 s).
func niceCeil(d time.Duration) time.Duration {
	for _, s := range axisSteps {
		if s >= d && s >= time.Second {
			return s
		}
	}
	return (d + 24*time.Hour - 1) / (24 * time.Hour) * (24 * time.Hour)
}

// axisLabel is a tick's label with its unit: "0", "15 s", "2 min", "6 h".
func axisLabel(d time.Duration) string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	switch {
	case d == 0:
		return "0"
	case d < time.Second:
		return f(float64(d.Milliseconds())) + " ms"
	case d < time.Minute:
		return f(d.Seconds()) + " s"
	case d < time.Hour:
		return f(d.Minutes()) + " min"
	default:
		return f(d.Hours()) + " h"
	}
}
