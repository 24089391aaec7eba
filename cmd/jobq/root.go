package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/queue"
	"github.com/spf13/cobra"
)

const helpTail = `
EXIT STATUS
  0  done (for a job's log: the job succeeded)
  1  the job or the command failed
  2  bad usage

Data lives in $JOBQ_HOME (default $XDG_DATA_HOME/jobq, else ~/.local/share/jobq).`

// app is what every command shares: the invocation and the store.
type app struct {
	ctx   context.Context
	e     env
	store *queue.Store
	user  string // GL_USER: set when called through gitolite, then access is checked
	// started: the hook started the queue's worker before it enqueued.
	started bool
}

func (a *app) open() error {
	if a.store != nil {
		return nil
	}
	home, err := queue.Home(a.e.getenv)
	if err != nil {
		return err
	}
	a.store, err = queue.Open(home)
	return err
}

func newRoot(ctx context.Context, e env) *cobra.Command {
	a := &app{ctx: ctx, e: e, user: e.getenv("GL_USER")}
	var jsonOut, raw bool
	rootLimit := jobCount(defaultLimit)
	root := &cobra.Command{
		Use:   "jobq [REPO [ID]]",
		Short: "Queue and follow jobs run by git pushes",
		Long: `jobq queues a job for each push to a gitolite repository and runs the jobs of
each queue one at a time, in containers or as host commands.

  jobq              repositories you can read that have jobs
  jobq REPO         REPO's newest 50 jobs (= jobq ls REPO); -n N: the newest N, 0: all
  jobq REPO ID      job ID's log; follows it while it runs (= jobq log -f REPO ID)

A log shows the job's control characters made visible (colours kept);
--raw writes its bytes as they are.` + "\n" + helpTail,
		Args:          rootArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if raw && len(args) != 2 {
				return cli.Usagef("--raw is for a job's log: jobq REPO ID --raw")
			}
			if cmd.Flags().Changed("limit") && len(args) != 1 {
				return cli.Usagef("-n is for a repository's jobs: jobq REPO -n N")
			}
			switch len(args) {
			case 0:
				return a.summary(jsonOut)
			case 1:
				return a.list(args[0], int(rootLimit), jsonOut)
			default:
				return a.log(args[0], args[1], true, raw)
			}
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cli.Usagef("%v", err) })
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	root.Flags().BoolVar(&raw, "raw", false, "write a job's log as stored, control characters and all")
	root.Flags().VarP(&rootLimit, "limit", "n", "with REPO: show the newest N jobs (0: all that are kept)")

	var lsJSON bool
	limit := jobCount(defaultLimit)
	ls := &cobra.Command{
		Use:   "ls REPO",
		Short: "List a repository's jobs, newest first",
		Args:  exactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.list(args[0], int(limit), lsJSON) },
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "print JSON")
	ls.Flags().VarP(&limit, "limit", "n", "show the newest N jobs (0: all that are kept)")

	var follow, logRaw bool
	logCmd := &cobra.Command{
		Use:   "log REPO ID",
		Short: "Print a job's log; with -f, follow it until the job ends",
		Args:  exactArgs(2),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.log(args[0], args[1], follow, logRaw) },
	}
	logCmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the log while the job runs")
	logCmd.Flags().BoolVar(&logRaw, "raw", false, "write the log as stored, control characters and all")

	cancel := &cobra.Command{
		Use:   "cancel REPO ID",
		Short: "Cancel a queued or running job (needs write access)",
		Args:  exactArgs(2),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.cancel(args[0], args[1]) },
	}
	retry := &cobra.Command{
		Use:   "retry REPO ID",
		Short: "Queue a job's ref and revision again, as a new job (needs write access)",
		Args:  exactArgs(2),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.retry(args[0], args[1]) },
	}
	hook := &cobra.Command{
		Use:   "hook",
		Short: "The post-receive hook: reads OLD NEW REF lines on stdin",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			runHook(ctx, e)
			return nil // a hook never fails a push
		},
	}
	worker := &cobra.Command{
		Use:                "worker [--queue Q] [--all]",
		Short:              "Drain queues (runs jobq-worker)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.execWorker(append([]string{"drain"}, args...))
		},
	}
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Apply JOBQ_KEEP and remove what a crash left (runs jobq-worker)",
		Args:  exactArgs(0),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.execWorker([]string{"gc"}) },
	}
	web := &cobra.Command{
		Use:                "web --listen ADDR [--user-header NAME] [--base PATH]",
		Short:              "Serve the read-only web view (runs jobq-web)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			bin, err := a.program("jobq-web")
			if err != nil {
				return err
			}
			return execProgram(bin, args)
		},
	}
	secretCmd := a.secretCommand()
	for _, c := range []*cobra.Command{ls, logCmd, cancel, retry, hook, worker, gc, web, secretCmd} {
		c.SilenceUsage, c.SilenceErrors = true, true
		root.AddCommand(c)
	}
	// The host's own commands are refused through gitolite (GL_USER set),
	// whatever their arguments, before anything is read or created.
	// gitolite runs the hook as post-receive*, which does not come here.
	if a.user != "" {
		for _, c := range []*cobra.Command{hook, worker, gc, web, secretCmd} {
			c.Hidden = true
			c.DisableFlagParsing = true // no --help, no flag errors: refused
			c.Args = nil
			c.RunE = func(cmd *cobra.Command, args []string) error {
				return cli.Usagef("%s is the host's own command, not available through ssh", cmd.Name())
			}
		}
	}
	return root
}

