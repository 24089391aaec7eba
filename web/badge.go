package web

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"text/template"

	"github.com/jobq/jobq/queue"
)

// badgeScan bounds how many of the newest jobs a badge looks through for
// its ref: a badge costs the same whatever the history.
const badgeScan = 200

// maxRef bounds a badge's ref; git's own refs are far shorter.
const maxRef = 256

// badge draws the state of the newest job of the ref that ?ref= names
// (a full ref, or a branch or tag name), or of any ref without it.
func (s *Server) badge(w http.ResponseWriter, r *http.Request, repo string) error {
	view, err := s.readable(r.Context(), s.user(r), repo)
	if err != nil {
		return err
	}
	ref := r.URL.Query().Get("ref")
	if len(ref) > maxRef || strings.ContainsFunc(ref, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		http.Error(w, "bad ref", http.StatusBadRequest)
		return nil
	}
	matches := func(j *queue.Job) bool {
		return ref == "" || j.Ref == ref || j.Ref == "refs/heads/"+ref || j.Ref == "refs/tags/"+ref
	}
	state := "none"
	ls, err := s.Store.Jobs(repo, badgeScan)
	if err != nil && !errors.Is(err, queue.ErrNotFound) {
		return err
	}
	for _, l := range ls {
		if l.Job != nil && view.Shows(l.Job) && matches(l.Job) {
			state = string(l.Job.State)
			break
		}
	}
	var buf bytes.Buffer
	if err := badgeTmpl.Execute(&buf, newBadge("jobq", state)); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	// Shown in READMEs through caching proxies: always fetched anew.
	w.Header().Set("Cache-Control", "no-cache, max-age=0")
	_, err = w.Write(buf.Bytes())
	return err
}

type badgeData struct {
	Label, Message   string
	LabelW, MessageW int
	Width            int
	Colour           string
	LabelX, MessageX int
}

func newBadge(label, state string) badgeData {
	colour := stateColour(queue.State(state))
	if state == "none" {
		colour = "#9e9e9e"
	}
	// About 7 pixels a character in Verdana 11px.
	lw, mw := 10+7*len(label), 10+7*len(state)
	return badgeData{
		Label: label, Message: state, LabelW: lw, MessageW: mw, Width: lw + mw, Colour: colour,
		LabelX: lw / 2, MessageX: lw + mw/2,
	}
}

// badgeTmpl is text/template: its only inputs are a state name and a
// colour of this package's, never the request's ref.
var badgeTmpl = template.Must(template.New("badge").Parse(`<svg xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="20" role="img" aria-label="{{.Label}}: {{.Message}}">
<title>{{.Label}}: {{.Message}}</title>
<rect width="{{.LabelW}}" height="20" fill="#555"/>
<rect x="{{.LabelW}}" width="{{.MessageW}}" height="20" fill="{{.Colour}}"/>
<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">
<text x="{{.LabelX}}" y="14">{{.Label}}</text>
<text x="{{.MessageX}}" y="14">{{.Message}}</text>
</g>
</svg>
`))
