package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jobq/jobq/internal/human"
)

// page is what every page's frame needs.
type page struct {
	Title string
	Base  string
	User  string // "" for an anonymous visitor
	// SignIn is where an anonymous visitor signs in to see this page as
	// themselves ("": the server has no authenticated location).
	SignIn string
}

func (s *Server) newPage(user, title string) page {
	p := page{Title: title, Base: s.Base}
	if user != Anonymous {
		p.User = user
	}
	return p
}

// withSignIn sets the sign-in link of an anonymous visitor's page: the
// same page under the authenticated location.
func (s *Server) withSignIn(p page, r *http.Request) page {
	if p.User == "" && s.SignIn != "" {
		p.SignIn = s.SignIn + strings.TrimPrefix(r.URL.Path, s.Base)
		if q := r.URL.RawQuery; q != "" {
			p.SignIn += "?" + q
		}
	}
	return p
}

// style is the pages' stylesheet, inline (allowed by its hash): plain,
// cgit-like, readable on a phone, light or dark as the visitor's system
// prefers; the term-* classes are terminal-to-html's (the log box is dark
// in both themes, as a terminal is).
var style = `
:root{--fg:#1f2328;--bg:#fff;--muted:#59636e;--line:#d1d9e0;--link:#0550ae;--bar:#f6f8fa;--code:#eff2f5;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--muted:#9198a1;--line:#3d444d;--link:#6cb6ff;--bar:#151b23;--code:#212830}}
body{font:15px/1.4 sans-serif;margin:0 auto;max-width:80em;padding:0 .5em .5em;color:var(--fg);background:var(--bg)}
a{color:var(--link)}
body>header{border-bottom:1px solid var(--line);margin-bottom:.5em;padding-top:.5em;display:flex;flex-wrap:wrap;gap:1em;align-items:baseline}
body>header h1{font-size:1.2em;margin:0}
.wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:.95em}
th,td{text-align:left;padding:.15em .6em .15em 0;white-space:nowrap}
th{border-bottom:1px solid var(--line)}
td.subject{white-space:normal;min-width:12em;max-width:30em;overflow-wrap:anywhere}
code,pre{font-family:monospace}
code.cmd{background:var(--code);padding:.1em .3em;user-select:all;overflow-wrap:anywhere}
pre.log{background:#111;color:#ddd;padding:.5em;border:1px solid var(--line);overflow-x:auto;white-space:pre;font-size:13px;line-height:1.3;counter-reset:l;margin:.5em 0}
pre.log>code[id]::before{counter-increment:l;content:counter(l);display:inline-block;min-width:3.5em;padding-right:1em;text-align:right;color:#8b949e;user-select:none;cursor:pointer}
pre.log>code[id]{scroll-margin-top:6em}pre.log>code:target{background:#3a3000}
pre.log[data-line]>#partial:not(:empty)::before{content:"";display:inline-block;min-width:3.5em;padding-right:1em}
pre.log .jobq{color:#8cf;box-shadow:inset 3px 0 #8cf;padding-left:.5em}pre.log .mark{color:#fa0}
.jobbar{position:sticky;top:0;z-index:1;background:var(--bar);border-bottom:1px solid var(--line);padding:.3em .5em;margin:0 -.5em;display:flex;flex-wrap:wrap;gap:.4em 1.2em;align-items:baseline}
.jobbar h2{font-size:1.1em;margin:0}
.jobbar #state{font-weight:bold}
#live.lost{color:#c62828;font-weight:bold}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em;margin:.5em 0}dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
.note{color:var(--muted)}
.tag{font-size:.8em;border:1px solid var(--line);border-radius:.6em;padding:0 .4em;color:var(--muted)}
nav.filters p{margin:.3em 0}nav.filters a{margin-right:.6em}nav.filters a[aria-current]{font-weight:bold;text-decoration:none;border-bottom:2px solid}
p.skipped{margin:.3em 0;padding:.3em .6em;border-left:4px solid #b26a00;background:#fff4e0;color:#222}
svg.chart{max-width:100%;height:auto;font:11px sans-serif}svg.chart text{fill:var(--fg)}svg.chart .axis{stroke:var(--muted);fill:none}svg.chart .over{fill:var(--fg)}
.term-fg1{font-weight:bold}.term-fg2{opacity:.7}.term-fg3{font-style:italic}.term-fg4{text-decoration:underline}.term-fg9{text-decoration:line-through}
.term-fg30{color:#666}.term-fg31{color:#f55}.term-fg32{color:#5d5}.term-fg33{color:#dd5}.term-fg34{color:#68f}.term-fg35{color:#d6d}.term-fg36{color:#5dd}.term-fg37{color:#eee}
.term-fgi90{color:#888}.term-fgi91{color:#f77}.term-fgi92{color:#7f7}.term-fgi93{color:#ff7}.term-fgi94{color:#8af}.term-fgi95{color:#f8f}.term-fgi96{color:#7ff}.term-fgi97{color:#fff}
.term-bg40{background:#000}.term-bg41{background:#a00}.term-bg42{background:#0a0}.term-bg43{background:#a50}.term-bg44{background:#00a}.term-bg45{background:#a0a}.term-bg46{background:#0aa}.term-bg47{background:#aaa}
` + stateCSS()

