// Package web is jobq's read-only web view: an overview of what runs and
// waits, a page per repository and per job, live logs over Server-Sent
// Events, and status badges, each visitor seeing exactly the repositories
// gitolite lets them read. cmd/jobq-web serves it as a CGI program or as
// its own listener.
//
// # URLs (under the base path)
//
//	/                      overview
//	/REPO/                 a repository's jobs, newest first (?page=N), or those of
//	                       a state or ref (?state=S, ?ref=R; &before=ID: older ones)
//	/REPO/ID               a job: its fields, its ssh commands and the tail of its log
//	/REPO/ID/log           the raw log (Range requests)
//	/REPO/ID/events        the log as Server-Sent Events, from ?from=OFFSET or Last-Event-ID
//	                       (at most 1 MiB before its end; a "skipped" event says so),
//	                       and the line being written ("partial" events)
//	/REPO/ID/artifact      the job's artifacts: ?path=PATH one, as an attachment (artifacts.go)
//	/REPO/badge.svg        the latest result (?ref=REF: of that ref)
//
// A visitor signed in sees what gitolite lets them read and what it lets
// anyone read (the gitweb user); an anonymous visitor's pages link to the
// authenticated location (SignIn). Every page is light or dark as the
// visitor's system prefers, within a Content-Security-Policy that allows
// the pages' own hashed style and script only.
//
// A repository page ends in "/", as a repository name never does: "/a/5"
// is job 5 of a, "/a/5/" the page of repository a/5. Any page with ?json
// answers in JSON, with the fields of the ssh --json listings.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jobq/jobq/queue"
)

// Server serves the web view. Its fields are set before the first request.
type Server struct {
	Store   *queue.Store
	Access  *Access
	Watcher *Watcher
	// User names the visitor gitolite knows: "" is anonymous (gitweb).
	User func(*http.Request) string
	// Base is the path the view is served under ("" or "/jobq"), for links.
	Base string
	// SignIn is where the same view is served to authenticated visitors
	// ("/jobq-auth", or a URL): an anonymous visitor's pages link there.
	// "": no link.
	SignIn string
	// SSH is the command prefix the job page shows for jobq's ssh
	// commands ("ssh git@git.example.org"); "": ssh ACCOUNT@HOST, with
	// this process's account and the host the visitor asked for.
	SSH string
	// KeepAlive is the interval of SSE keep-alive comments (default 15s).
	KeepAlive time.Duration
	// Short makes a live log's stream end once it has sent what the log
	// holds (the browser comes back for more: retry, Last-Event-ID). A
	// CGI program needs it: the web server's CGI gateway (fcgiwrap) runs
	// one program at a time, and a stream held open would block every
	// other page, cgit's too.
	Short bool
	// MaxFollowers bounds the streams served at once (listener mode;
	// 0: 256); one more is told to come back later (503).
	MaxFollowers int
	// MaxFollowersPerClient bounds the streams one client is served at
	// once (0: 16): an authenticated visitor, else an address (see
	// client). One more is refused (429).
	MaxFollowersPerClient int
	// ClientHeader names the request header that carries the visitor's
	// address, set by the proxy in front ("": the connection's address).
	ClientHeader string
	// followers counts the streams being served (MaxFollowers), made once.
	followers     chan struct{}
	followersOnce sync.Once
	shares        shares
	// Log receives errors the visitor is not shown (default: stderr).
	Log *log.Logger
}

// perPage is how many job IDs a repository page covers.
const perPage = 50

func (s *Server) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log.Printf(format, args...)
		return
	}
	fmt.Fprintf(os.Stderr, "jobq-web: "+format+"\n", args...)
}

func (s *Server) user(r *http.Request) string {
	if s.User != nil {
		if u := s.User(r); u != "" {
			return u
		}
	}
	return Anonymous
}

// route is what a path names.
type route struct {
	kind string // "overview", "repo", "job", "log", "events", "artifact", "badge", "redirect"
	repo string
	id   int64
}

// parsePath reads a path below the base. ok is false for what names
// nothing; every such path gets the one 404.
func parsePath(p string) (route, bool) {
	if p == "/" {
		return route{kind: "overview"}, true
	}
	rest, found := strings.CutPrefix(p, "/")
	if !found {
		return route{}, false
	}
	if name, found := strings.CutSuffix(rest, "/"); found {
		return route{kind: "repo", repo: name}, queue.ValidName(name) == nil
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return route{kind: "redirect", repo: rest}, queue.ValidName(rest) == nil
	}
	prefix, last := rest[:i], rest[i+1:]
	if last == "badge.svg" {
		return route{kind: "badge", repo: prefix}, queue.ValidName(prefix) == nil
	}
	if id, ok := parseID(last); ok {
		return route{kind: "job", repo: prefix, id: id}, queue.ValidName(prefix) == nil
	}
	if last == "log" || last == "events" || last == "artifact" {
		if j := strings.LastIndexByte(prefix, '/'); j >= 0 {
			if id, ok := parseID(prefix[j+1:]); ok {
				return route{kind: last, repo: prefix[:j], id: id}, queue.ValidName(prefix[:j]) == nil
			}
		}
	}
	return route{kind: "redirect", repo: rest}, queue.ValidName(rest) == nil
}

