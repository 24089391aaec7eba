// Command jobq-worker drains jobq's queues and runs their jobs. jobq starts
// it (detached, from the hook) or execs it (jobq worker, jobq gc); it is a
// program of its own so that only workers load the Podman bindings.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/internal/gittree"
	"github.com/jobq/jobq/push"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
	"github.com/jobq/jobq/runner/host"
	"github.com/jobq/jobq/runner/podman"
	"github.com/jobq/jobq/worker"
	"github.com/spf13/cobra"
)

func main() {
	// Hidden: the exec runner runs each job under "jobq-worker supervise"
	// (runner/host.Supervise), before any of the worker's own set-up.
	if len(os.Args) > 1 && os.Args[1] == "supervise" {
		os.Exit(host.Supervise(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.SetFlags(log.LstdFlags)
	log.SetPrefix(fmt.Sprintf("jobq-worker[%d]: ", os.Getpid()))
	os.Exit(cli.Exit(os.Stderr, "jobq-worker", newRoot().ExecuteContext(ctx)))
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "jobq-worker",
		Short:         "Drain jobq's queues",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cli.Usagef("%v", err) })
	var queueName string
	var all, wait bool
	drain := &cobra.Command{
		Use:   "drain (--queue Q [--wait] | --all)",
		Short: "Run a queue's jobs until it is empty, or (--all) serve every queue until stopped",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := newWorker()
			if err != nil {
				return err
			}
			defer w.Close()
			if queueName == "-" {
				if queueName, err = readQueueName(os.Stdin); err != nil {
					return err
				}
			}
			switch {
			case all:
				return w.Serve(cmd.Context())
			case queueName != "" && wait:
				return w.DrainOrHandOff(cmd.Context(), queueName)
			case queueName != "":
				return w.Drain(cmd.Context(), queueName, false)
			default:
				return cli.Usagef("drain needs --queue Q or --all")
			}
		},
	}
	drain.Flags().StringVar(&queueName, "queue", "", "the queue to drain (-: its name on standard input, off the command line)")
	drain.Flags().BoolVar(&all, "all", false, "serve every queue until stopped (a service)")
	drain.Flags().BoolVar(&wait, "wait", false, "a hook's worker: wait for the hook, then the queue; hand the queue to the dispatcher while its next job cannot start")
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Retry failed clean-ups, apply JOBQ_KEEP, settle what crashed workers left, run jobs no worker is running",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := newWorker()
			if err != nil {
				return err
			}
			defer w.Close()
			return w.GC(cmd.Context(), os.Stdout)
		},
	}
	root.AddCommand(drain, gc)
	return root
}

// readQueueName reads the queue's name from r, one line (jobq's hook
// writes it there: a command line is anyone's to read).
func readQueueName(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return "", fmt.Errorf("read the queue's name from standard input: %w", err)
	}
	q := strings.TrimSuffix(string(b), "\n")
	if err := queue.ValidQueue(q); err != nil {
		return "", cli.Usagef("--queue -: the name on standard input: %v", err)
	}
	return q, nil
}

func newWorker() (*worker.Worker, error) {
	home, err := queue.Home(os.Getenv)
	if err != nil {
		return nil, err
	}
	store, err := queue.Open(home)
	if err != nil {
		return nil, err
	}
	slots := runtime.NumCPU()
	if v := os.Getenv("JOBQ_SLOTS"); v != "" {
		if slots, err = strconv.Atoi(v); err != nil || slots < 1 {
			return nil, fmt.Errorf("JOBQ_SLOTS=%q is not a positive number", v)
		}
	}
	// Each podman job runs in an ID range of its own: a slot with none
	// free would leave its job waiting for one, however long, and let a
	// pusher hold more ranges than its cap. An account with no ranges
	// runs no podman job, and is not capped.
	if n, err := podman.Ranges("", ""); err == nil && n > 0 && n < slots {
		log.Printf("JOBQ_SLOTS lowered from %d to %d: /etc/subuid and /etc/subgid give this account %d ranges of subordinate IDs, one per running job (4096 IDs each)", slots, n, n)
		slots = n
	}
	userSlots := 0 // the queue's default: every slot but one
	if v := os.Getenv("JOBQ_USER_SLOTS"); v != "" {
		if userSlots, err = strconv.Atoi(v); err != nil || userSlots < 1 {
			return nil, fmt.Errorf("JOBQ_USER_SLOTS=%q is not a positive number", v)
		}
	}
	minFree := int64(runner.DefaultMinFree)
	if v := os.Getenv("JOBQ_MIN_FREE"); v != "" {
		if minFree, err = push.ParseBytes(v); err != nil {
			return nil, fmt.Errorf("JOBQ_MIN_FREE=%q is not a size (like 512m or 2g; 0: no check)", v)
		}
	}
	minInodes := int64(worker.DefaultMinFreeInodes)
	if v := os.Getenv("JOBQ_MIN_FREE_INODES"); v != "" {
		if minInodes, err = strconv.ParseInt(v, 10, 64); err != nil || minInodes < 0 {
			return nil, fmt.Errorf("JOBQ_MIN_FREE_INODES=%q is not a number (0: no check)", v)
		}
	}
	logLimit := int64(worker.DefaultLogLimit)
	if v := os.Getenv("JOBQ_LOG_LIMIT"); v != "" {
		n, err := push.ParseBytes(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("JOBQ_LOG_LIMIT=%q is not a size (like 512m or 2g)", v)
		}
		logLimit = n
	}
	limits, err := checkoutLimits(os.Getenv, minFree)
	if err != nil {
		return nil, err
	}
	hostSlots, err := podman.ParseHostSlots(os.Getenv("JOBQ_HOST_SLOTS"))
	if err != nil {
		return nil, err
	}
	runners := map[string]runner.Runner{
		"exec": host.New(runner.DefaultGrace),
		"podman": podman.New(podman.Config{
			Service: podman.Service{Getenv: os.Getenv, StateDir: home, Idle: 10 * time.Minute},
			Home:    home,
			Grace:   runner.DefaultGrace,
			Active: func(repo string, id int64) bool {
				j, err := store.Job(repo, id)
				return err == nil && j.State == queue.Running
			},
			Checkout:  limits,
			HostSlots: hostSlots,
		}),
	}
	return &worker.Worker{
		Store:     store,
		Runners:   runners,
		Slots:     slots,
		UserSlots: userSlots,
		MinFree:   minFree,
		// The podman runner's checkouts, which its jobs write in.
		MinFreeInodes: minInodes,
		WatchDirs:     []string{os.TempDir()},
		LogLimit:      logLimit,
		Logf:          log.Printf,
		Grants:        worker.Grants(os.Getenv),
	}, nil
}

// checkoutLimits reads JOBQ_CHECKOUT_FILES; minFree (JOBQ_MIN_FREE) is
// also the free space that must remain on the checkout's filesystem.
func checkoutLimits(getenv func(string) string, minFree int64) (gittree.Limits, error) {
	lim := gittree.Limits{Files: gittree.DefaultFiles, MinFree: minFree}
	if v := getenv("JOBQ_CHECKOUT_FILES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return lim, fmt.Errorf("JOBQ_CHECKOUT_FILES=%q is not a positive number", v)
		}
		lim.Files = n
	}
	return lim, nil
}
