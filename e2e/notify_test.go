package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

// The notifications' receiver listens from init on: the configuration
// names its port. The mail goes to the hosting account's own mailbox,
// through the host's MTA (exim4's sendmail, scripts/setup).
var notifyLn net.Listener

func init() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	notifyLn = ln
	conf := strings.NewReplacer("PORT", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), "ACCOUNT", testAccount()).Replace(notifyConf)
	confParts = append(confParts, conf)
}

// testAccount is the hosting account testenv.Start makes.
func testAccount() string {
	if a := os.Getenv("JOBQ_TEST_ACCOUNT"); a != "" {
		return a
	}
	return "jobq-test"
}

const notifyConf = `
repo notify-fail notify-change notify-always notify-retry notify-bad
    RW+ = alice
    R   = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/outcome"
    option ENV.JOBQ_NOTIFY_SECRET = "notify-key"
    option ENV.JOBQ_WEB_URL = "https://ci.example.org/jobq"

repo notify-fail
    option ENV.JOBQ_NOTIFY = "mailto:ACCOUNT@localhost http://127.0.0.1:PORT/fail?token=T0KEN exec:%[1]s/on-job"

repo notify-change
    option ENV.JOBQ_NOTIFY = "http://127.0.0.1:PORT/change"
    option ENV.JOBQ_NOTIFY_ON = "change"

repo notify-always
    option ENV.JOBQ_NOTIFY = "http://127.0.0.1:PORT/always exec:%[1]s/on-job"
    option ENV.JOBQ_NOTIFY_ON = "always"

repo notify-retry
    option ENV.JOBQ_NOTIFY = "http://127.0.0.1:PORT/retry"

repo notify-bad
    option ENV.JOBQ_NOTIFY = "mailto:ops@example.org?bcc=evil@example.org"
`

// outcome exits with the number in the pushed revision's file "outcome".
const outcome = `#!/bin/sh
code=$(git show "$GIT_REV_NEW:outcome" 2>/dev/null || echo 0)
echo "outcome $code"
exit "$code"
`

// onJob is the exec destination: it keeps what it reads.
const onJob = `#!/bin/sh
mkdir -p "$HOME/notify-exec"
cat >"$HOME/notify-exec/$JOBQ_REPO-$JOBQ_JOB_ID-$JOBQ_EVENT.json"
`

const notifyKey = "e2e-webhook-signing-key"

// hooks is the webhook receiver: it checks each request's signature and
// keeps one body per idempotency key, as a receiver that dedupes does.
type hooks struct {
	mu       sync.Mutex
	requests map[string]int              // by path
	bodies   map[string][]map[string]any // by path, one per key
	keys     map[string]bool
	bad      []string
	down     map[string]int // path → requests answered 503 before it is up
}

func (h *hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests[r.URL.Path]++
	if h.down[r.URL.Path] > 0 {
		h.down[r.URL.Path]--
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	m := hmac.New(sha256.New, []byte(notifyKey))
	m.Write(body)
	if r.Header.Get("X-Jobq-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
		h.bad = append(h.bad, r.URL.Path)
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key == "" || h.keys[key] {
		return // seen: dropped
	}
	h.keys[key] = true
	var p map[string]any
	json.Unmarshal(body, &p)
	h.bodies[r.URL.Path] = append(h.bodies[r.URL.Path], p)
}

func (h *hooks) got(path string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.bodies[path]...)
}

// notifyJSON is jobq REPO ID --json's notifications.
type notifyJSON struct {
	ID            int    `json:"id"`
	State         string `json:"state"`
	Notifications []struct {
		Kind      string `json:"kind"`
		Event     string `json:"event"`
		State     string `json:"state"`
		Attempts  int    `json:"attempts"`
		LastError string `json:"last_error"`
	} `json:"notifications"`
}

func jobNotifications(t *testing.T, repo string, id int) (notifyJSON, string) {
	t.Helper()
	r := ssh("carol", "jobq", repo, strconv.Itoa(id), "--json")
	if r.Code != 0 {
		t.Fatalf("jobq %s %d --json: %s", repo, id, r)
	}
	var v notifyJSON
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		t.Fatalf("jobq %s %d --json: %v\n%s", repo, id, err, r.Stdout)
	}
	return v, r.Stdout
}

// mailbox reads the hosting account's mailbox: the messages whose
// subject contains s.
func mailbox(t *testing.T, s string) []*mail.Message {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/var/mail", env.User))
	if err != nil {
		return nil
	}
	var out []*mail.Message
	for _, raw := range bytes.Split(b, []byte("\nFrom ")) {
		// Each part begins with (the rest of) its mbox From_ line.
		if _, rest, ok := bytes.Cut(raw, []byte("\n")); ok {
			raw = rest
		}
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			continue
		}
		subj, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		if strings.Contains(subj, s) {
			out = append(out, m)
		}
	}
	return out
}

