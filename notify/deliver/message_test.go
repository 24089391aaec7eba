package deliver

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jobq/jobq/queue"
)

// A job's line that reads as one of jobq's ("jobq: succeeded, exit code
// 0" as the job's last line) is marked in the mail as on a terminal and
// the web page; jobq's own lines, named by the record beside the log, are
// not; a log without a record shows its lines as they are.
func TestMailMarksJobLines(t *testing.T) {
	type part struct {
		own  bool // written as jobq's (queue.WriteOwn)
		text string
	}
	filler := strings.Repeat("x", 99) + "\n"
	tests := []struct {
		name   string
		parts  []part
		legacy bool // no record: a log from before records
		want   []string
	}{
		{"job imitates the result line", []part{
			{true, "jobq: job 1 started\n"},
			{false, "building\njobq: succeeded, exit code 0\n"},
			{true, "jobq: failed, exit code 2\n"},
		}, false, []string{"jobq: job 1 started", "building", "[job] jobq: succeeded, exit code 0", "jobq: failed, exit code 2"}},
		{"colour, spaces, a carriage return, a lookalike", []part{
			{true, "jobq: job 1 started\n"},
			{false, "\x1b[32m  jobq: succeeded\x1b[0m\n"},
			{false, "progress 10%\rjobq: succeeded\n"},
			{false, "\u200bjobq: succeeded\n"},
			{false, "j\u043ebq: succeeded\n"},
			{false, "not jobq: at the start\n"},
			{true, "jobq: succeeded, exit code 0\n"},
		}, false, []string{"jobq: job 1 started", "[job]   jobq: succeeded", "[job] jobq: succeeded", "[job] \u200bjobq: succeeded", "[job] j\u043ebq: succeeded", "not jobq: at the start", "jobq: succeeded, exit code 0"}},
		{"jobq's text at another offset", []part{
			{true, "jobq: failed, exit code 1\n"},
			{false, "jobq: failed, exit code 1\n"},
		}, false, []string{"jobq: failed, exit code 1", "[job] jobq: failed, exit code 1"}},
		{"a last line without its newline", []part{
			{true, "jobq: job 1 started\n"},
			{false, "jobq: succeeded"},
		}, false, []string{"jobq: job 1 started", "[job] jobq: succeeded"}},
		{"the tail of a long log", []part{
			{true, "jobq: job 1 started\n"},
			{false, strings.Repeat(filler, tailBytes/len(filler)+10)},
			{true, "jobq: failed, exit code 2\n"},
			{false, "jobq: succeeded\n"},
		}, false, []string{filler[:99], "jobq: failed, exit code 2", "[job] jobq: succeeded"}},
		{"a log older than records", []part{
			{false, "jobq: job 1 started\n"},
			{false, "jobq: succeeded, exit code 0\n"},
		}, true, []string{"jobq: job 1 started", "jobq: succeeded, exit code 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range tt.parts {
				if p.own && !tt.legacy {
					_, err = queue.WriteOwn(f, p.text)
				} else {
					_, err = f.WriteString(p.text)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			got := logTail(path)
			if len(got) > len(tt.want) {
				got = got[len(got)-len(tt.want):]
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("tail\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
