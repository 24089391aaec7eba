package deliver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jobq/jobq/notify"
	"github.com/jobq/jobq/queue"
)

// maxOutput is how much of a command's output the worker's log gets.
const maxOutput = 4 << 10

// mail hands the job's notification to the host's sendmail for the
// addresses of dest (sendmail -t -oi: the recipients from the To: field,
// a lone "." line not the end).
func (d *Deliverer) mail(j *queue.Job, r *notify.Record, dest string) error {
	_, addrs, _ := strings.Cut(dest, ":")
	for _, a := range strings.Split(addrs, ",") {
		if p, err := mail.ParseAddress(a); err != nil || p.Address != a || strings.HasPrefix(a, "-") {
			return errors.New("mail: not a plain address") // checked at push time: a record changed by hand
		}
	}
	msg := mailMessage(d.cfg.Store, j, r, dest, time.Now())
	out, err := d.run(d.cfg.Sendmail, []string{"-t", "-oi"}, os.Environ(), msg)
	if len(out) > 0 {
		d.logf("notify %s %d: sendmail said: %s", j.Repo, j.ID, oneLine(string(out)))
	}
	if err != nil {
		return fmt.Errorf("mail: sendmail %w", err)
	}
	return nil
}

// exec runs the host program dest names with the job's JSON on its
// standard input and a few variables; its output goes to the worker's
// log, never the job's. It is delivered when the program exits 0.
func (d *Deliverer) exec(j *queue.Job, r *notify.Record, dest string) error {
	_, path, _ := strings.Cut(dest, ":")
	body, err := payload(j, r)
	if err != nil {
		return err
	}
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + os.Getenv("HOME"),
		"JOBQ_REPO=" + j.Repo,
		"JOBQ_JOB_ID=" + strconv.FormatInt(j.ID, 10),
		"JOBQ_STATE=" + string(j.State),
		"JOBQ_EVENT=" + r.Event,
		"JOBQ_IDEMPOTENCY_KEY=" + r.Key,
	}
	out, err := d.run(path, nil, env, append(body, '\n'))
	if len(out) > 0 {
		d.logf("notify %s %d: %s said: %s", j.Repo, j.ID, path, oneLine(string(out)))
	}
	if err != nil {
		d.logf("notify %s %d: %s: %v", j.Repo, j.ID, path, err)
		return fmt.Errorf("exec: the program %w", err)
	}
	return nil
}

// run runs a host program in a process group of its own with stdin,
// under ExecTimeout. At the timeout, and when the program exits, the
// group is killed: what it forked is not left running. Its error says
// how it ended, without the program's path (readers see it).
func (d *Deliverer) run(path string, args, env []string, stdin []byte) ([]byte, error) {
	// The output goes through a pipe of our own, not exec's copying: Wait
	// then returns when the program exits, not when the last process
	// holding its output (a child it forked) does.
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		d.logf("notify: start %s: %v", path, err)
		return nil, errors.New("could not be started")
	}
	out := &capped{max: maxOutput}
	read := make(chan struct{})
	go func() {
		io.Copy(out, pr)
		close(read)
	}()
	pgid := cmd.Process.Pid
	var timedOut atomic.Bool
	timer := time.AfterFunc(d.cfg.ExecTimeout, func() {
		timedOut.Store(true)
		syscall.Kill(-pgid, syscall.SIGKILL)
	})
	err = cmd.Wait()
	timer.Stop()
	// What it left in its group goes with it.
	syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-read:
	case <-time.After(time.Second): // a process that left the group holds the pipe
		pr.Close()
		<-read
	}
	switch {
	case timedOut.Load():
		return out.Bytes(), fmt.Errorf("did not finish within %s; its processes were killed", d.cfg.ExecTimeout)
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out.Bytes(), fmt.Errorf("ended with %s", ee.ProcessState)
		}
		return out.Bytes(), errors.New("failed")
	}
	return out.Bytes(), nil
}

// capped keeps the first max bytes written to it, and drops the rest.
type capped struct {
	bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
