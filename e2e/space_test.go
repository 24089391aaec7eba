package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

// The data directory on a small filesystem (an 8 MiB tmpfs of 1500
// inodes, this test's alone): a job whose output drives it under half of
// JOBQ_MIN_FREE is stopped and fails with a result line that says so, and
// the next push still queues a job; a job that creates files until the
// filesystem has under half of JOBQ_MIN_FREE_INODES inodes free is
// stopped the same; a job does not start while it has fewer than
// JOBQ_MIN_FREE_INODES inodes free, and says why.
func TestJobStoppedOnLowSpace(t *testing.T) {
	// A job before: the data directory exists.
	push(t, "podfull", map[string]string{"ci.sh": "echo warm\n"})
	if log := follow(t, "alice", "podfull", 0); log.Code != 0 {
		t.Fatalf("jobq podfull 0: %s", log)
	}
	data := env.DataDir()
	// Over the data directory for this test (the jobs of the other tests
	// are under it, untouched, and back after).
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=8m,nr_inodes=1500,mode=0700,uid=%d,gid=%d", env.UID, env.GID), "jobq-space", data).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	// Unmounted however the test ends: WaitUntil's t.Fatal would skip the
	// rest of this function.
	defer func() {
		for deadline := time.Now().Add(2 * time.Minute); userProcesses("jobq-worker") != "" && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
		if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
			holders, _ := exec.Command("fuser", "-vm", data).CombinedOutput()
			t.Errorf("umount: %v %s\n%s", err, out, holders)
			if out, err := exec.Command("umount", "-l", data).CombinedOutput(); err != nil {
				t.Errorf("umount -l: %v %s", err, out)
			}
		}
	}()

	t.Run("bytes", func(t *testing.T) {
		setRC(t, map[string]string{"JOBQ_MIN_FREE": "4m", "JOBQ_MIN_FREE_INODES": "1000"})
		// 128 KiB of text every 0.1 s, 10 MiB in all: more than the
		// filesystem holds, under JOBQ_LOG_LIMIT. The container's first
		// process ignores SIGTERM without a trap.
		push(t, "podfull", map[string]string{"ci.sh": "trap 'exit 143' TERM\n" +
			"i=0; while [ $i -lt 80 ]; do yes 0123456789abcdef | head -c 131072; i=$((i+1)); sleep 0.1; done; echo wrote all\n"})
		log := follow(t, "alice", "podfull", 0) // IDs count from 0 again here
		last := lastLine(log.Stdout)
		if log.Code == 0 || !strings.HasPrefix(last, "jobq: failed, exit code ") ||
			!strings.Contains(last, "the job was stopped: ") || !strings.Contains(last, " free, under half of JOBQ_MIN_FREE=4m, after ") ||
			strings.Contains(log.Stdout, "wrote all") {
			t.Errorf("jobq podfull 0: exit %d, %d bytes, last line %q; want it stopped under half of JOBQ_MIN_FREE", log.Code, len(log.Stdout), last)
		}
		// The stopped job left the margin: the next push queues a job (its
		// log, kept, holds the space, so the job waits, and says why).
		r, _ := push(t, "podfull", map[string]string{"ci.sh": "echo fine\n"})
		if !strings.Contains(r.Stderr, "jobq: queued podfull job 1") {
			t.Fatalf("push: %s", r)
		}
		testenv.WaitUntil(t, "the listing says why job 1 waits", time.Minute, func() bool {
			return strings.Contains(ssh("alice", "jobq", "podfull").Stdout, " free, JOBQ_MIN_FREE=4m")
		})
		if r := ssh("alice", "jobq", "cancel", "podfull", "1"); r.Code != 0 {
			t.Errorf("cancel: %s", r)
		}
		workerGone(t, "podfull")
		checkNothingLeft(t, "podfull")
	})

	t.Run("inodes while running", func(t *testing.T) {
		setRC(t, map[string]string{"JOBQ_MIN_FREE": "0", "JOBQ_MIN_FREE_INODES": "1000"})
		// An exec job runs as the hosting account: it can create files in
		// the data directory itself. 1500 empty files, 50 every 0.1 s:
		// more than the filesystem has inodes.
		fill := filepath.Join(data, "fill")
		script := fmt.Sprintf("#!/bin/sh\ntrap 'exit 143' TERM\nmkdir -p %s\n"+
			"i=0; while [ $i -lt 1500 ]; do : > %s/f$i; i=$((i+1)); [ $((i %% 50)) = 0 ] && sleep 0.1; done; echo wrote all\n", fill, fill)
		if err := os.WriteFile(filepath.Join(env.Bin, "fill-inodes"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(fill)
		push(t, "execfull", nil)
		log := follow(t, "alice", "execfull", 0)
		last := lastLine(log.Stdout)
		if log.Code == 0 || !strings.HasPrefix(last, "jobq: failed, exit code 143: the job was stopped: ") ||
			!strings.Contains(last, " inodes free, under half of JOBQ_MIN_FREE_INODES=1000, after ") || strings.Contains(log.Stdout, "wrote all") {
			t.Errorf("jobq execfull 0: %s\nwant it stopped under half of JOBQ_MIN_FREE_INODES", log)
		}
		workerGone(t, "execfull")
	})

	t.Run("inodes before start", func(t *testing.T) {
		setRC(t, map[string]string{"JOBQ_MIN_FREE": "0", "JOBQ_MIN_FREE_INODES": "100000"})
		r, _ := push(t, "podfull", nil)
		if !strings.Contains(r.Stderr, "jobq: queued podfull job 2") {
			t.Fatalf("push: %s", r)
		}
		testenv.WaitUntil(t, "the listing says why job 2 waits", time.Minute, func() bool {
			ls := ssh("alice", "jobq", "podfull").Stdout
			return strings.Contains(ls, " inodes free, JOBQ_MIN_FREE_INODES=100000")
		})
		if r := ssh("alice", "jobq", "cancel", "podfull", "2"); r.Code != 0 {
			t.Errorf("cancel: %s", r)
		}
		workerGone(t, "podfull")
		if log := follow(t, "alice", "podfull", 2); !strings.Contains(log.Stdout, "jobq: job 2 waits to start: ") ||
			!strings.Contains(log.Stdout, " inodes free, JOBQ_MIN_FREE_INODES=100000\n") {
			t.Errorf("jobq podfull 2: %s", log)
		}
	})
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
