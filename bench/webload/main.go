// Command webload measures jobq-web (bench/web.sh runs it): the repository
// page of a long history, the job page of a big finished log, and many
// followers of one running job's log, each as a listener and as a CGI
// program, in one run. It prints one Markdown table row per figure.
//
//	webload -web BIN -data DIR -home GLHOME [-runs N] [-clients N] [-bytes N] [-logbytes N]
//
// DIR holds the repositories big (a long history), huge and live (one job
// each, as bench/seed writes them); webload gives huge's job a log of
// -logbytes and makes live's job a running one whose log it writes.
// GLHOME is a gitolite's home whose rules let gitweb read the three.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jobq/jobq/internal/human"
	"github.com/jobq/jobq/queue"
)

type config struct {
	web, data, home string
	runs, clients   int
	bytes, logBytes int64
}

func main() {
	var c config
	flag.StringVar(&c.web, "web", "", "the jobq-web program")
	flag.StringVar(&c.data, "data", "", "jobq's data directory")
	flag.StringVar(&c.home, "home", "", "the gitolite account's home")
	flag.IntVar(&c.runs, "runs", 20, "requests per page figure")
	flag.IntVar(&c.clients, "clients", 100, "followers of the running job")
	flag.Int64Var(&c.bytes, "bytes", 10<<20, "bytes the running job writes")
	flag.Int64Var(&c.logBytes, "logbytes", 1<<30, "size of the finished log")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "webload:", err)
		os.Exit(1)
	}
}

func (c config) env() []string {
	return []string{"HOME=" + c.home, "JOBQ_HOME=" + c.data, "PATH=/usr/local/bin:/usr/bin:/bin"}
}

func run(c config) error {
	if err := writeLog(filepath.Join(c.data, "repos", "huge", "0", "log"), c.logBytes); err != nil {
		return err
	}
	// The gitolite check alone, for reference: what the CGI program pays
	// on every request (a listener keeps the answer for a while).
	var gl []float64
	for range c.runs {
		start := time.Now()
		cmd := exec.Command("gitolite", "access", "-q", "big", "gitweb", "R", "any")
		cmd.Env = c.env()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("gitolite access: %w", err)
		}
		gl = append(gl, ms(time.Since(start)))
	}
	fmt.Printf("| gitolite access check (Perl), for reference | %s ms | | | |\n", f(median(gl)))

	for _, page := range []struct{ what, path, target string }{
		{"repository page (%s jobs of history)", "/big/", "≤ 50 ms"},
		{"job page (finished %s log)", "/huge/0", "≤ 50 ms, ≤ 50 MiB RSS"},
	} {
		what := fmt.Sprintf(page.what, count(c))
		if page.path == "/huge/0" {
			what = fmt.Sprintf(page.what, human.Bytes(c.logBytes))
		}
		l, err := startListener(c)
		if err != nil {
			return err
		}
		var lt []float64
		for i := range c.runs + 1 {
			start := time.Now()
			resp, err := http.Get(l.url + page.path)
			if err != nil {
				l.stop()
				return err
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n < 1000 {
				l.stop()
				return fmt.Errorf("GET %s: %s, %d bytes", page.path, resp.Status, n)
			}
			if i > 0 { // the first fills the access cache
				lt = append(lt, ms(time.Since(start)))
			}
		}
		lrss := l.peakRSS()
		l.stop()
		// The first CGI request asks gitolite; the next ones find its
		// answer in the access cache's file, as within 10 s of it.
		os.RemoveAll(filepath.Join(c.home, ".cache", "jobq-web"))
		var ct, crss []float64
		var cold float64
		for i := range c.runs + 1 {
			d, rss, _, err := cgi(c, page.path, "", nil)
			if err != nil {
				return err
			}
			if i == 0 {
				cold = ms(d)
				continue
			}
			ct, crss = append(ct, ms(d)), append(crss, rss)
		}
		fmt.Printf("| %s | listener: %s ms, peak RSS %s MiB | CGI: %s ms, peak RSS %s MiB (the first, which asks gitolite: %s ms) | %s | %s |\n",
			what, f(median(lt)), f(lrss), f(median(ct)), f(median(crss)), f(cold), ratio(median(ct), median(lt)), page.target)
	}

	for _, mode := range []string{"listener", "CGI"} {
		r, err := follow(c, mode)
		if err != nil {
			return fmt.Errorf("%s followers: %w", mode, err)
		}
		fmt.Printf("| %d followers of one job writing %s (%s) | every client every byte: %s; delay write→client median %s ms, p90 %s ms | server RSS %s MiB (%s) | | median ≤ 100 ms |\n",
			c.clients, human.Bytes(c.bytes), mode, r.complete, f(r.median), f(r.p90), f(r.rss), r.rssWhat)
	}
	return nil
}

