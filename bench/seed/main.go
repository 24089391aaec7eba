// Command seed gives a repository a history of finished jobs for the
// benchmarks: seed DATA-DIR REPO N [GIT-DIR]. It writes the layout queue/doc.go
// describes directly, without fsync (100,000 enqueues with fsync take
// minutes); jobq's own listing reads it back, which checks the layout.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jobq/jobq/push"
	"github.com/jobq/jobq/queue"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 4 && len(os.Args) != 5 {
		return fmt.Errorf("usage: seed DATA-DIR REPO N [GIT-DIR]")
	}
	home, repo := os.Args[1], os.Args[2]
	n, err := strconv.Atoi(os.Args[3])
	if err != nil || strings.ContainsAny(repo, "/%") || queue.ValidName(repo) != nil {
		return fmt.Errorf("bad REPO or N")
	}
	if _, err := queue.Open(home); err != nil {
		return err
	}
	dir := filepath.Join(home, "repos", repo)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The bare repository (GIT-DIR, else a directory beside the data
	// directory) gets the incarnation token the history was recorded in
	// (queue/incarnation.go), so that the hook and the listing take it
	// for the live one.
	gitDir := filepath.Join(home, "..", repo+".git")
	if len(os.Args) == 5 {
		gitDir = os.Args[4]
	}
	if gitDir, err = filepath.Abs(gitDir); err != nil {
		return err
	}
	token := strings.Repeat("5eed", 8)
	if err := os.MkdirAll(gitDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(gitDir, queue.IncarnationFile), []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "incarnation"), []byte(token+"\n"+gitDir+"\n"), 0o600); err != nil {
		return err
	}
	start := time.Now().Add(-time.Duration(n) * time.Minute).UTC()
	code := 0
	for id := range n {
		t := start.Add(time.Duration(id) * time.Minute)
		j := queue.Job{Repo: repo, ID: int64(id), Queue: repo, Seq: t.UnixNano(), Ref: "refs/heads/main",
			OldRev: strings.Repeat("1", 40), NewRev: fmt.Sprintf("%040x", id), User: "seed", GitDir: gitDir, Incarnation: token,
			Options: queue.Options{Command: "true", Runner: "exec", Timeout: push.DefaultTimeout, PIDs: push.DefaultPIDs, Keep: n + 1000},
			State:   queue.Succeeded, QueuedAt: t, StartedAt: t.Add(time.Second), FinishedAt: t.Add(3 * time.Second), ExitCode: &code}
		data, err := json.MarshalIndent(j, "", "  ")
		if err != nil {
			return err
		}
		jd := filepath.Join(dir, strconv.Itoa(id))
		if err := os.Mkdir(jd, 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(jd, "job.json"), data, 0o600); err != nil {
			return err
		}
		log := fmt.Sprintf("jobq: job %d of %s\nsome output\njobq: succeeded, exit code 0, after 2s\n", id, repo)
		if err := os.WriteFile(filepath.Join(jd, "log"), []byte(log), 0o600); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "next"), []byte(strconv.Itoa(n)+"\n"), 0o600)
}
