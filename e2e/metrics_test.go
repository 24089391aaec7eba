package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/jobq/jobq/internal/testenv"
)

func init() { confParts = append(confParts, metricsConf) }

// metricsConf: jobs that run for two seconds, one at a time.
const metricsConf = `
repo metricsrepo
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/steps started sleep:2 done"
`

// scrapeMetrics GETs url and parses it with the Prometheus client
// library's parser.
func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if resp.StatusCode != 200 || err != nil {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return fams
}

// metricValue is the value of name's series whose labels are labels
// (pairs), or -1: a gauge's value, a histogram's count.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
series:
	for _, m := range f.Metric {
		if len(m.Label) != len(labels)/2 {
			continue
		}
		for _, l := range m.Label {
			found := false
			for i := 0; i+1 < len(labels); i += 2 {
				found = found || labels[i] == l.GetName() && labels[i+1] == l.GetValue()
			}
			if !found {
				continue series
			}
		}
		if m.Histogram != nil {
			return float64(m.Histogram.GetSampleCount())
		}
		return m.Gauge.GetValue()
	}
	return -1
}

// jobq-web's metrics listener, as the hosting account, during and after a
// burst of pushes: the running job and its slot while it runs; then jobs
// by state as jobq ls shows them, and each job's duration observed once.
// The view's own listener serves no metrics.
func TestMetricsAfterABurst(t *testing.T) {
	view, mp := fmt.Sprintf("127.0.0.1:%d", freePort(t)), freePort(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	cmd := asAccount([]string{"HOME=" + env.Home, "PATH=/usr/local/bin:/usr/bin:/bin"}, filepath.Join(env.Bin, "jobq"),
		"web", "--listen", view, "--metrics-listen", fmt.Sprint(mp), "--metrics-repo-labels")
	out, _ := os.Create(filepath.Join(dir, "jobq-web.out"))
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", mp)
	testenv.WaitUntil(t, "the metrics listener answers", 10*time.Second, func() bool {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	before := metricValue(scrapeMetrics(t, url), "jobq_job_duration_seconds", "repo", "metricsrepo", "state", "succeeded")
	if before < 0 {
		before = 0
	}
	const pushers, each = 3, 2
	var wg sync.WaitGroup
	for range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				push(t, "metricsrepo", nil, "HEAD:refs/heads/b"+fmt.Sprint(time.Now().UnixNano()))
			}
		}()
	}
	// While a job runs, it and its slot show.
	testenv.WaitUntil(t, "a running job in the metrics", time.Minute, func() bool {
		fams := scrapeMetrics(t, url)
		return metricValue(fams, "jobq_jobs", "repo", "metricsrepo", "state", "running") == 1 && metricValue(fams, "jobq_slots_in_use") >= 1
	})
	wg.Wait()
	jobs := waitFinal(t, "metricsrepo", len(listJSON(t, "alice", "metricsrepo")))
	byState := map[string]int{}
	for _, j := range jobs {
		byState[j.State]++
	}
	fams := scrapeMetrics(t, url)
	for _, st := range []string{"queued", "running", "succeeded", "failed", "timed-out", "cancelled", "lost", "unreadable"} {
		if v := metricValue(fams, "jobq_jobs", "repo", "metricsrepo", "state", st); v != float64(byState[st]) {
			t.Errorf("jobq_jobs{repo=metricsrepo,state=%s} = %v; jobq ls shows %d", st, v, byState[st])
		}
	}
	if v := metricValue(fams, "jobq_job_duration_seconds", "repo", "metricsrepo", "state", "succeeded"); v-before != pushers*each {
		t.Errorf("%v durations observed, want %d", v-before, pushers*each)
	}
	if v := metricValue(fams, "jobq_jobs", "state", "queued"); v != -1 {
		t.Errorf("with --metrics-repo-labels, a series without the repository: %v", v)
	}
	// The view's listener: no metrics.
	for _, p := range []string{"/metrics", "/metrics/"} {
		resp, err := http.Get("http://" + view + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || strings.Contains(string(b), "jobq_jobs") {
			t.Errorf("GET %s on the view's listener: %d\n%.300s", p, resp.StatusCode, b)
		}
	}
}
