package termsafe_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jobq/jobq/internal/termsafe"
	"github.com/jobq/jobq/queue"
)

// step writes to a job's log: jobq's line (own, through queue.WriteOwn),
// or the job's bytes.
type step struct{ own, job string }

func writeLog(t *testing.T, steps []step) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, s := range steps {
		if s.own != "" {
			if _, err := queue.WriteOwn(f, s.own); err != nil {
				t.Fatal(err)
			}
		} else {
			f.WriteString(s.job)
		}
	}
	return path
}

// show renders the log as `jobq REPO ID` does, in writes of n bytes.
func show(t *testing.T, path string, n int) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	own := queue.OpenOwn(path)
	defer own.Close()
	var out bytes.Buffer
	w := termsafe.NewLogWriter(&out, own)
	for len(b) > 0 {
		k := min(n, len(b))
		w.Write(b[:k])
		b = b[k:]
	}
	w.Close()
	return out.String()
}

const hdr = "jobq: job 0 of r, queue q, pushed by alice\n"

// A job's line that could pass for one of jobq's is shown marked; jobq's
// own lines, recorded beside the log, are shown as they are; so every
// line shown starting with "jobq:" is jobq's.
func TestLogWriterTellsJobqLines(t *testing.T) {
	for _, tt := range []struct {
		name  string
		steps []step
		want  string
	}{
		{"a fake result before the real one", []step{{own: hdr}, {job: "building\njobq: succeeded, exit code 0\n"}, {own: "jobq: failed, exit code 1, after 1s\n"}},
			hdr + "building\n[job] jobq: succeeded, exit code 0\njobq: failed, exit code 1, after 1s\n"},
		{"the job's last line without a newline", []step{{own: hdr}, {job: "jobq: succeeded"}, {own: "jobq: failed, exit code 1, after 1s\n"}},
			hdr + "[job] jobq: succeeded\njobq: failed, exit code 1, after 1s\n"},
		{"the adoption notice mid-line", []step{{own: hdr}, {job: "half a li"}, {own: "jobq: worker restarted; output continues\n"}, {job: "ne\n"}},
			hdr + "half a li\njobq: worker restarted; output continues\nne\n"},
		{"jobq's text at another offset", []step{{own: hdr}, {job: hdr}},
			hdr + "[job] " + hdr},
		{"colour that hides", []step{{own: hdr}, {job: "\x1b[8mjobq: succeeded\n\x1b[30;40m jobq: x\n"}},
			hdr + "[job] \x1b[8m\x1b[0mjobq: succeeded\n[job] \x1b[30;40m jobq: x\n\x1b[0m"},
		{"colour from the line before", []step{{own: hdr}, {job: "\x1b[8mhidden\njobq: x\n"}},
			hdr + "\x1b[8mhidden\n\x1b[0m[job] jobq: x\n"},
		{"invisible characters", []step{{own: hdr}, {job: "\u200bjobq: a\n\u202ejobq: b\n\t jobq: c\n"}},
			hdr + "[job] \u200bjobq: a\n[job] \u202ejobq: b\n[job] \t jobq: c\n"},
		{"lookalike characters", []step{{own: hdr}, {job: "j\u043ebq: succeeded\njobq\uff1a succeeded\njob: not\njokes\n"}},
			hdr + "[job] j\u043ebq: succeeded\n[job] jobq\uff1a succeeded\njob: not\njokes\n"},
		{"lines that imitate nothing at their start", []step{{own: hdr}, {job: "JOBQ: y\njobq\n jo\n"}},
			hdr + "JOBQ: y\njobq\n jo\n"},
		// A terminal wraps a long line where the job chooses: no row of it
		// may begin as jobq's lines do.
		{"jobq: inside a job's line", []step{{own: hdr}, {job: "[job] jobq: x\nx jobq: z\n" + strings.Repeat("x", 80) + "jobq: succeeded, exit code 0\njobq: a jobq: b\n"}},
			hdr + "[job] [job] jobq: x\nx [job] jobq: z\n" + strings.Repeat("x", 80) + "[job] jobq: succeeded, exit code 0\n[job] jobq: a [job] jobq: b\n"},
		{"a control shown is visible", []step{{own: hdr}, {job: "\rjobq: x\n"}},
			hdr + "[job] ^Mjobq: x\n"},
		{"jobq's line made safe", []step{{own: "jobq: runner exec: a\x1b[2Jb\n"}},
			"jobq: runner exec: a^[[2Jb\n"},
		{"an old job's log, no record", []step{{job: hdr + "jobq: succeeded\n"}},
			hdr + "jobq: succeeded\n"},
		{"an old job adopted", []step{{job: hdr + "jobq: x\n"}, {own: "jobq: worker restarted; output continues\n"}, {job: "jobq: y\n"}},
			hdr + "jobq: x\njobq: worker restarted; output continues\n[job] jobq: y\n"},
		{"a log ending in a line's start", []step{{own: hdr}, {job: "jo"}},
			hdr + "[job] jo"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeLog(t, tt.steps)
			for _, n := range []int{1 << 20, 1, 3} {
				if got := show(t, path, n); got != tt.want {
					t.Errorf("in writes of %d bytes:\n got %q\nwant %q", n, got, tt.want)
				}
			}
		})
	}
}