func pushOutcome(t *testing.T, repo string, code int) {
	t.Helper()
	push(t, repo, map[string]string{"outcome": strconv.Itoa(code) + "\n", "stamp": time.Now().String()})
}

func TestNotify(t *testing.T) {
	for name, body := range map[string]string{"outcome": outcome, "on-job": onJob} {
		if err := os.WriteFile(filepath.Join(env.Bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The signing key, in the host's secret store (the account's own).
	if out, err := env.AsUser(context.Background(), nil, "sh", "-c",
		`rm -rf "$HOME/notify-exec" && printf %s `+notifyKey+` | `+filepath.Join(env.Bin, "jobq")+` secret set notify-key`); err != nil {
		t.Fatalf("jobq secret set: %v %s", err, out)
	}
	// Only this account's mailbox, and the messages of this run.
	os.Remove(filepath.Join("/var/mail", env.User))
	t.Cleanup(func() { os.Remove(filepath.Join("/var/mail", env.User)) })
	testenv.Require(t, fileExists("/usr/sbin/sendmail"), "an MTA's /usr/sbin/sendmail (exim4-daemon-light, scripts/setup)")
	h := &hooks{requests: map[string]int{}, bodies: map[string][]map[string]any{}, keys: map[string]bool{}, down: map[string]int{"/retry": 3}}
	srv := &http.Server{Handler: h}
	go srv.Serve(notifyLn)
	defer srv.Close()
	execFile := func(repo string, id int, event string) string {
		return filepath.Join(env.Home, "notify-exec", fmt.Sprintf("%s-%d-%s.json", repo, id, event))
	}

	t.Run("failure", func(t *testing.T) {
		pushOutcome(t, "notify-fail", 3)
		follow(t, "alice", "notify-fail", 0)
		testenv.WaitUntil(t, "the webhook", time.Minute, func() bool { return len(h.got("/fail")) == 1 })
		p := h.got("/fail")[0]
		if p["repository"] != "notify-fail" || p["state"] != "failed" || p["event"] != "failed" || p["id"] != 0.0 ||
			p["link"] != "https://ci.example.org/jobq/notify-fail/0" || p["ref"] != "refs/heads/master" {
			t.Errorf("webhook payload %v", p)
		}
		testenv.WaitUntil(t, "the exec destination", time.Minute, func() bool { return fileExists(execFile("notify-fail", 0, "failed")) })
		b, _ := os.ReadFile(execFile("notify-fail", 0, "failed"))
		if !bytes.Contains(b, []byte(`"repository":"notify-fail"`)) || !bytes.Contains(b, []byte(`"exit_code":3`)) {
			t.Errorf("exec read %s", b)
		}
		testenv.WaitUntil(t, "the mail", time.Minute, func() bool { return len(mailbox(t, "notify-fail")) > 0 })
		ms := mailbox(t, "notify-fail")
		m := ms[0]
		subj, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		body, _ := io.ReadAll(m.Body)
		if len(ms) != 1 || subj != "[jobq] notify-fail refs/heads/master job 0 failed" || m.Header.Get("To") != env.User+"@localhost" {
			t.Errorf("%d messages; Subject %q, To %q", len(ms), subj, m.Header.Get("To"))
		}
		for _, want := range []string{"Repository: notify-fail", "State:     failed, exit code 3", "Link:      https://ci.example.org/jobq/notify-fail/0", "outcome 3", "jobq: failed, exit code 3"} {
			if !bytes.Contains(body, []byte(want)) {
				t.Errorf("the mail lacks %q:\n%s", want, body)
			}
		}
		// Readers see each destination's delivery, never the destination.
		v, raw := jobNotifications(t, "notify-fail", 0)
		testenv.WaitUntil(t, "all three recorded delivered", 30*time.Second, func() bool {
			v, raw = jobNotifications(t, "notify-fail", 0)
			n := 0
			for _, d := range v.Notifications {
				if d.State == "delivered" && d.Attempts == 1 {
					n++
				}
			}
			return n == 3
		})
		if len(v.Notifications) != 3 || v.Notifications[0].Kind != "mail" || v.Notifications[1].Kind != "webhook" || v.Notifications[2].Kind != "exec" {
			t.Errorf("notifications %+v", v.Notifications)
		}
		for _, secret := range []string{"127.0.0.1", "T0KEN", "on-job", "localhost", notifyKey} {
			if strings.Contains(raw, secret) {
				t.Errorf("jobq --json shows %q:\n%s", secret, raw)
			}
		}
		// A success tells nothing (failure is the default): decided, and
		// recorded, before the result is.
		pushOutcome(t, "notify-fail", 0)
		follow(t, "alice", "notify-fail", 1)
		if v, _ := jobNotifications(t, "notify-fail", 1); v.State != "succeeded" || len(v.Notifications) != 0 {
			t.Errorf("job 1: %+v", v)
		}
	})

	// A branch named like a header (git refuses CR and LF in a ref, and
	// gitolite '=', ':' and anything not ASCII, so a name cannot break a
	// line; it can look like a field, and be long): the message's header
	// fields stay jobq's, and it goes only to the account.
	t.Run("hostile ref", func(t *testing.T) {
		ref := "refs/heads/Bcc.root@localhost/Subject.x/" + strings.TrimSuffix(strings.Repeat(strings.Repeat("x", 100)+"/", 3), "/")
		push(t, "notify-fail", map[string]string{"outcome": "5\n"}, "HEAD:"+ref)
		follow(t, "alice", "notify-fail", 2)
		testenv.WaitUntil(t, "the mail", time.Minute, func() bool { return len(mailbox(t, "notify-fail refs/heads/Bcc.")) > 0 })
		ms := mailbox(t, "notify-fail refs/heads/Bcc.")
		m := ms[0]
		for k := range m.Header {
			switch k {
			case "To", "Subject", "Date", "Message-Id", "Mime-Version", "Content-Type", "Content-Transfer-Encoding", "Auto-Submitted", "X-Jobq-Idempotency-Key",
				"Return-Path", "Envelope-To", "Delivery-Date", "Received", "From", "Status": // the MTA's
			default:
				t.Errorf("header %s: %q", k, m.Header.Get(k))
			}
		}
		subj, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		if len(ms) != 1 || err != nil || !strings.HasPrefix(subj, "[jobq] notify-fail refs/heads/Bcc.root@localhost/Subject.x/xxx") || !strings.HasSuffix(subj, "xxx… job 2 failed") ||
			m.Header.Get("To") != env.User+"@localhost" || m.Header.Get("Bcc") != "" {
			t.Errorf("%d messages; Subject %q (%v), To %q", len(ms), subj, err, m.Header.Get("To"))
		}
	})

	t.Run("change", func(t *testing.T) {
		for id, code := range []int{1, 2, 0, 0} {
			pushOutcome(t, "notify-change", code)
			follow(t, "alice", "notify-change", id)
		}
		testenv.WaitUntil(t, "broken and fixed", time.Minute, func() bool { return len(h.got("/change")) >= 2 })
		var events []string
		for _, p := range h.got("/change") {
			events = append(events, fmt.Sprintf("%v:%v", p["id"], p["event"]))
		}
		if strings.Join(events, " ") != "0:broken 2:fixed" {
			t.Errorf("events %v, want 0:broken 2:fixed", events)
		}
		for _, id := range []int{1, 3} {
			if v, _ := jobNotifications(t, "notify-change", id); len(v.Notifications) != 0 {
				t.Errorf("job %d: %+v", id, v)
			}
		}
	})

	t.Run("always", func(t *testing.T) {
		pushOutcome(t, "notify-always", 0)
		follow(t, "alice", "notify-always", 0)
		testenv.WaitUntil(t, "the webhook", time.Minute, func() bool { return len(h.got("/always")) == 1 })
		if p := h.got("/always")[0]; p["event"] != "succeeded" || p["state"] != "succeeded" {
			t.Errorf("payload %v", p)
		}
		testenv.WaitUntil(t, "the exec destination", time.Minute, func() bool { return fileExists(execFile("notify-always", 0, "succeeded")) })
	})

	// A receiver down for the first three tries gets it at the fourth,
	// from the worker that ran the job (1 s, 2 s, 4 s apart).
	t.Run("retry", func(t *testing.T) {
		pushOutcome(t, "notify-retry", 1)
		follow(t, "alice", "notify-retry", 0)
		testenv.WaitUntil(t, "the webhook", time.Minute, func() bool { return len(h.got("/retry")) == 1 })
		h.mu.Lock()
		n := h.requests["/retry"]
		h.mu.Unlock()
		if n != 4 {
			t.Errorf("%d requests, want 4", n)
		}
		testenv.WaitUntil(t, "delivered at the fourth try", 30*time.Second, func() bool {
			v, _ := jobNotifications(t, "notify-retry", 0)
			return len(v.Notifications) == 1 && v.Notifications[0].State == "delivered" && v.Notifications[0].Attempts == 4
		})
	})

	// A hostile option (a mailto: with a header) is one line to the
	// pusher, and no job.
	t.Run("bad option", func(t *testing.T) {
		r, _ := push(t, "notify-bad", nil)
		want := `jobq: JOBQ_NOTIFY="mailto:ops@example.org?bcc=evil@example.org" holds "mailto:ops@example.org?bcc=evil@example.org", not mailto:ADDRESS[,ADDRESS...] (no ?headers); no job queued`
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("push said:\n%s\nwant %s", r.Stderr, want)
		}
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.bad) > 0 {
		t.Errorf("requests with a bad signature: %v", h.bad)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