// parseID reads a job ID: decimal digits only (no sign, no spaces), at
// most 18 of them, so that it never overflows.
func parseID(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setCommonHeaders(w)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only: GET and HEAD only", http.StatusMethodNotAllowed)
		return
	}
	p, found := strings.CutPrefix(r.URL.Path, s.Base)
	if !found {
		s.notFound(w)
		return
	}
	if p == "" {
		http.Redirect(w, r, s.Base+"/", http.StatusMovedPermanently)
		return
	}
	rt, ok := parsePath(p)
	if !ok {
		s.notFound(w)
		return
	}
	var err error
	switch rt.kind {
	case "overview":
		err = s.overview(w, r)
	case "redirect":
		// Whether or not it exists: the redirect tells nothing.
		http.Redirect(w, r, s.Base+"/"+rt.repo+"/", http.StatusMovedPermanently)
	case "repo":
		err = s.repoPage(w, r, rt.repo)
	case "job":
		err = s.jobPage(w, r, rt.repo, rt.id)
	case "log":
		err = s.rawLog(w, r, rt.repo, rt.id)
	case "events":
		err = s.events(w, r, rt.repo, rt.id)
	case "artifact":
		err = s.artifact(w, r, rt.repo, rt.id)
	case "badge":
		err = s.badge(w, r, rt.repo)
	}
	switch {
	case err == nil:
	case errors.Is(err, errNotFound):
		s.notFound(w)
	case errors.Is(err, context.Canceled):
	default:
		s.logf("%s: %v", r.URL.Path, err)
		http.Error(w, "internal error; the server's log says more", http.StatusInternalServerError)
	}
}

// errNotFound is the one answer for a repository or job that does not
// exist, that the visitor may not read, or a name that is not valid.
var errNotFound = errors.New("not found")

// notFoundBody is the same, byte for byte, whatever was not found: it
// names nothing.
const notFoundBody = `<!doctype html>
<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Not found</title>
<p>Not found: no such repository or job, or you may not read it.
`

func (s *Server) notFound(w http.ResponseWriter) {
	h := w.Header()
	for _, k := range []string{"Content-Disposition", "Link", "Accept-Ranges", "Last-Modified", "Etag"} {
		h.Del(k)
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(notFoundBody)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNotFound)
	io.WriteString(w, notFoundBody)
}

// setCommonHeaders: nothing runs or loads but what a page names (its
// own inline script and style, by hash), and nothing frames it.
func setCommonHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
}

// readable checks that the visitor may read repo and that it has history
// they may see; the View says which of its jobs.
//
// A signed-in visitor also reads what anyone may (the gitweb user): gitolite
// answers for the user alone, and a visitor who signs in should not lose
// the public repositories by doing so.
func (s *Server) readable(ctx context.Context, user, repo string) (queue.View, error) {
	ok, err := s.Access.CanRead(ctx, user, repo)
	if err == nil && !ok && user != Anonymous && validUser(user) {
		ok, err = s.Access.CanRead(ctx, Anonymous, repo)
	}
	if err != nil {
		return queue.View{}, err
	}
	if !ok {
		return queue.View{}, errNotFound
	}
	v, err := s.Store.View(repo)
	if errors.Is(err, queue.ErrNotFound) {
		return v, errNotFound
	}
	return v, err
}

// job reads a job the visitor may see.
func (s *Server) job(ctx context.Context, user, repo string, id int64) (*queue.Job, error) {
	v, err := s.readable(ctx, user, repo)
	if err != nil {
		return nil, err
	}
	j, err := s.Store.Job(repo, id)
	if errors.Is(err, queue.ErrNotFound) || err == nil && !v.Shows(j) {
		return nil, errNotFound
	}
	return j, err
}

func wantsJSON(r *http.Request) bool { return r.URL.Query().Has("json") }

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// rawLog serves the stored log as it is, with Range support: a browser
// shows it as text, never as a page.
func (s *Server) rawLog(w http.ResponseWriter, r *http.Request, repo string, id int64) error {
	j, err := s.job(r.Context(), s.user(r), repo, id)
	if err != nil {
		return err
	}
	f, err := os.Open(s.Store.LogPath(repo, j.ID))
	if errors.Is(err, os.ErrNotExist) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		return nil // not started yet: empty
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return nil
}