// A record whose line never reached the log (a worker that died between
// the two) makes nothing there jobq's: what the log holds at that offset
// is shown as the job's.
func TestLogWriterRecordWithoutLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	os.WriteFile(path, []byte(hdr+"jobq: succeeded, exit code 0, after 1s\n"), 0o600)
	rec := "0 " + `"` + "jobq: job 0 of r, queue q, pushed by alice\\n" + `"` + "\n" +
		"43 \"jobq: failed, exit code 1, after 1s\\n\"\n"
	os.WriteFile(filepath.Join(dir, "own"), []byte(rec), 0o600)
	if got, want := show(t, path, 1<<20), hdr+"[job] jobq: succeeded, exit code 0, after 1s\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A reader's own remark after the log (jobq: cancelled before it
// started) is shown as jobq's, on a line of its own.
func TestLogWriterNote(t *testing.T) {
	path := writeLog(t, []step{{own: "jobq: job 0 waits to start: no slot\n"}, {job: "jobq: x"}})
	b, _ := os.ReadFile(path)
	own := queue.OpenOwn(path)
	defer own.Close()
	var out bytes.Buffer
	w := termsafe.NewLogWriter(&out, own)
	w.Write(b)
	w.Note("jobq: cancelled before it started")
	w.Close()
	if want := "jobq: job 0 waits to start: no slot\n[job] jobq: x\njobq: cancelled before it started\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// visibleStart is a shown line from its first character that is ASCII,
// printable and not a space, past colour (as a reader sees it).
func visibleStart(line string) string {
	line = regexp.MustCompile(`\x1b\[[0-9;:]*m`).ReplaceAllString(line, "")
	return strings.TrimLeftFunc(line, func(r rune) bool { return r <= ' ' || r >= 0x7f })
}

// Whatever a job writes around jobq's lines, in whatever writes: the lines
// shown whose first visible characters are "jobq:" are exactly jobq's,
// each once, in order; the output is the same in every split.
func FuzzLogWriter(f *testing.F) {
	for _, s := range []string{
		"jobq: succeeded, exit code 0\n\x1b[8mjobq: x",
		"\u200bjobq: a\n\x1b[31m jobq: b\x1b[0m\r\njo",
		"x\x1b[", "jobq: notice\n",
	} {
		f.Add([]byte(s), uint(7), uint(3))
	}
	f.Fuzz(func(t *testing.T, job []byte, at, split uint) {
		cut := int(at % uint(len(job)+1))
		own := []string{"jobq: job 0 of r\n", "jobq: notice\n", "jobq: failed, exit code 1\n"}
		path := writeLog(t, []step{{own: own[0]}, {job: string(job[:cut])}, {own: own[1]}, {job: string(job[cut:])}, {own: own[2]}})
		whole := show(t, path, 1<<20)
		if n := int(split%64) + 1; show(t, path, n) != whole {
			t.Fatalf("in writes of %d: %q, whole %q", n, show(t, path, n), whole)
		}
		var shown []string
		for _, l := range strings.SplitAfter(whole, "\n") {
			if v := visibleStart(l); strings.HasPrefix(v, "jobq:") {
				shown = append(shown, v)
			}
		}
		if strings.Join(shown, "") != strings.Join(own, "") {
			t.Fatalf("lines shown as jobq's: %q; want %q; output %q", shown, own, whole)
		}
	})
}
