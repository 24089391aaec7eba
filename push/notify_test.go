package push

import (
	"slices"
	"strings"
	"testing"
)

func TestParseNotifyOptions(t *testing.T) {
	base := func(kv ...string) map[string]string {
		m := map[string]string{"JOBQ_COMMAND": "img"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    []string // Notify
		on      string
		wantErr string
	}{
		{"none", base(), nil, "", ""},
		{"the issue's three", base("GL_OPTION_JOBQ_NOTIFY", "mailto:ops@example.org https://hooks.example.org/jobq exec:/usr/local/bin/on-job"),
			[]string{"mailto:ops@example.org", "https://hooks.example.org/jobq", "exec:/usr/local/bin/on-job"}, "", ""},
		{"several addresses", base("JOBQ_NOTIFY", "mailto:a@example.org,b@example.org"), []string{"mailto:a@example.org,b@example.org"}, "", ""},
		{"change", base("JOBQ_NOTIFY", "http://127.0.0.1:8080/x", "JOBQ_NOTIFY_ON", " Change "), []string{"http://127.0.0.1:8080/x"}, "change", ""},
		{"failure by default", base("JOBQ_NOTIFY_ON", ""), nil, "failure", ""},
		{"always", base("JOBQ_NOTIFY_ON", "always"), nil, "always", ""},
		// Hostile values: one line naming the option, and no job.
		{"unknown scheme", base("JOBQ_NOTIFY", "ftp://example.org/"), nil, "", `JOBQ_NOTIFY="ftp://example.org/"`},
		{"file scheme", base("JOBQ_NOTIFY", "file:///etc/passwd"), nil, "", "not a mailto:, http(s):// or exec: destination"},
		{"mail headers", base("JOBQ_NOTIFY", "mailto:a@example.org?bcc=evil@example.org"), nil, "", "no ?headers"},
		{"mail header by newline", base("JOBQ_NOTIFY", "mailto:a@example.org\nBcc:evil@example.org"), nil, "", "JOBQ_NOTIFY"},
		{"mail option", base("JOBQ_NOTIFY", "mailto:-oQ/tmp/x@example.org"), nil, "", "not a mail address"},
		{"mail name", base("JOBQ_NOTIFY", "mailto:Ops<ops@example.org>"), nil, "", "not a mail address"},
		{"url with password", base("JOBQ_NOTIFY", "https://u:p@example.org/"), nil, "", "user or password"},
		{"url without host", base("JOBQ_NOTIFY", "https:///x"), nil, "", "with a host"},
		{"relative exec", base("JOBQ_NOTIFY", "exec:on-job"), nil, "", "exec:/ABSOLUTE/PATH"},
		{"exec dots", base("JOBQ_NOTIFY", "exec:/usr/local/../bin/sh"), nil, "", "exec:/ABSOLUTE/PATH"},
		{"non-ASCII", base("JOBQ_NOTIFY", "https://exämple.org/"), nil, "", "non-ASCII"},
		{"too many", base("JOBQ_NOTIFY", strings.Repeat("exec:/bin/true ", 17)), nil, "", "more than 16"},
		{"bad on", base("JOBQ_NOTIFY_ON", "sometimes"), nil, "", `JOBQ_NOTIFY_ON="sometimes" is not failure, change or always`},
		{"bad secret", base("JOBQ_NOTIFY_SECRET", "../keys/id"), nil, "", "JOBQ_NOTIFY_SECRET"},
		{"bad web url", base("JOBQ_WEB_URL", "javascript:alert(1)"), nil, "", "JOBQ_WEB_URL"},
		{"web url with query", base("JOBQ_WEB_URL", "https://ci.example.org/jobq?x=1"), nil, "", "JOBQ_WEB_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseOptions(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }, "repo")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is more than one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(o.Notify, tt.want) || o.NotifyOn != tt.on {
				t.Errorf("Notify %q, NotifyOn %q; want %q, %q", o.Notify, o.NotifyOn, tt.want, tt.on)
			}
		})
	}
	o, err := ParseOptions(func(k string) (string, bool) {
		v, ok := map[string]string{"JOBQ_COMMAND": "img", "JOBQ_NOTIFY_SECRET": "hook-key", "JOBQ_WEB_URL": "https://ci.example.org/jobq/"}[k]
		return v, ok
	}, "repo")
	if err != nil || o.NotifySecret != "hook-key" || o.WebURL != "https://ci.example.org/jobq" {
		t.Errorf("secret and web URL: %q %q %v", o.NotifySecret, o.WebURL, err)
	}
}
