// Command jobq-web serves jobq's read-only web view (package web): as a
// CGI program when the web server runs it as one (GATEWAY_INTERFACE is
// set), or as its own listener (--listen ADDR). It runs as the hosting
// account, which owns the data directory and runs gitolite.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/web"
)

const usage = `usage: jobq-web --listen ADDR [--user-header NAME] [--client-header NAME] [--base PATH] [--sign-in PATH] [--ssh COMMAND]
                [--metrics-listen [HOST:]PORT [--metrics-repo-labels]]
       jobq-web --metrics-listen [HOST:]PORT [--metrics-repo-labels]
       (as a CGI program: no arguments; REMOTE_USER is the visitor)

Serves jobq's read-only web view. A visitor without a user is gitolite's
"gitweb" user and sees what "R = gitweb" allows; an authenticated one sees
what gitolite lets them read.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(cli.Exit(os.Stderr, "jobq-web", run(ctx, os.Args[1:], os.Stderr)))
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("jobq-web", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	listen := fs.String("listen", "", "serve HTTP on this address (e.g. 127.0.0.1:8080)")
	userHeader := fs.String("user-header", "", "request header that names the authenticated user, set by a proxy in front (default: none, every visitor is anonymous)")
	base := fs.String("base", "", "path prefix the view is served under, e.g. /jobq")
	ttl := fs.Duration("access-ttl", 10*time.Second, "how long a gitolite access answer is kept (per user and repository)")
	maxFollowers := fs.Int("max-followers", 256, "live logs followed at once (listener); more are told to come back later")
	perClient := fs.Int("max-followers-per-client", 16, "live logs one client follows at once (listener): an authenticated user, else an address")
	clientHeader := fs.String("client-header", "", "request header that carries the visitor's address, set by a proxy in front, e.g. X-Real-IP (default: none, the connection's address)")
	keepAlive := fs.Duration("keep-alive", 15*time.Second, "interval of a live log's keep-alive comments and of its followers' access checks")
	metricsListen := fs.String("metrics-listen", "", "serve Prometheus metrics at /metrics on this address, and nothing else there; a port alone (9469, :9469) is on 127.0.0.1 only (default: no metrics)")
	repoLabels := fs.Bool("metrics-repo-labels", false, "label job metrics with repository names (which may be private: for a trusted scraper)")
	signIn := fs.String("sign-in", "", "where the view is served to authenticated visitors (a path such as /jobq-auth, or a URL): anonymous pages link there (CGI: $JOBQ_WEB_SIGN_IN)")
	sshCmd := fs.String("ssh", "", `the ssh command the job page shows before "jobq cancel REPO ID", e.g. "ssh git@git.example.org" (CGI: $JOBQ_WEB_SSH; default: ssh ACCOUNT@HOST, with the host the visitor asked for)`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return cli.Usagef("%v", err)
	}
	cgiMode := os.Getenv("GATEWAY_INTERFACE") != ""
	if cgiMode && *metricsListen != "" {
		return cli.Usagef("--metrics-listen needs jobq-web's own listener, not CGI: the metrics are never served with the pages")
	}
	if fs.NArg() > 0 || (*listen == "" && *metricsListen == "") == !cgiMode {
		fs.Usage()
		return cli.Usagef("give --listen ADDR, or run as a CGI program")
	}
	if *repoLabels && *metricsListen == "" {
		return cli.Usagef("--metrics-repo-labels is for --metrics-listen")
	}
	metricsAddr := ""
	if *metricsListen != "" {
		var err error
		if metricsAddr, err = metricsAddress(*metricsListen); err != nil {
			return err
		}
	}
	if *base != "" && (!strings.HasPrefix(*base, "/") || strings.HasSuffix(*base, "/")) {
		return cli.Usagef("--base %q: must start with / and not end with one", *base)
	}
	if *maxFollowers < 1 || *perClient < 1 || *keepAlive <= 0 || *ttl < 0 {
		return cli.Usagef("--max-followers and --max-followers-per-client must be at least 1, --keep-alive more than 0, --access-ttl not negative")
	}
	env := fullEnv(os.Environ())
	getenv := func(k string) string { return lookup(env, k) }
	home, err := queue.Home(getenv)
	if err != nil {
		return err
	}
	store, err := queue.Open(home)
	if err != nil {
		return err
	}
	srv := &web.Server{
		Store:   store,
		Access:  &web.Access{Env: gitoliteEnv(env), TTL: *ttl},
		Watcher: &web.Watcher{},
		Base:    *base,

		KeepAlive:             *keepAlive,
		MaxFollowers:          *maxFollowers,
		MaxFollowersPerClient: *perClient,
	}
	if cgiMode {
		// The web server's configuration says these (fastcgi_param).
		*signIn, *sshCmd = getenv("JOBQ_WEB_SIGN_IN"), getenv("JOBQ_WEB_SSH")
	}
	if err := checkText("--sign-in", *signIn); err != nil {
		return err
	}
	if err := checkText("--ssh", *sshCmd); err != nil {
		return err
	}
	srv.SignIn, srv.SSH = strings.TrimSuffix(*signIn, "/"), *sshCmd
	if cgiMode {
		srv.Short = true // a held stream would block the CGI gateway
		// One request a process: answers are kept in files between them.
		if cache := cacheDir(env); cache != "" {
			srv.Access.CacheDir = cache
		}
		return serveCGI(srv)
	}
	if *userHeader != "" {
		name := http.CanonicalHeaderKey(*userHeader)
		srv.User = func(r *http.Request) string { return r.Header.Get(name) }
	}
	srv.ClientHeader = *clientHeader
	var ml net.Listener
	if metricsAddr != "" {
		if ml, err = net.Listen("tcp", metricsAddr); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "jobq-web: metrics on http://%s/metrics\n", ml.Addr())
		if *listen == "" {
			return serveMetrics(ctx, store, ml, metricsOptions(store, *repoLabels))
		}
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		if ml != nil {
			ml.Close()
		}
		return err
	}
	fmt.Fprintf(os.Stderr, "jobq-web: serving http://%s%s/\n", l.Addr(), srv.Base)
	if ml == nil {
		return serve(ctx, srv, l, idleTimeout)
	}
	return serveBoth(ctx, srv, l, store, ml, metricsOptions(store, *repoLabels))
}

// idleTimeout is how long the listener keeps a connection that waits for
// its next request: a browser comes back within seconds, and each
// connection held costs a descriptor and a goroutine.
const idleTimeout = 60 * time.Second

// serveCGI answers the one request of this process. The web server says
// where the view is (SCRIPT_NAME) and what is asked below it (PATH_INFO,
// which it has decoded and normalised), and who the visitor is
// (REMOTE_USER, set only where it authenticated them).
func serveCGI(srv *web.Server) error {
	srv.Base = strings.TrimSuffix(os.Getenv("SCRIPT_NAME"), "/")
	remoteUser := os.Getenv("REMOTE_USER")
	srv.User = func(*http.Request) string { return remoteUser }
	pathInfo, hasPathInfo := os.LookupEnv("PATH_INFO")
	return cgi.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hasPathInfo {
			r.URL.Path, r.URL.RawPath = srv.Base+pathInfo, ""
		}
		srv.ServeHTTP(w, r)
	}))
}

// serve answers on l until ctx ends.
func serve(ctx context.Context, srv *web.Server, l net.Listener, idle time.Duration) error {
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       idle,
		MaxHeaderBytes:    64 << 10,
		// No ReadTimeout or WriteTimeout: they would cut every live log's
		// stream (a read deadline makes the server cancel the request).
		// The requests are GETs whose bodies are never read.
		//
		// Followers' streams end with the process: their requests carry
		// this context.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	return runServer(ctx, hs, l)
}

// runServer serves hs on l until ctx ends, then shuts it down, giving
// requests under way 5 s.
func runServer(ctx context.Context, hs *http.Server, l net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(shutdown)
}

// fullEnv is the environment with HOME and PATH, which gitolite needs and
// a CGI program may lack: HOME from the account's entry, PATH the usual.
func fullEnv(env []string) []string {
	if lookup(env, "HOME") == "" {
		if u, err := user.Current(); err == nil && u.HomeDir != "" {
			env = append(env, "HOME="+u.HomeDir)
		}
	}
	if lookup(env, "PATH") == "" {
		env = append(env, "PATH=/usr/local/bin:/usr/bin:/bin")
	}
	return env
}

// cacheDir is where a CGI program keeps gitolite's answers:
// $XDG_CACHE_HOME/jobq-web/access, else ~/.cache/jobq-web/access.
func cacheDir(env []string) string {
	if d := lookup(env, "XDG_CACHE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "jobq-web", "access")
	}
	if h := lookup(env, "HOME"); filepath.IsAbs(h) {
		return filepath.Join(h, ".cache", "jobq-web", "access")
	}
	return ""
}

// gitoliteEnv is what gitolite gets of the environment: what it needs,
// and nothing of a CGI request's (REMOTE_USER, HTTP_*), which a visitor
// shapes.
func gitoliteEnv(env []string) []string {
	var out []string
	for _, k := range []string{"HOME", "PATH", "USER", "GL_BINDIR"} {
		if v := lookup(env, k); v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

func lookup(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}

// checkText refuses a setting a page could not show as one line of text.
func checkText(name, v string) error {
	if len(v) > 512 || strings.ContainsFunc(v, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		return cli.Usagef("%s %q: one line of text, at most 512 bytes", name, v)
	}
	return nil
}