// program finds one of jobq's other programs (jobq-worker, jobq-web)
// beside this one, else on the PATH of jobq's environment: they are
// programs of their own so that the hook links none of them.
func (a *app) program(name string) (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	for _, dir := range filepath.SplitList(a.e.getenv("PATH")) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue // never the working directory: a pusher's repository
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found beside jobq or on PATH", name)
}

// defaultLimit is how many jobs a listing shows unless told otherwise: a
// screenful, and a listing's cost does not grow with the history.
const defaultLimit = 50

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return cli.Usagef("usage: %s", strings.TrimSuffix(cmd.UseLine(), " [flags]"))
		}
		return nil
	}
}

// rootArgs are jobq's own arguments, REPO [ID]; more, or an ID that is
// not a number, is most likely a command this jobq does not have
// ("jobq secret set NAME"), and the answer names it and those it has.
func rootArgs(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) > 2:
		return cli.Usagef("unknown command %.40q (commands: %s; or jobq [REPO [ID]])", args[0], commandNames(cmd))
	case len(args) == 2:
		if _, err := parseID(args[1]); err != nil {
			return cli.Usagef("unknown command %.40q, and %.40q is not a job ID (commands: %s; or jobq [REPO [ID]])", args[0], args[1], commandNames(cmd))
		}
	}
	return nil
}

// commandNames lists the commands the caller may use, for an answer to
// one it may not: the host's own are hidden through ssh.
func commandNames(root *cobra.Command) string {
	var names []string
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return strings.Join(names, ", ")
}

// jobCount is the value of -n: a number of jobs, 0 for all. A number too
// large for an int asks for all there are, as 0 does.
type jobCount int

func (n *jobCount) String() string { return strconv.Itoa(int(*n)) }
func (n *jobCount) Type() string   { return "N" }

func (n *jobCount) Set(s string) error {
	v, err := strconv.Atoi(s)
	if errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(s, "-") {
		v, err = 0, nil
	}
	if err != nil || v < 0 {
		return errors.New("not a number of jobs (0: all that are kept)")
	}
	*n = jobCount(v)
	return nil
}

// parseID reads a job ID argument.
func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 0 {
		return 0, cli.Usagef("job ID %.40q is not a number", s)
	}
	return id, nil
}

// errNoRepo is the one answer for a repository that does not exist, has no
// jobs, or that the user may not see.
func errNoRepo(repo string) error {
	return &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("%.100q: no such repository with jobs, or no access", repo)}
}

func errNoJob(repo string, id int64) error {
	return &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("%s has no job %d", repo, id)}
}

func notFound(err error) bool { return errors.Is(err, queue.ErrNotFound) }
