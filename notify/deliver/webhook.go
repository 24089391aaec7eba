package deliver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/jobq/jobq/notify"
	"github.com/jobq/jobq/queue"
)

// Headers of a webhook's request.
const (
	// SignatureHeader is "sha256=" and the hex HMAC-SHA256 of the body,
	// keyed with the secret JOBQ_NOTIFY_SECRET names.
	SignatureHeader = "X-Jobq-Signature"
	// KeyHeader is the idempotency key: the same on every try of one
	// job's notification (a receiver drops what it has seen).
	KeyHeader   = "Idempotency-Key"
	EventHeader = "X-Jobq-Event"
)

// maxRedirects bounds the redirects a webhook follows, to its own host.
const maxRedirects = 3

// maxResponse is how much of a receiver's answer is read: nothing of it
// is kept, and a gigantic one must not hold the worker.
const maxResponse = 64 << 10

// errRedirect refuses a redirect to another host: the destination is the
// administrator's choice, a redirect the receiver's (a request to an
// internal address, on the receiver's say-so, is the SSRF to prevent).
var errRedirect = errors.New("redirect to another host, or one that drops the body, not followed")

func newClient(timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxResponseHeaderBytes = maxResponse
	t.ResponseHeaderTimeout = timeout
	t.DialContext = (&net.Dialer{Timeout: timeout}).DialContext
	return &http.Client{
		Timeout:   timeout,
		Transport: t,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			first := via[0].URL
			if len(via) > maxRedirects || req.URL.Scheme != first.Scheme || req.URL.Host != first.Host || req.Method != http.MethodPost {
				return errRedirect
			}
			return nil
		},
	}
}

// Sign is a webhook body's signature under key, as SignatureHeader has it.
func Sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// webhook POSTs the job's JSON to dest. Its errors never hold the URL
// (readers see them, and a URL may hold a token).
func (d *Deliverer) webhook(j *queue.Job, r *notify.Record, dest string) error {
	body, err := payload(j, r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dest, bytes.NewReader(body))
	if err != nil {
		return errors.New("webhook: not a URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "jobq")
	req.Header.Set(KeyHeader, r.Key)
	req.Header.Set(EventHeader, r.Event)
	if name := j.Options.NotifySecret; name != "" {
		key, err := d.cfg.Secret(name)
		if err != nil {
			// Never unsigned where a signature is asked for: the
			// administrator may add the secret, and a try will find it.
			return fmt.Errorf("webhook: the signing secret %s could not be read", name)
		}
		req.Header.Set(SignatureHeader, Sign(key, body))
	}
	resp, err := d.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, errRedirect) {
			return fmt.Errorf("webhook: %w", errRedirect)
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, http.ErrHandlerTimeout) || isTimeout(err) {
			return fmt.Errorf("webhook: no answer within %s", d.cfg.HTTPTimeout)
		}
		return fmt.Errorf("webhook: %s", scrub(err, dest))
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
			return fmt.Errorf("webhook: answered %s: %w", resp.Status, errRedirect)
		}
		return fmt.Errorf("webhook: answered %s", resp.Status)
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// scrub is err's text without the destination's URL or its parts (a
// token in its path or query).
func scrub(err error, dest string) string {
	s := err.Error()
	u, perr := url.Parse(dest)
	if perr != nil {
		return "the request failed"
	}
	for _, part := range []string{dest, u.RequestURI(), u.RawQuery, u.Path} {
		if len(part) > 1 {
			s = replaceAll(s, part, "…")
		}
	}
	return s
}

func replaceAll(s, old, new string) string {
	return string(bytes.ReplaceAll([]byte(s), []byte(old), []byte(new)))
}