// palette is the job page's second stylesheet: the 256-colour palette.
var palette = paletteCSS()

// script makes a job page live. It follows a running job's log: it
// appends each event's lines, shows the line being written (a "partial"
// event) in place until it ends, and shows the result when the job ends.
// It resumes where it stopped after a cut (EventSource sends
// Last-Event-ID; after a failed reconnect it starts anew from the last
// offset it has). A stream that ends is normal (under CGI every visit
// does): the status says the connection is lost only when no stream has
// opened again for a while. It ticks a running job's duration, numbers
// the lines it appends as the page numbered the others, keeps the end in
// view while "follow" is on (scrolling up turns it off), and makes a
// click on a line's number its link (#L120).
//
// The job's output is only ever put inside a <pre class="log">. What jobq
// itself says about the log (that part of it was skipped: a "skipped"
// event, which no job output can make) goes between two of them, in an
// element made here with its text: no output can look like it from where
// it is.
const script = `
(function () {
  var log = document.getElementById("log");
  if (!log) { return; }
  log.addEventListener("click", function (e) {
    var t = e.target, r = t.getClientRects()[0];
    if (t.nodeName === "CODE" && t.id && r && e.clientX - r.left < parseFloat(getComputedStyle(t, "::before").width)) {
      location.hash = t.id;
    }
  });
  var status = document.getElementById("live"), dur = document.getElementById("duration");
  if (!status) { return; }
  var follow = document.getElementById("follow"), partial = document.getElementById("partial");
  var url = log.getAttribute("data-events"), offset = log.getAttribute("data-offset"), raw = log.getAttribute("data-raw");
  var line = Number(log.getAttribute("data-line") || "0"), es, done = false, lost = null;
  var started = Date.parse(dur.getAttribute("data-started") || ""), skew = Date.now() - Date.parse(dur.getAttribute("data-now"));
  document.getElementById("followbox").hidden = false;
  follow.checked = !/^#L/.test(location.hash);
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function time(s) {
    var d = new Date(s);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function duration(ms) {
    if (ms < 1000) { return Math.round(ms) + "ms"; }
    if (ms < 60000) { return String(Math.round(ms / 100) / 10) + "s"; }
    var s = Math.round(ms / 1000), h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
    return (h ? h + "h" : "") + m + "m" + (s % 60) + "s";
  }
  var tick = isNaN(started) ? null : setInterval(function () {
    dur.textContent = duration(Math.max(0, Date.now() - skew - started));
  }, 1000);
  function set(id, text) { var e = document.getElementById(id); if (e) { e.textContent = text; } }
  function atEnd() { return window.innerHeight + window.scrollY >= document.body.scrollHeight - 40; }
  function toEnd() { if (follow.checked) { window.scrollTo(0, document.body.scrollHeight); } }
  window.addEventListener("scroll", function () { if (!atEnd()) { follow.checked = false; } });
  follow.addEventListener("change", toEnd);
  function say(text, cls) { status.textContent = text; status.className = cls; }
  function open() {
    es = new EventSource(url + "?from=" + offset);
    es.onopen = function () { clearTimeout(lost); lost = null; say("live", "ok"); };
    es.onmessage = function (e) {
      var html = e.data + "\n";
      if (line > 0) {
        html = "";
        e.data.split("\n").forEach(function (l) { html += '<code id="L' + line + '">' + l + "</code>\n"; line++; });
      }
      partial.textContent = "";
      partial.insertAdjacentHTML("beforebegin", html);
      offset = e.lastEventId;
      toEnd();
    };
    es.addEventListener("partial", function (e) {
      partial.innerHTML = e.data;
      toEnd();
    });
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
      partial.textContent = "";
      pre.appendChild(partial);
      log = pre;
      line = 0;
      offset = e.lastEventId;
    });
    es.addEventListener("end", function (e) {
      var j = JSON.parse(e.data);
      done = true;
      es.close();
      clearTimeout(lost);
      clearInterval(tick);
      partial.textContent = "";
      set("state", j.state);
      document.getElementById("state").className = j.state;
      set("finished", j.finished_at ? time(j.finished_at) : "-");
      set("duration", j.duration_ms !== undefined ? duration(j.duration_ms) : "-");
      set("exit", j.exit_code !== undefined ? String(j.exit_code) : "-");
      say("ended: " + j.state, "ok");
    });
    es.onerror = function () {
      if (done) { return; }
      if (lost === null) {
        lost = setTimeout(function () { say("connection lost: the server cannot be reached; retrying", "lost"); }, 8000);
      }
      if (es.readyState === 2) { setTimeout(open, 2000); }
    };
  }
  say("connecting", "ok");
  open();
})();
`

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// csp allows the page's own inline style and script, by hash, and
// connections to itself (the events); nothing else loads or runs.
var csp = "default-src 'none'; script-src " + hash(script) + "; style-src " + hash(style) + " " + hash(palette) +
	"; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const frame = `{{define "top"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<link rel="icon" href="data:,">
