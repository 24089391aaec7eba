package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"

	"github.com/jobq/jobq/internal/human"
)

// page is what every page's frame needs.
type page struct {
	Title string
	Base  string
	User  string // "" for an anonymous visitor
}

func (s *Server) newPage(user, title string) page {
	p := page{Title: title, Base: s.Base}
	if user != Anonymous {
		p.User = user
	}
	return p
}

// style is the pages' one stylesheet, inline (allowed by its hash): plain,
// cgit-like, readable on a phone; the term-* classes are terminal-to-html's.
const style = `
body{font:15px/1.4 sans-serif;margin:0 auto;max-width:80em;padding:.5em;color:#222;background:#fff}
a{color:#0645ad}
header{border-bottom:1px solid #ccc;margin-bottom:.5em;display:flex;flex-wrap:wrap;gap:1em;align-items:baseline}
header h1{font-size:1.2em;margin:0}
.wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:.95em}
th,td{text-align:left;padding:.15em .6em .15em 0;white-space:nowrap}
th{border-bottom:1px solid #ccc}
code,pre{font-family:monospace}
pre.log{background:#111;color:#ddd;padding:.5em;overflow-x:auto;white-space:pre;font-size:13px;line-height:1.3}
pre.log .jobq{color:#8cf;box-shadow:inset 3px 0 #8cf;padding-left:.5em}pre.log .mark{color:#fa0}
.succeeded{color:#1a7f37}.failed,.lost,.timed-out{color:#c62828}.running{color:#b26a00}.queued,.cancelled{color:#666}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em;margin:.5em 0}dt{color:#666}dd{margin:0;overflow-wrap:anywhere}
.note{color:#666}
p.skipped{margin:.3em 0;padding:.3em .6em;border-left:4px solid #b26a00;background:#fff4e0;color:#222}
svg.chart{max-width:100%;height:auto}
.term-fg1{font-weight:bold}.term-fg2{opacity:.7}.term-fg3{font-style:italic}.term-fg4{text-decoration:underline}.term-fg9{text-decoration:line-through}
.term-fg30{color:#666}.term-fg31{color:#f55}.term-fg32{color:#5d5}.term-fg33{color:#dd5}.term-fg34{color:#68f}.term-fg35{color:#d6d}.term-fg36{color:#5dd}.term-fg37{color:#eee}
.term-fgi90{color:#888}.term-fgi91{color:#f77}.term-fgi92{color:#7f7}.term-fgi93{color:#ff7}.term-fgi94{color:#8af}.term-fgi95{color:#f8f}.term-fgi96{color:#7ff}.term-fgi97{color:#fff}
.term-bg40{background:#000}.term-bg41{background:#a00}.term-bg42{background:#0a0}.term-bg43{background:#a50}.term-bg44{background:#00a}.term-bg45{background:#a0a}.term-bg46{background:#0aa}.term-bg47{background:#aaa}
`

// script follows a running job's log: it appends each event's lines, and
// shows the result when the job ends. It resumes where it stopped after a
// cut (EventSource sends Last-Event-ID; after a failed reconnect it starts
// anew from the last offset it has).
//
// The job's output is only ever put inside a <pre class="log">. What jobq
// itself says about the log (that part of it was skipped: a "skipped"
// event, which no job output can make) goes between two of them, in an
// element made here with its text: no output can look like it from where
// it is.
const script = `
(function () {
  var log = document.getElementById("log"), status = document.getElementById("live");
  var url = log.getAttribute("data-events"), offset = log.getAttribute("data-offset"), raw = log.getAttribute("data-raw"), es, done = false;
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function time(s) {
    var d = new Date(s);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function set(id, text) { var e = document.getElementById(id); if (e) { e.textContent = text; } }
  function open() {
    es = new EventSource(url + "?from=" + offset);
    es.onopen = function () { status.textContent = "following live"; };
    es.onmessage = function (e) {
      var bottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      log.insertAdjacentHTML("beforeend", e.data + "\n");
      offset = e.lastEventId;
      if (bottom) { window.scrollTo(0, document.body.scrollHeight); }
    };
    es.addEventListener("skipped", function (e) {
      var j = JSON.parse(e.data), note = document.createElement("p"), a = document.createElement("a"), pre = document.createElement("pre");
      note.className = "skipped";
      note.setAttribute("role", "note");
      note.appendChild(document.createTextNode("jobq: " + String(Number(j.bytes)) + " bytes skipped here; "));
      a.href = raw;
      a.textContent = "the raw log";
      note.appendChild(a);
      note.appendChild(document.createTextNode(" has them."));
      pre.className = "log";
      log.parentNode.insertBefore(note, log.nextSibling);
      note.parentNode.insertBefore(pre, note.nextSibling);
      log = pre;
      offset = e.lastEventId;
    });
    es.addEventListener("end", function (e) {
      var j = JSON.parse(e.data);
      done = true;
      es.close();
      set("state", j.state);
      document.getElementById("state").className = j.state;
      set("finished", j.finished_at ? time(j.finished_at) : "-");
      set("duration", j.duration_ms !== undefined ? (j.duration_ms / 1000).toFixed(1) + "s" : "-");
      set("exit", j.exit_code !== undefined ? String(j.exit_code) : "-");
      status.textContent = "ended: " + j.state;
    });
    es.onerror = function () {
      if (done) { return; }
      status.textContent = "connection lost; reconnecting";
      if (es.readyState === 2) { setTimeout(open, 2000); }
    };
  }
  open();
})();
`

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// csp allows the page's own inline style and script, by hash, and
// connections to itself (the events); nothing else loads or runs.
var csp = "default-src 'none'; script-src " + hash(script) + "; style-src " + hash(style) +
	"; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const frame = `{{define "top"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<link rel="icon" href="data:,">
