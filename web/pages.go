package web

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jobq/jobq/internal/jobview"
	"github.com/jobq/jobq/queue"
)

type overviewPage struct {
	page
	Running []placed
	Waiting []placed
	Repos   []repoLatest
}

type placed struct {
	row
	Host string
}

type repoLatest struct {
	Repo   string
	Latest *row
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) error {
	ctx, user := r.Context(), s.user(r)
	all, err := s.Store.Repos()
	if err != nil {
		return err
	}
	repos, err := s.Access.Readable(ctx, user, all)
	if err != nil {
		return err
	}
	data := overviewPage{page: s.newPage(user, "jobq")}
	views := map[string]queue.View{}
	for _, repo := range repos {
		v, err := s.Store.View(repo)
		if err != nil {
			continue // deleted since, or unreadable: nothing to show
		}
		views[repo] = v
		rl := repoLatest{Repo: repo}
		if ls, err := s.Store.Jobs(repo, 1); err == nil && len(ls) == 1 && ls[0].Job != nil && v.Shows(ls[0].Job) {
			rl.Latest = &row{Repo: repo, ID: ls[0].ID, Job: ls[0].Job}
		}
		data.Repos = append(data.Repos, rl)
	}
	host, _ := os.Hostname()
	queues, err := s.Store.Queues()
	if err != nil {
		return err
	}
	for _, q := range queues {
		ahead, err := s.Store.Ahead(q)
		if err != nil {
			continue
		}
		for key, n := range ahead {
			repo, idText, _ := strings.Cut(key, " ")
			id, ok := parseID(idText)
			v, readable := views[repo]
			if !ok || !readable {
				continue
			}
			j, err := s.Store.Job(repo, id)
			if err != nil || !v.Shows(j) {
				continue
			}
			switch j.State {
			case queue.Running:
				where := j.Host // a build host, or this machine
				if where == "" {
					where = host
				}
				data.Running = append(data.Running, placed{row{Repo: repo, ID: id, Job: j}, where})
			case queue.Queued:
				n := n
				data.Waiting = append(data.Waiting, placed{row: row{Repo: repo, ID: id, Job: j, Ahead: &n, Waiting: s.Store.Waiting(repo, id)}})
			}
		}
	}
	slices.SortFunc(data.Running, func(a, b placed) int { return a.Job.StartedAt.Compare(b.Job.StartedAt) })
	slices.SortFunc(data.Waiting, func(a, b placed) int {
		if c := strings.Compare(a.Job.Queue, b.Job.Queue); c != 0 {
			return c
		}
		return *a.Ahead - *b.Ahead
	})
	if wantsJSON(r) {
		now := time.Now()
		out := overviewJSON{Running: []placedView{}, Waiting: []placedView{}, Repos: []repoView{}}
		for _, p := range data.Running {
			out.Running = append(out.Running, placedView{Repo: p.Repo, Host: p.Host, Job: p.view(now)})
		}
		for _, p := range data.Waiting {
			out.Waiting = append(out.Waiting, placedView{Repo: p.Repo, Job: p.view(now)})
		}
		for _, rl := range data.Repos {
			rv := repoView{Repo: rl.Repo}
			if rl.Latest != nil {
				v := rl.Latest.view(now)
				rv.Latest = &v
			}
			out.Repos = append(out.Repos, rv)
		}
		return writeJSON(w, out)
	}
	return s.render(w, "overview", data)
}

type repoPageData struct {
	page
	Repo       string
	Rows       []row
	PageNo     int
	Newer      string // links; "" when there is none
	Older      string
	First, Top int64 // the page's ID range
	Chart      chart
}

// repoPage lists one page of a repository's jobs: page N is a range of
// perPage IDs counted down from the newest, so its cost does not grow with
// the history; IDs missing from the range are pruned jobs.
func (s *Server) repoPage(w http.ResponseWriter, r *http.Request, repo string) error {
	ctx, user := r.Context(), s.user(r)
	view, err := s.readable(ctx, user, repo)
	if err != nil {
		return err
	}
	pageNo := 1
	if p := r.URL.Query().Get("page"); p != "" {
		n, ok := parseID(p)
		if !ok || n < 1 {
			return errNotFound
		}
		pageNo = int(min(n, 1<<40))
	}
	ls, err := s.Store.Jobs(repo, 1)
	if errors.Is(err, queue.ErrNotFound) {
		return errNotFound
	}
	if err != nil {
		return err
	}
	newest := int64(-1)
	if len(ls) == 1 {
		newest = ls[0].ID
	}
	// Pages past the oldest ID do not exist; compared before any
	// multiplication, so a huge page number cannot overflow.
	if int64(pageNo-1) > max(newest, 0)/perPage {
		return errNotFound
	}
	top := newest - int64(pageNo-1)*perPage
	first := max(top-perPage+1, 0)
	rows := s.rows(repo, view, first, top)
	chartRows := rows
	if pageNo != 1 {
		chartRows = s.rows(repo, view, max(newest-perPage+1, 0), newest)
	}
	base := s.Base + "/" + repo + "/"
	data := repoPageData{page: s.newPage(user, repo), Repo: repo, Rows: rows, PageNo: pageNo, First: first, Top: top, Chart: newChart(chartRows)}
	if pageNo > 1 {
		data.Newer = base + "?page=" + strconv.Itoa(pageNo-1)
	}
	if first > 0 {
		data.Older = base + "?page=" + strconv.Itoa(pageNo+1)
	}
	if wantsJSON(r) {
		if data.Older != "" {
			w.Header().Set("Link", fmt.Sprintf("<%s&json>; rel=\"next\"", data.Older))
		}
		now := time.Now()
		out := make([]jobview.Job, len(rows))
		for i, rw := range rows {
			out[i] = rw.view(now)
		}
		return writeJSON(w, out)
	}
	return s.render(w, "repo", data)
}

