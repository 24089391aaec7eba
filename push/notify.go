package push

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"path/filepath"
	"strings"
	"unicode"
)

// The results JOBQ_NOTIFY_ON can choose (package notify decides with them).
const (
	NotifyFailure = "failure"
	NotifyChange  = "change"
	NotifyAlways  = "always"
)

// maxDestinations bounds JOBQ_NOTIFY: each destination costs every job's
// worker a record to write, and a few tries of a delivery.
const maxDestinations = 16

// ParseNotify checks JOBQ_NOTIFY, space-separated destinations:
// mailto:ADDR[,ADDR...] (plain addresses, no ?headers), http:// or
// https:// URLs (absolute, with a host, no user:password), and
// exec:/ABSOLUTE/PATH (a host program, no arguments). Only the
// administrator sets them (gitolite's options): the webhooks' hosts are
// the administrator's choice, never a pusher's.
func ParseNotify(v string) ([]string, error) {
	var out []string
	for _, d := range strings.Fields(v) {
		if err := checkDestination(d); err != nil {
			return nil, fmt.Errorf("holds %q, %w", d, err)
		}
		out = append(out, d)
	}
	if len(out) > maxDestinations {
		return nil, fmt.Errorf("names %d destinations, more than %d", len(out), maxDestinations)
	}
	return out, nil
}

func checkDestination(d string) error {
	if strings.ContainsFunc(d, func(r rune) bool { return unicode.IsControl(r) || r > unicode.MaxASCII }) {
		return errors.New("which has control or non-ASCII characters")
	}
	scheme, rest, _ := strings.Cut(d, ":")
	switch strings.ToLower(scheme) {
	case "mailto":
		if rest == "" || strings.ContainsAny(rest, "?&") {
			return errors.New("not mailto:ADDRESS[,ADDRESS...] (no ?headers)")
		}
		for _, a := range strings.Split(rest, ",") {
			addr, err := mail.ParseAddress(a)
			if err != nil || addr.Name != "" || addr.Address != a || strings.HasPrefix(a, "-") {
				return fmt.Errorf("%q is not a mail address", a)
			}
		}
		return nil
	case "http", "https":
		u, err := url.Parse(d)
		if err != nil || u.Host == "" || u.Hostname() == "" || u.Opaque != "" {
			return errors.New("not an absolute http(s) URL with a host")
		}
		if u.User != nil {
			return errors.New("a URL with a user or password (sign with JOBQ_NOTIFY_SECRET instead)")
		}
		return nil
	case "exec":
		if !filepath.IsAbs(rest) || filepath.Clean(rest) != rest {
			return errors.New("not exec:/ABSOLUTE/PATH")
		}
		return nil
	default:
		return errors.New("not a mailto:, http(s):// or exec: destination")
	}
}

// ParseNotifyOn checks JOBQ_NOTIFY_ON: failure (the default), change or
// always.
func ParseNotifyOn(v string) (string, error) {
	switch v = strings.ToLower(strings.TrimSpace(v)); v {
	case "", NotifyFailure:
		return NotifyFailure, nil
	case NotifyChange, NotifyAlways:
		return v, nil
	}
	return "", errors.New("is not failure, change or always")
}

// ParseWebURL checks JOBQ_WEB_URL: the web view's base URL, absolute
// http(s), with no query or fragment (job links are made under it).
func ParseWebURL(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil ||
		strings.ContainsFunc(v, func(r rune) bool { return unicode.IsControl(r) || r > unicode.MaxASCII || unicode.IsSpace(r) }) {
		return "", errors.New("is not an absolute http(s) URL without query, fragment or user")
	}
	return strings.TrimSuffix(v, "/"), nil
}
