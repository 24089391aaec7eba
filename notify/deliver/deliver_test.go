package deliver

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobq/jobq/notify"
	"github.com/jobq/jobq/queue"
)

const key = "webhook-signing-key"

// finished makes a store with one job of ref, recorded with state, whose
// notifications are prepared for dests.
func finished(t *testing.T, ref string, state queue.State, o queue.Options) (*queue.Store, *queue.Job) {
	t.Helper()
	s, err := queue.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	j := &queue.Job{Repo: "team/app", Queue: queue.DefaultQueue("team/app"), Ref: ref, NewRev: strings.Repeat("ab", 20), User: "alice", Options: o}
	if _, err := s.Enqueue(j); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(s.LogPath(j.Repo, j.ID), []byte("jobq: job 0\n\x1b[31mred\x1b[0m line\n\x1b]0;title\x07after title\nlast line\n"), 0o600)
	code := 2
	j.State, j.ExitCode, j.StartedAt, j.FinishedAt = state, &code, time.Now().Add(-time.Second), time.Now()
	if ok, err := notify.Prepare(s, j); err != nil || !ok {
		t.Fatalf("Prepare = %v, %v", ok, err)
	}
	if _, err := s.Update(j.Repo, j.ID, func(r *queue.Job) error { *r = *j; return nil }); err != nil {
		t.Fatal(err)
	}
	return s, j
}

func newDeliverer(s *queue.Store, t *testing.T) *Deliverer {
	return New(Config{Store: s, Backoff: 50 * time.Millisecond, HTTPTimeout: time.Second, ExecTimeout: time.Second,
		Secret: func(name string) ([]byte, error) {
			if name != "hook" {
				return nil, os.ErrNotExist
			}
			return []byte(key), nil
		},
		Logf: t.Logf})
}

// settle sends j's notifications and waits until they are delivered or
// given up; it returns the record.
func settle(t *testing.T, d *Deliverer, s *queue.Store, j *queue.Job) *notify.Record {
	t.Helper()
	d.Send(j)
	d.Close(20 * time.Second)
	r, err := notify.Read(s, j.Repo, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// receiver is a webhook receiver that checks signatures and dedupes on
// the idempotency key.
type receiver struct {
	mu    sync.Mutex
	seen  map[string]int
	bodys [][]byte
	bad   int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if !hmac.Equal([]byte(r.Header.Get(SignatureHeader)), []byte(Sign([]byte(key), body))) {
		rc.bad++
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	if rc.seen == nil {
		rc.seen = map[string]int{}
	}
	rc.seen[r.Header.Get(KeyHeader)]++
	rc.bodys = append(rc.bodys, body)
}

func TestWebhook(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, j := finished(t, "refs/heads/master", queue.Failed, queue.Options{Notify: []string{srv.URL + "/hook?token=T0KEN"}, NotifySecret: "hook", WebURL: "https://ci.example.org/jobq"})
	r := settle(t, newDeliverer(s, t), s, j)
	if d := r.Deliveries[0]; d.Status != notify.Delivered || d.Attempts != 1 {
		t.Fatalf("delivery %+v", d)
	}
	if rc.bad != 0 || len(rc.bodys) != 1 || rc.seen[r.Key] != 1 {
		t.Fatalf("receiver saw %d bad, %d bodies, keys %v", rc.bad, len(rc.bodys), rc.seen)
	}
	var p map[string]any
	if err := json.Unmarshal(rc.bodys[0], &p); err != nil {
		t.Fatal(err)
	}
	if p["repository"] != "team/app" || p["state"] != "failed" || p["event"] != "failed" || p["ref"] != "refs/heads/master" ||
		p["link"] != "https://ci.example.org/jobq/team/app/0" || p["idempotency_key"] != r.Key {
		t.Errorf("payload %s", rc.bodys[0])
	}
	for _, hidden := range []string{"options", "env", "git_dir", "notify", "T0KEN", "worker"} {
		if bytes.Contains(rc.bodys[0], []byte(hidden)) {
			t.Errorf("payload shows %q: %s", hidden, rc.bodys[0])
		}
	}
	if n, _ := notify.Pending(s); n != 0 {
		t.Errorf("Pending = %d after delivery", n)
	}
}

// A receiver down for the first three tries gets it once it is up, once.
func TestWebhookRetries(t *testing.T) {
	rc := &receiver{}
	var tries atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tries.Add(1) <= 3 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		rc.ServeHTTP(w, r)
	}))
	defer srv.Close()
	s, j := finished(t, "refs/heads/master", queue.Failed, queue.Options{Notify: []string{srv.URL}, NotifySecret: "hook"})
	r := settle(t, newDeliverer(s, t), s, j)
	if d := r.Deliveries[0]; d.Status != notify.Delivered || d.Attempts != 4 || d.LastError != "" {
		t.Fatalf("delivery %+v", d)
	}
	if rc.seen[r.Key] != 1 {
		t.Errorf("keys seen %v", rc.seen)
	}
}