<style>{{style}}</style>
{{block "head" .}}{{end}}
</head><body>
<header><h1><a href="{{.Base}}/">jobq</a></h1>{{block "crumbs" .}}{{end}}<span class="note">{{if .User}}signed in as {{.User}}{{else}}anonymous{{end}}</span></header>
{{end}}
{{define "bottom"}}</body></html>
{{end}}
{{define "jobrow"}}<tr><td><a href="{{.Base}}/{{.Repo}}/{{.ID}}">{{.ID}}</a></td><td class="{{.State}}">{{.State}}{{if .Ahead}} ({{.Ahead}} ahead){{end}}{{if .Waiting}}; {{.Waiting}}{{end}}</td>{{if .Job}}<td>{{.Job.Ref}}</td><td><code>{{.Short}}</code></td><td>{{.Job.User}}</td>{{else}}<td>-</td><td>-</td><td>-</td>{{end}}<td>{{.Queued}}</td><td>{{.Duration}}</td><td>{{.Exit}}</td></tr>
{{end}}
`

const overviewTmpl = `{{template "top" .}}
<h2>Running</h2>
{{if .Running}}<div class="wrap"><table><tr><th>repository</th><th>job</th><th>host</th><th>queue</th><th>running for</th></tr>
{{range .Running}}<tr><td><a href="{{$.Base}}/{{.Repo}}/">{{.Repo}}</a></td><td><a href="{{$.Base}}/{{.Repo}}/{{.ID}}">{{.ID}}</a></td><td>{{.Host}}</td><td>{{.Job.Queue}}</td><td>{{.Duration}}</td></tr>
{{end}}</table></div>{{else}}<p class="note">Nothing runs now.</p>{{end}}
<h2>Waiting</h2>
{{if .Waiting}}<div class="wrap"><table><tr><th>queue</th><th>position</th><th>repository</th><th>job</th><th>queued</th><th>why</th></tr>
{{range .Waiting}}<tr><td>{{.Job.Queue}}</td><td>{{.Ahead}} ahead</td><td><a href="{{$.Base}}/{{.Repo}}/">{{.Repo}}</a></td><td><a href="{{$.Base}}/{{.Repo}}/{{.ID}}">{{.ID}}</a></td><td>{{.Queued}}</td><td>{{.Waiting}}</td></tr>
{{end}}</table></div>{{else}}<p class="note">Nothing waits.</p>{{end}}
<h2>Repositories</h2>
{{if .Repos}}<div class="wrap"><table><tr><th>repository</th><th>latest</th><th>job</th><th>ref</th><th>queued</th></tr>
{{range .Repos}}<tr><td><a href="{{$.Base}}/{{.Repo}}/">{{.Repo}}</a></td>{{with .Latest}}<td class="{{.State}}">{{.State}}</td><td><a href="{{$.Base}}/{{.Repo}}/{{.ID}}">{{.ID}}</a></td><td>{{if .Job}}{{.Job.Ref}}{{end}}</td><td>{{.Queued}}</td>{{else}}<td>-</td><td></td><td></td><td></td>{{end}}</tr>
{{end}}</table></div>{{else}}<p class="note">No repositories with jobs that you may read.</p>{{end}}
{{template "bottom" .}}`

const repoTmpl = `{{define "crumbs"}}<a href="{{.Base}}/{{.Repo}}/">{{.Repo}}</a>{{end}}{{template "top" .}}
<h2>{{.Repo}}</h2>
{{if .Chart.Bars}}<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{{.Chart.Width}}" height="{{.Chart.Height}}" viewBox="0 0 {{.Chart.Width}} {{.Chart.Height}}" role="img" aria-label="durations of the last {{len .Chart.Bars}} jobs">
<title>Durations of the last {{len .Chart.Bars}} jobs, oldest left (longest {{.Chart.Max}})</title>
{{range .Chart.Bars}}<a href="{{$.Base}}/{{$.Repo}}/{{.ID}}"><rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Fill}}"><title>job {{.ID}}: {{.State}}, {{.Label}}</title></rect></a>
{{end}}</svg>{{end}}
{{if .Rows}}<div class="wrap"><table><tr><th>job</th><th>state</th><th>ref</th><th>revision</th><th>pushed by</th><th>queued</th><th>duration</th><th>exit</th></tr>
{{range .Rows}}{{template "jobrow" (withBase $.Base .)}}{{end}}</table></div>{{else}}<p class="note">No jobs kept with IDs {{.First}} to {{.Top}}.</p>{{end}}
<p>{{if .Newer}}<a href="{{.Newer}}">← newer</a> {{end}}{{if .Older}}<a href="{{.Older}}">older →</a>{{end}}</p>
<p class="note"><img alt="" src="{{.Base}}/{{.Repo}}/badge.svg" height="20"> Badge: <code>{{.Base}}/{{.Repo}}/badge.svg?ref=refs/heads/master</code> · <a href="?json">JSON</a></p>
{{template "bottom" .}}`

const jobTmpl = `{{define "head"}}{{if .Live}}<noscript><meta http-equiv="refresh" content="10"></noscript>{{end}}{{end}}{{define "crumbs"}}<a href="{{.Base}}/{{.Repo}}/">{{.Repo}}</a> <span>job {{.ID}}</span>{{end}}{{template "top" .}}
<h2>{{.Repo}} job {{.ID}}</h2>
<dl>{{range .Header}}<dt>{{.Name}}</dt><dd{{if .ID}} id="{{.ID}}"{{end}}{{if eq .Name "state"}} class="{{$.State}}"{{end}}>{{.Value}}</dd>{{end}}{{if .Error}}<dt>reason</dt><dd>{{.Error}}</dd>{{end}}</dl>
{{if .Artifacts}}<h3>Artifacts</h3><ul class="artifacts" id="artifacts">{{range .Artifacts}}<li><a href="{{.URL}}" download>{{.Path}}</a> <span class="note">{{.Size}}</span></li>{{end}}</ul>{{end}}
<p>{{if gt .Log.Start 0}}The last {{bytes .Log.End .Log.Start}} of {{bytes .Log.Size 0}} of log. {{end}}<a href="{{.Raw}}">Raw log</a> · <a href="?json">JSON</a>{{if .Live}} · <span id="live">following needs JavaScript; this page reloads without it</span>{{end}}</p>
<pre class="log" id="log" data-events="{{.Events}}" data-raw="{{.Raw}}" data-offset="{{.Log.End}}">{{.Log.HTML | trusted}}</pre>
{{if .Live}}<script>{{script}}</script>{{end}}
{{template "bottom" .}}`

// withBase gives a row template the base path.
type baseRow struct {
	row
	Base string
}

var templates = map[string]*template.Template{}

func init() {
	funcs := template.FuncMap{
		"style":  func() template.CSS { return template.CSS(style) },
		"script": func() template.JS { return template.JS(script) },
		// Only terminal-to-html's output, which escapes the log's text.
		"trusted":  func(s string) template.HTML { return template.HTML(s) },
		"withBase": func(base string, r row) baseRow { return baseRow{r, base} },
		"bytes":    func(a, b int64) string { return human.Bytes(a - b) },
	}
	for name, body := range map[string]string{"overview": overviewTmpl, "repo": repoTmpl, "job": jobTmpl} {
		t := template.Must(template.New("frame").Funcs(funcs).Parse(frame))
		templates[name] = template.Must(t.New(name).Parse(body))
	}
}

func (s *Server) render(w http.ResponseWriter, name string, data any) error {
	var buf bytes.Buffer
	if err := templates[name].ExecuteTemplate(&buf, name, data); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, err := w.Write(buf.Bytes())
	return err
}