<style>{{style}}</style>
{{block "head" .}}{{end}}
</head><body>
<header><h1><a href="{{.Base}}/">jobq</a></h1>{{block "crumbs" .}}{{end}}<span class="note">{{if .User}}signed in as {{.User}}{{else}}anonymous{{if .SignIn}} · <a href="{{.SignIn}}">sign in</a>{{end}}{{end}}</span></header>
<main>
{{end}}
{{define "bottom"}}</main>
</body></html>
{{end}}
{{define "when"}}{{with when .}}<time datetime="{{.ISO}}" title="{{.Abs}}">{{.Rel}}</time>{{else}}-{{end}}{{end}}
{{define "jobrow"}}<tr><td><a href="{{.Base}}/{{.Repo}}/{{.ID}}">{{.ID}}</a></td><td class="{{.State}}">{{.State}}{{if .Ahead}} ({{.Ahead}} ahead){{end}}{{if .Waiting}}; {{.Waiting}}{{end}}</td>{{if .Job}}<td><a href="{{refLink .Job.Ref}}">{{.Job.Ref}}</a></td><td><code>{{.Short}}</code></td><td class="subject">{{.Subject}}</td><td>{{.Job.User}}</td><td>{{template "when" .Job.QueuedAt}}</td>{{else}}<td>-</td><td>-</td><td></td><td>-</td><td>-</td>{{end}}<td>{{.Duration}}</td><td>{{.Exit}}</td></tr>
{{end}}
`

const overviewTmpl = `{{template "top" .}}
<h2>Running</h2>
{{if .Running}}<div class="wrap"><table><tr><th>repository</th><th>job</th><th>host</th><th>queue</th><th>running for</th></tr>
{{range .Running}}<tr><td><a href="{{$.Base}}/{{.Repo}}/">{{.Repo}}</a></td><td><a href="{{$.Base}}/{{.Repo}}/{{.ID}}">{{.ID}}</a></td><td>{{.Host}}</td><td>{{.Job.Queue}}</td><td>{{.Duration}}</td></tr>
{{end}}</table></div>{{else}}<p class="note">Nothing runs now.</p>{{end}}
<h2>Waiting</h2>
{{if .Waiting}}<div class="wrap"><table><tr><th>queue</th><th>position</th><th>repository</th><th>job</th><th>queued</th><th>why</th></tr>
{{range .Waiting}}<tr><td>{{.Job.Queue}}</td><td>{{.Ahead}} ahead</td><td><a href="{{$.Base}}/{{.Repo}}/">{{.Repo}}</a></td><td><a href="{{$.Base}}/{{.Repo}}/{{.ID}}">{{.ID}}</a></td><td>{{template "when" .Job.QueuedAt}}</td><td>{{.Waiting}}</td></tr>
{{end}}</table></div>{{else}}<p class="note">Nothing waits.</p>{{end}}
<h2>Repositories</h2>
{{if .Repos}}<div class="wrap"><table><tr><th>repository</th><th>latest</th><th>job</th><th>ref</th><th>queued</th></tr>
{{range .Repos}}<tr><td><a href="{{$.Base}}/{{.Repo}}/">{{.Repo}}</a>{{if .Public}} <span class="tag" title="anyone may read it (gitweb), not only your account">public</span>{{end}}</td>{{with .Latest}}<td class="{{.State}}">{{.State}}</td><td><a href="{{$.Base}}/{{.Repo}}/{{.ID}}">{{.ID}}</a></td><td>{{if .Job}}{{.Job.Ref}}{{end}}</td><td>{{if .Job}}{{template "when" .Job.QueuedAt}}{{end}}</td>{{else}}<td>-</td><td></td><td></td><td></td>{{end}}</tr>
{{end}}</table></div>{{else}}<p class="note">No repositories with jobs that you may read.</p>{{end}}
{{if .User}}<p class="note">Repositories marked public are those anyone may read (gitolite's gitweb user); the others you read as {{.User}}.</p>{{end}}
{{template "bottom" .}}`

const repoTmpl = `{{define "crumbs"}}<a href="{{.Base}}/{{.Repo}}/">{{.Repo}}</a>{{end}}{{template "top" .}}
<h2>{{.Repo}}{{if .Public}} <span class="tag" title="anyone may read it (gitweb), not only your account">public</span>{{end}}</h2>
<nav class="filters" aria-label="filters">
<p><span class="note">State{{if .Window}} (of the newest {{.Window}} jobs){{end}}:</span> <a href="{{.All}}"{{if not .StateFilter}} aria-current="page"{{end}}>all</a>{{range .Counts}} <a class="{{.State}}" href="{{.Link}}"{{if .Current}} aria-current="page"{{end}}>{{.State}} {{.N}}</a>{{end}}</p>
{{if .Refs}}<p><span class="note">Ref:</span> <a href="{{.AllRefs}}"{{if not .RefFilter}} aria-current="page"{{end}}>all</a>{{range .Refs}} <a href="{{.Link}}"{{if .Current}} aria-current="page"{{end}}>{{.Ref}}</a>{{end}}</p>{{end}}
</nav>
{{if .Filtered}}<p class="note">Jobs{{if .StateFilter}} in state {{.StateFilter}}{{end}}{{if .RefFilter}} of {{.RefFilter}}{{end}}, from ID {{.Top}} down to {{.First}}{{if .Rows}}{{else}}: none{{end}}.</p>{{end}}
{{with .Chart}}{{if .Bars}}<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="group" aria-label="durations of the last {{len .Bars}} jobs, oldest left">
<title>Durations of the last {{len .Bars}} jobs, oldest left (longest {{.Max}}{{if .Over}}; {{.Over}} beyond the axis, marked ▲{{end}})</title>
<path class="axis" d="M{{.Left}} {{.Top}}V{{.Bottom}}H{{.Right}}"/>{{range .Ticks}}<path class="axis" d="M{{$.Chart.TickX}} {{.Y}}H{{$.Chart.Left}}"/><text x="{{$.Chart.LabelX}}" y="{{.Y}}" dy="4" text-anchor="end">{{.Label}}</text>{{end}}
<text x="{{.Left}}" y="{{.AxisTitleY}}" text-anchor="start">duration (axis up to {{.Cap}}) · jobs, oldest left</text>
{{range .Bars}}<a href="{{$.Base}}/{{$.Repo}}/{{.ID}}"><rect class="c-{{.State}}" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}"><title>job {{.ID}}: {{.State}}, {{.Label}}</title></rect>{{if .Over}}<path class="over" d="M{{.X}} {{.MarkY}}h{{.W}}l-{{.Half}} -6z"><title>job {{.ID}}: {{.Label}}, beyond the axis</title></path>{{end}}</a>
{{end}}{{range .Legend}}<path class="c-{{.State}}" d="M{{.X}} {{$.Chart.LegendY}}h10v-10h-10z"/><text x="{{.TextX}}" y="{{$.Chart.LegendY}}">{{.State}}</text>{{end}}{{if .Over}}<path class="over" d="M{{.OverX}} {{.LegendY}}h10l-5 -6z"/><text x="{{.OverTextX}}" y="{{.LegendY}}">beyond the axis</text>{{end}}
</svg>{{end}}{{end}}
{{if .Rows}}<div class="wrap"><table><tr><th>job</th><th>state</th><th>ref</th><th>revision</th><th>subject</th><th>pushed by</th><th>queued</th><th>duration</th><th>exit</th></tr>
{{range .Rows}}{{template "jobrow" (withBase $.Base .)}}{{end}}</table></div>{{else}}<p class="note">No jobs{{if not .Filtered}} kept with IDs {{.First}} to {{.Top}}{{end}}.</p>{{end}}
<p>{{if .Newer}}<a href="{{.Newer}}">← newer</a> {{end}}{{if .Older}}<a href="{{.Older}}">older →</a>{{end}}</p>
<p class="note"><img alt="" src="{{.Base}}/{{.Repo}}/badge.svg" height="20"> Badge: <code>{{.Base}}/{{.Repo}}/badge.svg?ref=refs/heads/master</code> · <a href="?json">JSON</a></p>
{{template "bottom" .}}`

const jobTmpl = `{{define "head"}}{{if .Live}}<noscript><meta http-equiv="refresh" content="10"></noscript>{{end}}<style>{{palette}}</style>{{end}}{{define "crumbs"}}<a href="{{.Base}}/{{.Repo}}/">{{.Repo}}</a> <span>job {{.ID}}</span>{{end}}{{template "top" .}}
<div class="jobbar"><h2>{{.Repo}} job {{.ID}}</h2><span id="state" class="{{.State}}">{{.StateText}}</span><span>duration <span id="duration" data-started="{{.Started}}" data-now="{{.Now}}">{{.Duration}}</span></span>
<span><a href="#end">jump to end</a> · <a href="{{.Raw}}">raw log</a> · <a href="?json">JSON</a></span>{{if .Live}}<label id="followbox" hidden><input type="checkbox" id="follow"> follow</label><span id="live" role="status">following needs JavaScript; this page reloads without it</span>{{end}}</div>
<dl>{{range .Header}}<dt>{{.Name}}</dt><dd{{if .ID}} id="{{.ID}}"{{end}}>{{.Value}}</dd>{{end}}{{if .Error}}<dt>reason</dt><dd>{{.Error}}</dd>{{end}}</dl>
<section aria-label="ssh commands"><p class="note">From a terminal (the view itself changes nothing):</p>
<dl>{{range .Commands}}<dt>{{.Name}}</dt><dd><code class="cmd">{{.Value}}</code></dd>{{end}}</dl></section>
{{if .Artifacts}}<h3>Artifacts</h3><ul class="artifacts" id="artifacts">{{range .Artifacts}}<li><a href="{{.URL}}" download>{{.Path}}</a> <span class="note">{{.Size}}</span></li>{{end}}</ul>{{end}}
{{if gt .Log.Start 0}}<p class="note">The last {{bytes .Log.End .Log.Start}} of {{bytes .Log.Size 0}} of log: the raw log has all of it.</p>{{end}}
<pre class="log" id="log" data-events="{{.Events}}" data-raw="{{.Raw}}" data-offset="{{.Log.End}}"{{if .Log.Numbered}} data-line="{{.Log.NextLine}}"{{end}}>{{.Log.HTML | trusted}}<span id="partial"></span></pre><span id="end"></span>
<script>{{script}}</script>
{{template "bottom" .}}`

// withBase gives a row template the base path.
type baseRow struct {
	row
	Base string
}

var templates = map[string]*template.Template{}

func init() {
	funcs := template.FuncMap{
		"style":   func() template.CSS { return template.CSS(style) },
		"script":  func() template.JS { return template.JS(script) },
		"palette": func() template.CSS { return template.CSS(palette) },
		"when":    when,
		"refLink": func(ref string) string { return "?" + url.Values{"ref": {ref}}.Encode() },
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

// whenText is a time as the pages show it: how long ago, with the time
// itself (and its zone, the server's) on hover.
type whenText struct {
	Rel, Abs, ISO string
}

func when(t time.Time) *whenText {
	if t.IsZero() {
		return nil
	}
	return &whenText{Rel: ago(time.Since(t)), Abs: t.Local().Format("2006-01-02 15:04:05 MST (-07:00)"), ISO: t.UTC().Format(time.RFC3339)}
}

// ago says how long ago something was, roughly.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h ago"
	default:
		return strconv.Itoa(int(d/(24*time.Hour))) + " days ago"
	}
}