// Without the secret it signs with, a webhook is not sent unsigned.
func TestWebhookMissingSecret(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	s, j := finished(t, "refs/heads/master", queue.Failed, queue.Options{Notify: []string{srv.URL}, NotifySecret: "gone"})
	d := newDeliverer(s, t)
	d.Send(j)
	time.Sleep(300 * time.Millisecond)
	d.Close(0)
	r, _ := notify.Read(s, j.Repo, j.ID)
	if hits.Load() != 0 || r.Deliveries[0].Status != notify.Waiting || !strings.Contains(r.Deliveries[0].LastError, "signing secret gone") {
		t.Errorf("hits %d, delivery %+v", hits.Load(), r.Deliveries[0])
	}
}

// Attacks by the receiver: a redirect to another host (SSRF by its
// say-so), an answer that never comes, a gigantic body. None is
// followed, none holds the worker past its timeout, none is read whole;
// and no error shows the URL's token.
func TestWebhookHostile(t *testing.T) {
	var internal atomic.Int32
	inner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { internal.Add(1) }))
	defer inner.Close()
	var sent atomic.Int64
	block := make(chan struct{})
	var sameHost atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inner.URL+"/metadata", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/redirect-get", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound) // would turn the POST into a GET without the body
	})
	mux.HandleFunc("/redirect-same", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusPermanentRedirect)
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		if b, _ := io.ReadAll(r.Body); r.Method == http.MethodPost && len(b) > 0 {
			sameHost.Add(1)
		}
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for i := 0; i < 1024; i++ { // 1 GiB, if read
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(block) // before the server's Close, which waits for its handlers
	tests := []struct {
		path, wantErr string
		delivered     bool
	}{
		{"/redirect?token=T0KEN", "redirect to another host", false},
		{"/redirect-get?token=T0KEN", "redirect to another host, or one that drops the body", false},
		{"/redirect-same?token=T0KEN", "", true},
		{"/hang?token=T0KEN", "no answer within 1s", false},
		{"/huge?token=T0KEN", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			s, j := finished(t, "refs/heads/master", queue.Failed, queue.Options{Notify: []string{srv.URL + tt.path}})
			d := newDeliverer(s, t)
			start := time.Now()
			oneTry(t, d, s, j)
			took := time.Since(start)
			r, _ := notify.Read(s, j.Repo, j.ID)
			del := r.Deliveries[0]
			if (del.Status == notify.Delivered) != tt.delivered || !strings.Contains(del.LastError, tt.wantErr) {
				t.Errorf("delivery %+v", del)
			}
			if strings.Contains(del.LastError, "T0KEN") || strings.Contains(del.LastError, srv.URL) {
				t.Errorf("the error shows the destination: %q", del.LastError)
			}
			if took > 3*time.Second {
				t.Errorf("one try took %s", took)
			}
		})
	}
	if internal.Load() != 0 {
		t.Errorf("a redirect reached another host %d times", internal.Load())
	}
	if sameHost.Load() != 1 {
		t.Errorf("the same host's redirect was followed with the body %d times", sameHost.Load())
	}
	if n := sent.Load(); n > 16<<20 {
		t.Errorf("the receiver wrote %d bytes before the worker hung up", n)
	}
}

