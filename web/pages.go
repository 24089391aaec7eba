package web

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"regexp"
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
	Public bool // read as anyone (gitweb), not as the signed-in visitor
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
	// A signed-in visitor also sees what anyone may read, marked.
	public := map[string]bool{}
	if user != Anonymous && validUser(user) {
		pub, err := s.Access.Readable(ctx, Anonymous, all)
		if err != nil {
			return err
		}
		own := map[string]bool{}
		for _, r := range repos {
			own[r] = true
		}
		for _, r := range pub {
			if !own[r] {
				public[r] = true
				repos = append(repos, r)
			}
		}
		slices.Sort(repos)
	}
	data := overviewPage{page: s.withSignIn(s.newPage(user, "jobq"), r)}
	views := map[string]queue.View{}
	for _, repo := range repos {
		v, err := s.Store.View(repo)
		if err != nil {
			continue // deleted since, or unreadable: nothing to show
		}
		views[repo] = v
		rl := repoLatest{Repo: repo, Public: public[repo]}
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
			rv := repoView{Repo: rl.Repo, Public: rl.Public}
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
	Public     bool
	Rows       []row
	PageNo     int
	Newer      string // links; "" when there is none
	Older      string
	First, Top int64 // the page's ID range
	Chart      chart

	// Filters: links that narrow the table, no script needed.
	Filtered               bool
	StateFilter, RefFilter string
	Window                 int // the jobs Counts counts
	Counts                 []stateCount
	Refs                   []refLink
	All, AllRefs           string
}

type stateCount struct {
	State   string
	N       int
	Link    string
	Current bool
}

type refLink struct {
	Ref, Link string
	Current   bool
}

// countWindow is how many of the newest jobs the counts per state and the
// ref links cover: reading every record of a long history would make the
// page's cost grow with it. maxRefLinks bounds the ref links.
const (
	countWindow = 200
	maxRefLinks = 12
)

// maxScan bounds the IDs a filtered page looks through; the next page
// goes on below them.
const maxScan = 1000

