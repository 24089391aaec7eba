package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func init() { confParts = append(confParts, terminalConf) }

const terminalConf = `
repo termout
    RW+ = alice
    R   = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "%[1]s/hostile-output"

repo termsync
    RW+ = alice
    option hook.post-receive = jobq
    option ENV.JOBQ_RUNNER = "exec"
    option ENV.JOBQ_COMMAND = "%[1]s/hostile-output"
`

// hostileOutput is a job that poses as jobq on its reader's terminal: it
// sets the title, clears the screen, prints a fake result line, sends CSI
// as a raw byte and as UTF-8, overwrites a line, and leaves hidden text on
// for the real result line.
const hostileOutput = `#!/bin/sh
printf '\033]0;TITLE\007\033[2J\033[31mred\033[0m\n'
printf 'jobq: succeeded, exit code 0\n'
printf '\033[8mjobq: concealed\033[0m\n\342\200\213jobq: after a zero-width space\n'
printf '\233raw-csi \302\233utf8-csi\n'
printf 'over\rwrite\n'
printf 'hidden from here\033[8m'
exit 3
`

// shown is how the job's output must reach a reader's terminal.
var shown = []string{
	"^[]0;TITLE^G^[[2J\x1b[31mred\x1b[0m\n",
	`\x9braw-csi \u009butf8-csi`,
	"over^Mwrite",
	"hidden from here\x1b[8m\n\x1b[0mjobq: failed, exit code 3",
	// Lines that pose as jobq's are marked, and start no line with "jobq:".
	"\n[job] jobq: succeeded, exit code 0\n",
	"\n[job] \x1b[8m\x1b[0mjobq: concealed\x1b[0m\n",
	"\n[job] \u200bjobq: after a zero-width space\n",
}

// checkOnlyJobqLines fails unless each line of out that starts with
// "jobq:", once colour is taken away, is one of jobq's own: the header's
// or the result line.
func checkOnlyJobqLines(t *testing.T, what, out string) {
	t.Helper()
	own := regexp.MustCompile(`^jobq: (job \d+ of |ref |runner |queued |failed, exit code 3, after )`)
	for _, l := range strings.Split(sgr.ReplaceAllString(out, ""), "\n") {
		l = strings.TrimPrefix(l, "remote: ")
		if strings.HasPrefix(l, "jobq:") && !own.MatchString(l) {
			t.Errorf("%s: a line passes for jobq's: %q", what, l)
		}
	}
}

func writeHostileOutput(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(env.Bin, "hostile-output"), []byte(hostileOutput), 0o755); err != nil {
		t.Fatal(err)
	}
}

// sgr matches the one escape sequence that may reach a terminal: colour.
var sgr = regexp.MustCompile(`\x1b\[[0-9;:]*m`)

// checkTerminalSafe fails unless out has no control characters but
// newline, tab and colour, no C1 controls, and shows what it must.
func checkTerminalSafe(t *testing.T, what, out string, shown []string) {
	t.Helper()
	rest := sgr.ReplaceAllString(out, "")
	for i, r := range rest {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f || r >= 0x80 && r <= 0x9f || r == 0xfffd {
			t.Errorf("%s: control %U at %d:\n%q", what, r, i, out)
			break
		}
	}
	for _, want := range shown {
		if !strings.Contains(out, want) {
			t.Errorf("%s lacks %q:\n%q", what, want, out)
		}
	}
}

// A job's output reaches a reader (over ssh) and a synchronous pusher with
// its control characters made visible and its colour kept; the real result
// line is never hidden, and a job's line that poses as jobq's is marked;
// --raw gives the stored bytes.
func TestJobOutputIsTerminalSafe(t *testing.T) {
	writeHostileOutput(t)
	push(t, "termout", nil)
	r := follow(t, "carol", "termout", 0)
	if r.Code != 1 {
		t.Fatalf("jobq termout 0: %s", r)
	}
	checkTerminalSafe(t, "jobq termout 0", r.Stdout, shown)
	checkOnlyJobqLines(t, "jobq termout 0", r.Stdout)
	stored := readLog("termout", 0)
	if !strings.Contains(stored, "\x1b]0;TITLE\x07") {
		t.Fatalf("the stored log is not the job's output:\n%q", stored)
	}
	for _, args := range [][]string{{"log", "termout", "0"}, {"log", "-f", "termout", "0"}} {
		r := ssh("carol", append([]string{"jobq"}, args...)...)
		if r.Code != 1 || r.Stdout != follow(t, "carol", "termout", 0).Stdout {
			t.Errorf("jobq %s differs from jobq termout 0: %s", strings.Join(args, " "), r)
		}
	}
	for _, args := range [][]string{{"log", "--raw", "termout", "0"}, {"termout", "0", "--raw"}} {
		r := ssh("carol", append([]string{"jobq"}, args...)...)
		if r.Code != 1 || r.Stdout != stored {
			t.Errorf("jobq %s is not the stored log:\n%q\nwant\n%q", strings.Join(args, " "), r.Stdout, stored)
		}
	}

	writeHostileOutput(t)
	p, _ := push(t, "termsync", nil)
	// git prefixes "remote: " and pads each line of the hook's output.
	checkTerminalSafe(t, "a synchronous push", p.Stderr, []string{
		"remote: ^[]0;TITLE^G^[[2J\x1b[31mred\x1b[0m", `\x9braw-csi \u009butf8-csi`, "over^Mwrite",
		"hidden from here\x1b[8m", "\nremote: \x1b[0mjobq: failed, exit code 3",
		"\nremote: [job] jobq: succeeded, exit code 0",
	})
	checkOnlyJobqLines(t, "a synchronous push", p.Stderr)
}