// exec: the JSON on stdin; a program that hangs, or forks a child that
// holds on, is killed, its process group with it.
func TestExec(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got := filepath.Join(dir, "got")
	pidf := filepath.Join(dir, "pid")
	tests := []struct {
		name, body string
		delivered  bool
		wantErr    string
	}{
		{"reads", "cat >" + got + "; echo to the log of the worker; env >>" + got + "\n", true, ""},
		{"fails", "exit 3\n", false, "exit status 3"},
		{"hangs", "echo $$ >" + pidf + "; sleep 300\n", false, "did not finish within 1s"},
		{"forks", "(sleep 300 & echo $! >" + pidf + "; wait) &\nexit 0\n", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(pidf)
			s, j := finished(t, "refs/heads/master", queue.Failed, queue.Options{Notify: []string{"exec:" + script(tt.name, tt.body)}})
			start := time.Now()
			d := newDeliverer(s, t)
			oneTry(t, d, s, j)
			r, _ := notify.Read(s, j.Repo, j.ID)
			del := r.Deliveries[0]
			if (del.Status == notify.Delivered) != tt.delivered || !strings.Contains(del.LastError, tt.wantErr) {
				t.Errorf("delivery %+v", del)
			}
			if strings.Contains(del.LastError, dir) {
				t.Errorf("the error shows the program's path: %q", del.LastError)
			}
			if took := time.Since(start); took > 4*time.Second {
				t.Errorf("took %s", took)
			}
			if b, err := os.ReadFile(pidf); err == nil {
				pid := strings.TrimSpace(string(b))
				if pid == "" {
					// Killed between opening the file and writing to it:
					// the sleep it had started went with its group.
					return
				}
				testWait(t, "process "+pid+" killed", func() bool {
					_, err := os.Stat("/proc/" + pid)
					st, _ := os.ReadFile("/proc/" + pid + "/stat")
					return err != nil || strings.Contains(string(st), ") Z ")
				})
			}
		})
	}
	b, _ := os.ReadFile(got)
	if !bytes.Contains(b, []byte(`"repository":"team/app"`)) || !bytes.Contains(b, []byte("JOBQ_EVENT=failed")) {
		t.Errorf("the program read %s", b)
	}
}

// oneTry sends j's notification and stops the deliverer after its first
// try.
func oneTry(t *testing.T, d *Deliverer, s *queue.Store, j *queue.Job) {
	t.Helper()
	d.Send(j)
	testWait(t, "a try", func() bool {
		r, err := notify.Read(s, j.Repo, j.ID)
		return err == nil && r.Deliveries[0].Attempts > 0
	})
	d.Close(0)
}

func testWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Errorf("waited 5s for %s", what)
}

// Mail: the header fields come only from jobq; a ref, or anything of the
// job, with CR LF in it cannot add one (git refuses such refs: this is a
// second wall).
func TestMailHeaderInjection(t *testing.T) {
	ref := "refs/heads/x\r\nBcc: evil@example.org\r\n\r\nforged body"
	s, j := finished(t, ref, queue.Failed, queue.Options{Notify: []string{"mailto:ops@example.org"}, WebURL: "https://ci.example.org"})
	j.Error = "reason\nX-Evil: 1"
	r, _ := notify.Read(s, j.Repo, j.ID)
	msg := mailMessage(s, j, r, "mailto:ops@example.org,dev@example.org", time.Now())
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	for k := range m.Header {
		switch k {
		case "To", "Subject", "Date", "Message-Id", "Mime-Version", "Content-Type", "Content-Transfer-Encoding", "Auto-Submitted", "X-Jobq-Idempotency-Key":
		default:
			t.Errorf("header %q: %q", k, m.Header.Get(k))
		}
	}
	if to := m.Header.Get("To"); to != "ops@example.org, dev@example.org" {
		t.Errorf("To: %q", to)
	}
	subj, err := new(mimeDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || !strings.Contains(subj, "team/app") || !strings.Contains(subj, "job 0 failed") || !strings.Contains(subj, "^M^JBcc") {
		t.Errorf("Subject %q %v", subj, err)
	}
	body, _ := io.ReadAll(m.Body)
	for _, want := range []string{"Repository: team/app", "red line", "after title", "last line", "Link:", "https://ci.example.org/team/app/0"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if bytes.Contains(body, []byte("\x1b")) || bytes.Contains(body, []byte("title\x07")) {
		t.Errorf("terminal sequences in the mail:\n%q", body)
	}
}

// Mail goes through the sendmail given, with -t -oi and the message on
// its standard input (a stand-in here: the e2e test uses the host's MTA).
func TestMailSendmail(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "msg")
	sm := filepath.Join(dir, "sendmail")
	os.WriteFile(sm, []byte("#!/bin/sh\necho \"$@\" >"+out+"\ncat >>"+out+"\n"), 0o755)
	s, j := finished(t, "refs/heads/master", queue.TimedOut, queue.Options{Notify: []string{"mailto:ops@example.org"}})
	d := New(Config{Store: s, Sendmail: sm, Logf: t.Logf})
	r := settle(t, d, s, j)
	if r.Deliveries[0].Status != notify.Delivered {
		t.Fatalf("delivery %+v", r.Deliveries[0])
	}
	b, _ := os.ReadFile(out)
	if !bytes.HasPrefix(b, []byte("-t -oi\nTo: ops@example.org\r\n")) || !bytes.Contains(b, []byte("job 0 timed-out")) {
		t.Errorf("sendmail got:\n%s", b)
	}
}

type mimeDecoder = mime.WordDecoder