// repoPage lists one page of a repository's jobs: page N is a range of
// perPage IDs counted down from the newest, so its cost does not grow with
// the history; IDs missing from the range are pruned jobs. Filtered by
// state or ref (?state=, ?ref=), a page looks through at most maxScan IDs
// from ?before= down for perPage matching jobs.
func (s *Server) repoPage(w http.ResponseWriter, r *http.Request, repo string) error {
	ctx, user := r.Context(), s.user(r)
	view, err := s.readable(ctx, user, repo)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	pageNo := 1
	if p := q.Get("page"); p != "" {
		n, ok := parseID(p)
		if !ok || n < 1 {
			return errNotFound
		}
		pageNo = int(min(n, 1<<40))
	}
	stateF, refF := q.Get("state"), q.Get("ref")
	if stateF != "" && !knownState(stateF) || len(refF) > maxRef || strings.ContainsFunc(refF, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		return errNotFound
	}
	filtered := stateF != "" || refF != ""
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
	base := s.Base + "/" + repo + "/"
	link := func(state, ref string, before int64) string {
		v := url.Values{}
		if state != "" {
			v.Set("state", state)
		}
		if ref != "" {
			v.Set("ref", ref)
		}
		if before >= 0 {
			v.Set("before", strconv.FormatInt(before, 10))
		}
		if len(v) == 0 {
			return base
		}
		return base + "?" + v.Encode()
	}
	// The newest jobs: counted, their refs linked; the first page's rows.
	recent := s.rows(repo, view, max(newest-countWindow+1, 0), newest)
	data := repoPageData{page: s.withSignIn(s.newPage(user, repo), r), Repo: repo, PageNo: pageNo,
		Filtered: filtered, StateFilter: stateF, RefFilter: refF, Window: min(countWindow, int(newest+1)),
		All: link("", refF, -1), AllRefs: link(stateF, "", -1)}
	if user != Anonymous {
		ok, err := s.Access.CanRead(ctx, user, repo)
		data.Public = err == nil && !ok
	}
	counts := map[string]int{}
	refCounts := map[string]int{}
	for _, rw := range recent {
		if rw.Job != nil {
			counts[string(rw.Job.State)]++
			refCounts[rw.Job.Ref]++
		}
	}
	for _, l := range stateLooks {
		st := string(l.State)
		if counts[st] > 0 || st == stateF {
			data.Counts = append(data.Counts, stateCount{State: st, N: counts[st], Link: link(st, refF, -1), Current: st == stateF})
		}
	}
	refs := make([]string, 0, len(refCounts))
	for ref := range refCounts {
		refs = append(refs, ref)
	}
	slices.SortFunc(refs, func(a, b string) int {
		if c := refCounts[b] - refCounts[a]; c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	if refF != "" && refCounts[refF] == 0 {
		refs = append([]string{refF}, refs...)
	}
	for _, ref := range refs[:min(len(refs), maxRefLinks)] {
		data.Refs = append(data.Refs, refLink{Ref: ref, Link: link(stateF, ref, -1), Current: ref == refF})
	}

	var rows []row
	if filtered {
		top := newest
		if b := q.Get("before"); b != "" {
			n, ok := parseID(b)
			if !ok {
				return errNotFound
			}
			top = min(n-1, newest)
		}
		// examined: the lowest ID looked at; every ID from it to top was.
		examined, first := top+1, max(top-maxScan+1, 0)
		for id := top; id >= first && len(rows) < perPage; id -= perPage {
			lo := max(id-perPage+1, first)
			full := false
			for _, rw := range s.rows(repo, view, lo, id) {
				if full = len(rows) == perPage; full {
					break
				}
				examined = rw.ID
				if rw.Job != nil && (stateF == "" || string(rw.Job.State) == stateF) && (refF == "" || rw.Job.Ref == refF) {
					rows = append(rows, rw)
				}
			}
			if !full {
				examined = lo
			}
		}
		data.First, data.Top = max(examined, 0), top
		if top < newest {
			data.Newer = link(stateF, refF, -1)
		}
		if examined > 0 {
			data.Older = link(stateF, refF, examined)
		}
	} else {
		// Pages past the oldest ID do not exist; compared before any
		// multiplication, so a huge page number cannot overflow.
		if int64(pageNo-1) > max(newest, 0)/perPage {
			return errNotFound
		}
		top := newest - int64(pageNo-1)*perPage
		first := max(top-perPage+1, 0)
		if pageNo == 1 {
			for _, rw := range recent {
				if rw.ID >= first {
					rows = append(rows, rw)
				}
			}
		} else {
			rows = s.rows(repo, view, first, top)
		}
		data.First, data.Top = first, top
		if pageNo > 1 {
			data.Newer = base + "?page=" + strconv.Itoa(pageNo-1)
		}
		if first > 0 {
			data.Older = base + "?page=" + strconv.Itoa(pageNo+1)
		}
	}
	data.Rows = rows
	if wantsJSON(r) {
		if data.Older != "" {
			sep := "?"
			if strings.Contains(data.Older, "?") {
				sep = "&"
			}
			w.Header().Set("Link", fmt.Sprintf("<%s%sjson>; rel=\"next\"", data.Older, sep))
		}
		now := time.Now()
		out := make([]jobview.Job, len(rows))
		for i, rw := range rows {
			out[i] = rw.view(now)
		}
		return writeJSON(w, out)
	}
	if filtered {
		data.Chart = newChart(rows)
	} else {
		var chartRows []row
		for _, rw := range recent {
			if rw.ID > newest-perPage {
				chartRows = append(chartRows, rw)
			}
		}
		data.Chart = newChart(chartRows)
	}
	subjects(data.Rows)
	return s.render(w, "repo", data)
}

// knownState reports whether name is a job state.
func knownState(name string) bool {
	for _, l := range stateLooks {
		if string(l.State) == name {
			return true
		}
	}
	return false
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
	// The sticky bar: the state as text, when a running job started and
	// the server's time now (RFC 3339; the page ticks the duration).
	StateText, Started, Now string
	// Commands are jobq's ssh commands for this job, to copy.
	Commands []field
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
		page: s.withSignIn(s.newPage(user, fmt.Sprintf("%s job %d", repo, id)), r), row: rw, Log: tail,
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
	data.StateText, data.Now = state, time.Now().UTC().Format(time.RFC3339Nano)
	if j.State == queue.Running && !j.StartedAt.IsZero() {
		data.Started = j.StartedAt.UTC().Format(time.RFC3339Nano)
	}
	data.Commands = s.commands(r, j, repo, id)
	data.Header = []field{
		{"ref", j.Ref, ""},
		{"revision", j.NewRev, ""},
		{"pushed by", j.User, ""},
		{"started by", string(j.StartedBy()), ""},
		{"queue", j.Queue, ""},
		{"queued", fmtTime(j.QueuedAt), ""},
		{"started", fmtTime(j.StartedAt), "started"},
		{"finished", fmtTime(j.FinishedAt), "finished"},
		{"exit code", rw.Exit(), "exit"},
	}
	if j.RetryOf != nil {
		data.Header = append(data.Header, field{"retry of", strconv.FormatInt(*j.RetryOf, 10), ""})
	}
	data.Artifacts = s.artifactLinks(base, repo, id)
	return s.render(w, "job", data)
}

// commands names the ssh commands that follow, cancel or retry a job, as
// a visitor would type them: the view itself stays read-only.
func (s *Server) commands(r *http.Request, j *queue.Job, repo string, id int64) []field {
	prefix := s.SSH
	if prefix == "" {
		account := "git"
		if u, err := user.Current(); err == nil && userPattern.MatchString(u.Username) {
			account = u.Username
		}
		prefix = "ssh " + account + "@" + requestHost(r)
	}
	job := repo + " " + strconv.FormatInt(id, 10)
	cmds := []field{{Name: "follow its log", Value: prefix + " jobq " + job}}
	if j.State.Final() {
		cmds = append(cmds, field{Name: "run it again", Value: prefix + " jobq retry " + job})
	} else {
		cmds = append(cmds, field{Name: "cancel it", Value: prefix + " jobq cancel " + job})
	}
	return cmds
}

// hostPattern is a host name or address as a page may show it.
var hostPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$|^\[[0-9A-Fa-f:.]{2,45}\]$`)

// requestHost is the host the visitor asked for, without its port: the
// git server's, where the web server runs on it. What does not look like
// a host name (the header is the visitor's to write) is "HOST".
func requestHost(r *http.Request) string {
	h := r.Host
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
	}
	if !hostPattern.MatchString(h) {
		return "HOST"
	}
	return h
}