func count(c config) string {
	b, err := os.ReadFile(filepath.Join(c.data, "repos", "big", "next"))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// writeLog replaces a finished job's log with n bytes of log lines.
func writeLog(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var written int64
	for i := 0; written < n; i++ {
		k, _ := fmt.Fprintf(w, "%09d \x1b[32mok\x1b[0m compiling package number %d of the build, with some words\n", i, i)
		written += int64(k)
	}
	fmt.Fprintf(w, "jobq: succeeded, exit code 0, after 1h\n")
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type listener struct {
	cmd *exec.Cmd
	url string
}

func startListener(c config) (*listener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	// Every follower comes from 127.0.0.1: one client, whose share must
	// hold them all.
	cmd := exec.Command(c.web, "--listen", addr, "--max-followers-per-client", strconv.Itoa(max(c.clients, 16)))
	cmd.Env = c.env()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ls := &listener{cmd: cmd, url: "http://" + addr}
	for range 100 {
		if resp, err := http.Get(ls.url + "/"); err == nil {
			resp.Body.Close()
			return ls, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	ls.stop()
	return nil, errors.New("the listener does not answer")
}

// peakRSS is the listener's peak resident size so far, in MiB.
func (l *listener) peakRSS() float64 { return statusMiB(l.cmd.Process.Pid, "VmHWM:") }

func (l *listener) stop() {
	l.cmd.Process.Signal(syscall.SIGTERM)
	l.cmd.Wait()
}

func statusMiB(pid int, field string) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// cgi runs jobq-web as a CGI program for one GET of path, as fcgiwrap does
// (without nginx and fcgiwrap themselves); with out, it streams the body
// there. It returns the wall time and the peak RSS in MiB.
func cgi(c config, path, query string, out func(io.Reader) error) (time.Duration, float64, *exec.Cmd, error) {
	cmd := exec.Command(c.web)
	cmd.Env = append(c.env(), "GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET", "SERVER_PROTOCOL=HTTP/1.1",
		"SERVER_NAME=bench", "SERVER_PORT=80", "SCRIPT_NAME=/jobq", "PATH_INFO="+path, "QUERY_STRING="+query,
		"REQUEST_URI=/jobq"+path+"?"+query, "NO_BUFFERING=1")
	start := time.Now()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, 0, nil, err
	}
	var body bytes.Buffer
	if out != nil {
		err = out(stdout)
	} else {
		_, err = io.Copy(&body, stdout)
	}
	werr := cmd.Wait()
	d := time.Since(start)
	if err == nil {
		err = werr
	}
	if err != nil {
		return 0, 0, nil, err
	}
	if out == nil && (!strings.HasPrefix(body.String(), "Status: 200") && !strings.Contains(body.String(), "Content-Type: text/html") || body.Len() < 1000) {
		return 0, 0, nil, fmt.Errorf("CGI %s: %.200q", path, body.String())
	}
	rss := float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024
	return d, rss, cmd, nil
}

type followResult struct {
	complete    string
	median, p90 float64
	rss         float64
	rssWhat     string
}

// follow has c.clients followers on live's job while it writes c.bytes,
// and checks that each gets every line once.
func follow(c config, mode string) (followResult, error) {
	store, err := queue.Open(c.data)
	if err != nil {
		return followResult{}, err
	}
	logPath := store.LogPath("live", 0)
	if err := os.WriteFile(logPath, []byte("jobq: job 0 of live\n"), 0o600); err != nil {
		return followResult{}, err
	}
	start := int64(len("jobq: job 0 of live\n"))
	if _, err := store.Update("live", 0, func(j *queue.Job) error {
		j.State, j.StartedAt, j.FinishedAt, j.ExitCode, j.Worker = queue.Running, time.Now().UTC(), time.Time{}, nil, os.Getpid()
		return nil
	}); err != nil {
		return followResult{}, err
	}
	lines := int((c.bytes + lineLen - 1) / lineLen)
	var (
		mu    sync.Mutex
		hist  = make([]int, 100000) // delays in 0.1 ms buckets, up to 10 s
		errs  []error
		wg    sync.WaitGroup
		ready sync.WaitGroup
	)
	record := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	// One follower, over one stream (listener) or visits that each end
	// (CGI: the browser comes back from the last event id, after retry).
	type follower struct {
		seen    []bool
		n       int64
		skipped int64 // bytes the server said it skipped (a "skipped" event)
		got     bool  // the end event came
		last    int64 // the last event id: where the next visit starts
	}
	read := func(f *follower, r io.Reader, started func()) error {
		got, n, skipped, last, err := readFollow(r, started, func(seq int, sent int64) {
			d := time.Since(time.Unix(0, sent))
			b := min(int(d/(100*time.Microsecond)), len(hist)-1)
			mu.Lock()
			hist[b]++
			mu.Unlock()
			if seq >= 0 && seq < lines {
				if f.seen[seq] {
					record(fmt.Errorf("line %d twice", seq))
				}
				f.seen[seq] = true
			}
		})
		f.n += n
		f.skipped += skipped
		f.got = f.got || got
		if last >= 0 {
			f.last = last
		}
		return err
	}
	// A follower gets every byte, or is told which it does not get: the
	// server skips what is more than 1 MiB behind when a visit starts.
	var toldClients int
	var toldBytes int64
	check := func(f *follower) error {
		if !f.got {
			return errors.New("no end event")
		}
		if f.n+f.skipped != c.bytes {
			return fmt.Errorf("%d bytes of text and %d said skipped, want %d", f.n, f.skipped, c.bytes)
		}
		if missing := int64(len(f.seen) - countTrue(f.seen)); missing*lineLen != f.skipped {
			return fmt.Errorf("%d lines never came, %d bytes said skipped", missing, f.skipped)
		}
		if f.skipped > 0 {
			mu.Lock()
			toldClients++
			toldBytes += f.skipped
			mu.Unlock()
		}
		return nil
	}
	ready.Add(c.clients)
	var procs []*exec.Cmd
	var procMu sync.Mutex
	var l *listener
	if mode == "listener" {
		if l, err = startListener(c); err != nil {
			return followResult{}, err
		}
		defer l.stop()
	}
	for range c.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started := sync.OnceFunc(ready.Done)
			defer started() // also when it failed before
			var err error
			f := &follower{seen: make([]bool, lines), last: start}
			if mode == "listener" {
				var resp *http.Response
				resp, err = (&http.Client{Transport: &http.Transport{}}).Get(fmt.Sprintf("%s/live/0/events?from=%d", l.url, start))
				if err == nil {
					err = read(f, resp.Body, started)
					resp.Body.Close()
				}
			} else {
				// As a browser does: a visit, then another from the last
				// event id after the server's retry (0.7 s), until the end.
				for visit := 0; err == nil && !f.got; visit++ {
					if visit > 0 {
						started() // the first visit subscribed
						time.Sleep(700 * time.Millisecond)
					}
					var cmd *exec.Cmd
					_, _, cmd, err = cgi(c, "/live/0/events", fmt.Sprintf("from=%d", f.last), func(r io.Reader) error {
						return read(f, r, started)
					})
					procMu.Lock()
					procs = append(procs, cmd)
					procMu.Unlock()
				}
			}
			if err == nil {
				err = check(f)
			}
			if err != nil {
				record(err)
			}
		}()
	}
	ready.Wait()
	time.Sleep(200 * time.Millisecond) // the last ones to subscribe
	var rssDuring float64
	if mode == "CGI" {
		rssDuring = sumRSS(c)
	}
	if err := writeLines(logPath, lines, c.bytes); err != nil {
		return followResult{}, err
	}
	if mode == "CGI" {
		rssDuring = max(rssDuring, sumRSS(c))
	}
	var peak float64
	if l != nil {
		peak = l.peakRSS()
	}
	store.Update("live", 0, func(j *queue.Job) error {
		code := 0
		j.State, j.FinishedAt, j.ExitCode = queue.Succeeded, time.Now().UTC(), &code
		return nil
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		return followResult{}, errors.New("followers did not finish")
	}
	r := followResult{complete: "yes", median: quantile(hist, 0.5), p90: quantile(hist, 0.9)}
	if toldClients > 0 {
		r.complete = fmt.Sprintf("yes, or said skipped (%d clients were told of %s skipped in all)", toldClients, human.Bytes(toldBytes))
	}
	if len(errs) > 0 {
		r.complete = fmt.Sprintf("NO (%d errors, first: %v)", len(errs), errs[0])
	}
	if mode == "listener" {
		r.rss, r.rssWhat = peak, "one process, peak"
	} else {
		r.rss, r.rssWhat = rssDuring, fmt.Sprintf("%d processes, summed", c.clients)
	}
	return r, nil
}

// sumRSS adds up the resident sizes of the running jobq-web processes.
func sumRSS(c config) float64 {
	ents, _ := os.ReadDir("/proc")
	var sum float64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe == c.web {
			sum += statusMiB(pid, "VmRSS:")
		}
	}
	return sum
}

// lineLen is the length of each line writeLines writes.
const lineLen = 100

// writeLines appends n lines totalling total bytes to the log, 100 lines
// every 10 ms (1 MB/s), each "SEQ SENT-UNIX-NANOS padding".
func writeLines(path string, n int, total int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	pad := strings.Repeat("x", lineLen)
	var written int64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var buf bytes.Buffer
	for seq := 0; seq < n; {
		<-tick.C
		buf.Reset()
		now := time.Now().UnixNano()
		for k := 0; k < 100 && seq < n; k, seq = k+1, seq+1 {
			line := fmt.Sprintf("%08d %019d ", seq, now)
			size := min(int64(lineLen), total-written)
			line += pad[:max(size-int64(len(line))-1, 0)] + "\n"
			buf.WriteString(line)
			written += int64(len(line))
		}
		if _, err := f.Write(buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// readFollow reads an SSE stream (a CGI response's headers first, if
// any): it calls line for each log line of ours, and returns whether the
// end event came, how many bytes of text (lines and newlines) came, how
// many the server said it skipped, and the last event id.
func readFollow(r io.Reader, started func(), line func(seq int, sent int64)) (bool, int64, int64, int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	var n, skipped int64
	last := int64(-1)
	event := ""
	for sc.Scan() {
		t := sc.Text()
		switch {
		case t == "":
			if event == "end" {
				return true, n, skipped, last, nil
			}
			event = ""
		case strings.HasPrefix(t, "retry: "):
			started() // the server follows now
		case strings.HasPrefix(t, "id: "):
			if id, err := strconv.ParseInt(t[4:], 10, 64); err == nil {
				last = id
			}
		case strings.HasPrefix(t, "event: "):
			event = t[7:]
		case strings.HasPrefix(t, "data: ") && event == "skipped":
			var ev struct{ Bytes int64 }
			if err := json.Unmarshal([]byte(t[6:]), &ev); err != nil {
				return false, n, skipped, last, fmt.Errorf("skipped event %q: %w", t, err)
			}
			skipped += ev.Bytes
		case strings.HasPrefix(t, "data: ") && event == "":
			d := t[6:]
			if len(d) >= 28 && d[8] == ' ' && d[28] == ' ' {
				seq, err1 := strconv.Atoi(d[:8])
				sent, err2 := strconv.ParseInt(d[9:28], 10, 64)
				if err1 == nil && err2 == nil {
					line(seq, sent)
					n += int64(len(d)) + 1
				}
			}
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return false, n, skipped, last, err
	}
	return false, n, skipped, last, nil
}

func countTrue(v []bool) int {
	n := 0
	for _, b := range v {
		if b {
			n++
		}
	}
	return n
}

func quantile(hist []int, q float64) float64 {
	total := 0
	for _, n := range hist {
		total += n
	}
	want, acc := int(float64(total)*q), 0
	for i, n := range hist {
		acc += n
		if acc > want {
			return float64(i) / 10
		}
	}
	return float64(len(hist)) / 10
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func f(v float64) string {
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func ratio(a, b float64) string { return strconv.FormatFloat(a/b, 'f', 2, 64) + "×" }