// rows reads the jobs with IDs top down to first that the view shows.
func (s *Server) rows(repo string, view queue.View, first, top int64) []row {
	var rows []row
	aheads := map[string]map[string]int{}
	for id := top; id >= first; id-- {
		j, err := s.Store.Job(repo, id)
		switch {
		case errors.Is(err, queue.ErrNotFound):
			continue // pruned, or never committed
		case err != nil:
			rows = append(rows, row{Repo: repo, ID: id})
			continue
		case !view.Shows(j):
			continue
		}
		rw := row{Repo: repo, ID: id, Job: j}
		if j.State == queue.Queued {
			m, ok := aheads[j.Queue]
			if !ok {
				m, _ = s.Store.Ahead(j.Queue)
				aheads[j.Queue] = m
			}
			if n, ok := m[repo+" "+strconv.FormatInt(id, 10)]; ok {
				rw.Ahead = &n
			}
			rw.Waiting = s.Store.Waiting(repo, id)
		}
		rows = append(rows, rw)
	}
	return rows
}

type jobPageData struct {
	page
	row
	Log    logTail
	Live   bool
	Raw    string
	Events string
	Error  string
	Header []field
	// Artifacts are the job's artifacts, linked (artifacts.go).
	Artifacts []artifactLink
}

type field struct {
	Name, Value, ID string
}

func (s *Server) jobPage(w http.ResponseWriter, r *http.Request, repo string, id int64) error {
	ctx, user := r.Context(), s.user(r)
	j, err := s.job(ctx, user, repo, id)
	if err != nil {
		return err
	}
	rw := row{Repo: repo, ID: id, Job: j}
	if j.State == queue.Queued {
		if m, err := s.Store.Ahead(j.Queue); err == nil {
			if n, ok := m[repo+" "+strconv.FormatInt(id, 10)]; ok {
				rw.Ahead = &n
			}
		}
		rw.Waiting = s.Store.Waiting(repo, id)
	}
	if wantsJSON(r) {
		return writeJSON(w, rw.view(time.Now()))
	}
	tail, err := readTail(s.Store.LogPath(repo, id), j.State.Final())
	if err != nil {
		return err
	}
	base := s.Base + "/" + repo + "/" + strconv.FormatInt(id, 10)
	data := jobPageData{
		page: s.newPage(user, fmt.Sprintf("%s job %d", repo, id)), row: rw, Log: tail,
		Live: !j.State.Final(), Raw: base + "/log", Events: base + "/events", Error: j.Error,
	}
	state := string(j.State)
	if rw.Ahead != nil {
		state += fmt.Sprintf(" (%d ahead)", *rw.Ahead)
	}
	if rw.Waiting != "" {
		state += "; waiting: " + rw.Waiting
	}
	fmtTime := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Local().Format(queue.TimeFormat)
	}
	data.Header = []field{
		{"state", state, "state"},
		{"ref", j.Ref, ""},
		{"revision", j.NewRev, ""},
		{"pushed by", j.User, ""},
		{"started by", string(j.StartedBy()), ""},
		{"queue", j.Queue, ""},
		{"queued", fmtTime(j.QueuedAt), ""},
		{"started", fmtTime(j.StartedAt), "started"},
		{"finished", fmtTime(j.FinishedAt), "finished"},
		{"duration", rw.Duration(), "duration"},
		{"exit code", rw.Exit(), "exit"},
	}
	if j.RetryOf != nil {
		data.Header = append(data.Header, field{"retry of", strconv.FormatInt(*j.RetryOf, 10), ""})
	}
	data.Artifacts = s.artifactLinks(base, repo, id)
	return s.render(w, "job", data)
}
