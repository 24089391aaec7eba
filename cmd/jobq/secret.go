package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/internal/gitolite"
	"github.com/jobq/jobq/internal/human"
	"github.com/jobq/jobq/internal/secret"
	"github.com/jobq/jobq/queue"
	"github.com/spf13/cobra"
)

// checkGrants is the hook's word on the push's JOBQ_SECRETS: grants are
// read when a job starts, so a bad one fails the job then, not the push;
// the pusher hears of it now. "" when it is well formed.
func checkGrants(lookup func(string) (string, bool)) string {
	v, ok := lookup("JOBQ_SECRETS")
	if !ok {
		v, ok = lookup("GL_OPTION_JOBQ_SECRETS")
	}
	if !ok {
		return ""
	}
	if _, err := secret.ParseGrants(v); err != nil {
		return fmt.Sprintf("%v; the jobs of this repository will fail to start until it is fixed", err)
	}
	return ""
}

// secretCommand is jobq secret: the host's secret store, for the hosting
// account only. Through gitolite it has no subcommands, and newRoot
// refuses it as it refuses the host's other commands.
func (a *app) secretCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "secret set NAME | ls | rm NAME",
		Short: "The host's secret store (the hosting account's own)",
		Long: `jobq secret manages the secrets that JOBQ_SECRETS grants to jobs.

  jobq secret set NAME   store NAME's value, read from stdin (6 bytes to 64 KiB)
  jobq secret ls         names, sizes, when set, and which repositories grant them
  jobq secret rm NAME    remove NAME

A value is never given on the command line, and never shown.` + "\n" + helpTail,
		Args: cobra.NoArgs,
	}
	if a.user != "" {
		return c
	}
	set := &cobra.Command{
		Use:   "set NAME",
		Short: "Store a secret's value, read from stdin",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return cli.Usagef("the value is read from stdin, never from the command line: jobq secret set NAME < FILE")
			}
			return exactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error { return a.secretSet(args[0]) },
	}
	var lsJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the secrets: names, sizes, when set, which repositories grant them",
		Args:  exactArgs(0),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.secretList(lsJSON) },
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "print JSON")
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a secret",
		Args:  exactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.secretRemove(args[0]) },
	}
	for _, s := range []*cobra.Command{set, ls, rm} {
		s.SilenceUsage, s.SilenceErrors = true, true
		c.AddCommand(s)
	}
	return c
}

func (a *app) secrets() (*secret.Store, error) {
	home, err := queue.Home(a.e.getenv)
	if err != nil {
		return nil, err
	}
	return secret.Open(home), nil
}

func (a *app) secretSet(name string) error {
	if err := secret.ValidName(name); err != nil {
		return cli.Usagef("%v", err)
	}
	s, err := a.secrets()
	if err != nil {
		return err
	}
	v, err := io.ReadAll(io.LimitReader(a.e.stdin, secret.MaxLen+1))
	if err != nil {
		return fmt.Errorf("read the value from stdin: %w", err)
	}
	if err := secret.ValidValue(v); err != nil {
		return cli.Usagef("%v; nothing stored", err)
	}
	if err := s.Set(name, v); err != nil {
		return err
	}
	fmt.Fprintf(a.e.stdout, "secret %s set (%d bytes)\n", name, len(v))
	return nil
}

func (a *app) secretRemove(name string) error {
	if err := secret.ValidName(name); err != nil {
		return cli.Usagef("%v", err)
	}
	s, err := a.secrets()
	if err != nil {
		return err
	}
	if err := s.Remove(name); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no secret %s in the store", name)
		}
		return err
	}
	fmt.Fprintf(a.e.stdout, "secret %s removed\n", name)
	return nil
}

// secretInfo is one row of jobq secret ls: never a value.
type secretInfo struct {
	Name string `json:"name"`
	// Size is -1 for a name some repository grants that the store lacks.
	Size    int64     `json:"size"`
	Set     time.Time `json:"set,omitzero"`
	Granted []string  `json:"granted_by"` // REPO, or REPO@PATTERN
}

// secretList shows the store and who grants what: gitolite's options of
// every repository, or without gitolite the environment's JOBQ_SECRETS
// (which then grants to every repository, "*").
func (a *app) secretList(jsonOut bool) error {
	s, err := a.secrets()
	if err != nil {
		return err
	}
	infos, err := s.List()
	if err != nil {
		return err
	}
	rows := map[string]*secretInfo{}
	for _, in := range infos {
		rows[in.Name] = &secretInfo{Name: in.Name, Size: in.Size, Set: in.Set.UTC(), Granted: []string{}}
	}
	grants, warnings := a.allGrants()
	for _, rg := range grants {
		for _, g := range rg.grants {
			r := rows[g.Name]
			if r == nil {
				r = &secretInfo{Name: g.Name, Size: -1, Granted: []string{}}
				rows[g.Name] = r
			}
			by := rg.repo
			if g.Pattern != "" {
				by += "@" + g.Pattern
			}
			r.Granted = append(r.Granted, by)
		}
	}
	list := make([]secretInfo, 0, len(rows))
	for _, r := range rows {
		list = append(list, *r)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	for _, w := range warnings {
		fmt.Fprintf(a.e.stderr, "jobq: %s\n", w)
	}
	if jsonOut {
		return writeJSON(a.e.stdout, list)
	}
	tw := tabwriter.NewWriter(a.e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tSET\tGRANTED BY")
	for _, r := range list {
		size, set := "-", "not in the store"
		if r.Size >= 0 {
			size, set = human.Bytes(r.Size), r.Set.Local().Format(queue.TimeFormat)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, size, set, cmp.Or(strings.Join(r.Granted, " "), "-"))
	}
	return tw.Flush()
}

type repoGrants struct {
	repo   string
	grants []secret.Grant
}

// allGrants reads every repository's JOBQ_SECRETS; what cannot be read
// or parsed is a warning, and the rest is still listed.
func (a *app) allGrants() ([]repoGrants, []string) {
	if !a.hasGitolite() {
		v := a.e.getenv("JOBQ_SECRETS")
		gs, err := secret.ParseGrants(v)
		if err != nil {
			return nil, []string{err.Error()}
		}
		return []repoGrants{{"*", gs}}, nil
	}
	program := gitolite.Program(a.e.getenv)
	repos, err := gitolite.Repos(a.ctx, program, nil)
	if err != nil {
		return nil, []string{err.Error()}
	}
	var out []repoGrants
	var warnings []string
	for _, repo := range repos {
		opts, err := gitolite.Options(a.ctx, program, nil, repo, `^gitolite-options\.ENV\.JOBQ_SECRETS$`)
		if err != nil {
			warnings = append(warnings, err.Error())
			continue
		}
		v, ok := opts["gitolite-options.ENV.JOBQ_SECRETS"]
		if !ok {
			continue
		}
		gs, err := secret.ParseGrants(v)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("%s: %v", repo, err))
			continue
		}
		out = append(out, repoGrants{repo, gs})
	}
	return out, warnings
}
