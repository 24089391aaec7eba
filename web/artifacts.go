package web

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"path"

	"github.com/jobq/jobq/internal/human"
	"github.com/jobq/jobq/queue"
)

// A job's artifacts (JOBQ_ARTIFACTS) are served at
//
//	/REPO/ID/artifact?path=PATH   one artifact, as an attachment
//	/REPO/ID/artifact             the list, as JSON (path, size)
//
// with the access of the job's repository: forbidden is missing. An
// artifact is the job's output, made by whoever pushed: served inline on
// the git server's origin, an HTML artifact would run its script with
// the visitor's session. So each goes as an attachment (the browser saves
// it), as application/octet-stream, with nosniff, and with a CSP that
// sandboxes it (a unique origin, no script) and lets it load nothing,
// should a browser render it all the same.

// artifactCSP is the policy of an artifact's response.
const artifactCSP = "sandbox; default-src 'none'"

// artifactLink is an artifact as the job page lists it.
type artifactLink struct {
	Path, Size, URL string
}

// artifactLinks lists job id's artifacts for its page; base is the job's
// URL. A list that cannot be read is left off the page, and logged.
func (s *Server) artifactLinks(base, repo string, id int64) []artifactLink {
	list, err := s.Store.Artifacts(repo, id)
	if err != nil {
		s.logf("%s %d: %v", repo, id, err)
		return nil
	}
	links := make([]artifactLink, 0, len(list))
	for _, a := range list {
		links = append(links, artifactLink{Path: a.Path, Size: human.Bytes(a.Size), URL: base + "/artifact?path=" + url.QueryEscape(a.Path)})
	}
	return links
}

// artifact serves one of job id's artifacts, or their list.
func (s *Server) artifact(w http.ResponseWriter, r *http.Request, repo string, id int64) error {
	j, err := s.job(r.Context(), s.user(r), repo, id)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if !q.Has("path") {
		list, err := s.Store.Artifacts(repo, j.ID)
		if err != nil {
			return err
		}
		return writeJSON(w, list)
	}
	f, err := s.Store.OpenArtifact(repo, j.ID, q.Get("path"))
	if errors.Is(err, queue.ErrNotFound) {
		return errNotFound
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Security-Policy", artifactCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", attachment(path.Base(q.Get("path"))))
	h.Set("Cache-Control", "private, no-cache")
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return nil
}

// attachment is the Content-Disposition of a file saved as name: quoted,
// and RFC 2231-encoded where it is not plain ASCII.
func attachment(name string) string {
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": name}); v != "" {
		return v
	}
	return "attachment"
}
