package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/internal/metrics"
	"github.com/jobq/jobq/notify"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/web"
)

// metricsAddress is the address --metrics-listen names. A port alone
// (PORT, :PORT) is on the loopback address only, not on every address as
// Go would take ":PORT" (port 0: any free one, which the log line
// names): the metrics are for a scraper the administrator
// allows, and a wider address must be written out (0.0.0.0:PORT).
func metricsAddress(s string) (string, error) {
	if _, err := strconv.ParseUint(s, 10, 16); err == nil {
		return net.JoinHostPort("127.0.0.1", s), nil
	}
	host, port, err := net.SplitHostPort(s)
	if _, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil {
		return "", cli.Usagef("--metrics-listen %.100q: not PORT or HOST:PORT", s)
	}
	if strings.Trim(host, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:%") != "" {
		return "", cli.Usagef("--metrics-listen %.100q: not PORT or HOST:PORT", s)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// metricsOptions are the metrics' options from the command line, and
// the count of notifications not yet delivered from store.
func metricsOptions(store *queue.Store, repoLabels bool) metrics.Options {
	return metrics.Options{
		RepoLabels:           repoLabels,
		NotificationsPending: func() (int, error) { return notify.Pending(store) },
	}
}

// metricsHandler serves /metrics (GET) and nothing else.
func metricsHandler(c *metrics.Collector) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", c.Handler())
	return mux
}

// serveMetrics answers the metrics on l until ctx ends. The history is
// read once at the start, so that the first scrape does not wait for it.
func serveMetrics(ctx context.Context, store *queue.Store, l net.Listener, o metrics.Options) error {
	c := metrics.New(store, o)
	go func() {
		if err := c.Refresh(); err != nil {
			fmt.Fprintf(os.Stderr, "jobq-web: metrics: %v\n", err)
		}
	}()
	hs := &http.Server{
		Handler:           metricsHandler(c),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
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

// serveBoth serves the view on l and the metrics on ml until ctx ends
// or either fails.
func serveBoth(ctx context.Context, srv *web.Server, l net.Listener, store *queue.Store, ml net.Listener, o metrics.Options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- serve(ctx, srv, l, idleTimeout); cancel() }()
	go func() { errc <- serveMetrics(ctx, store, ml, o); cancel() }()
	return errors.Join(<-errc, <-errc)
}
