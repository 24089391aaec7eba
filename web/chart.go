package web

import (
	"time"

	"github.com/jobq/jobq/internal/jobview"
	"github.com/jobq/jobq/queue"
)

// chart is an SVG bar chart of jobs' durations, oldest left, each bar
// coloured by the job's state and linked to its page.
type chart struct {
	Width, Height int
	Max           string
	Bars          []bar
}

type bar struct {
	ID         int64
	X, Y, W, H int
	Fill       string
	State      string
	Label      string
}

// stateColour is each state's colour, in the chart and the badge.
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

// newChart draws rows (newest first, as listed) oldest left.
func newChart(rows []row) chart {
	const barW, gap, height = 10, 2, 60
	now := time.Now()
	var longest time.Duration
	var jobs []row
	for _, r := range rows {
		if r.Job != nil {
			jobs = append(jobs, r)
			longest = max(longest, r.Job.Duration(now))
		}
	}
	c := chart{Width: max(len(jobs)*(barW+gap), 1), Height: height, Max: jobview.Duration(longest)}
	for i := range jobs {
		r := jobs[len(jobs)-1-i]
		d := r.Job.Duration(now)
		h := 2 // a job that has not run shows as a sliver
		if longest > 0 {
			h = max(int(int64(height-2)*int64(d)/int64(longest)), 2)
		}
		c.Bars = append(c.Bars, bar{
			ID: r.ID, X: i * (barW + gap), Y: height - h, W: barW, H: h,
			Fill: stateColour(r.Job.State), State: string(r.Job.State), Label: jobview.Duration(d),
		})
	}
	return c
}
