package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/internal/human"
	"github.com/jobq/jobq/internal/termsafe"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner/cache"
)

// cacheCommand is jobq cache REPO (its caches, to readers) and jobq cache
// rm REPO [REF] (drop the cache REF's jobs use: W on REF, and + for a
// protected one, whose jobs a deploy may come from). It reads and drops
// records only: the worker removes a dropped cache's volumes.
func cacheCommand(a *app) *cobra.Command {
	var jsonOut bool
	c := &cobra.Command{
		Use:   "cache REPO | cache rm REPO [REF]",
		Short: "List a repository's caches (JOBQ_CACHE), or drop one",
		Long: `jobq cache REPO lists REPO's caches: the main cache, which jobs of protected
refs (JOBQ_CACHE_PROTECTED) read and write, and each other ref's own, started
as a copy of the main one; their sizes after their last job and when that was.

jobq cache rm REPO [REF] drops the cache REF's jobs use (REF: the
repository's HEAD by default); its next job starts it empty. It needs W on
REF, and + for a protected ref, whose cache is the main one.` + "\n" + helpTail,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.cacheList(args[0], jsonOut) },
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	rm := &cobra.Command{
		Use:   "rm REPO [REF]",
		Short: "Drop the cache REF's jobs use (W on REF; + for a protected ref)",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := ""
			if len(args) == 2 {
				ref = args[1]
			}
			return a.cacheRemove(args[0], ref)
		},
	}
	rm.SilenceUsage, rm.SilenceErrors = true, true
	c.AddCommand(rm)
	return c
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return cli.Usagef("usage: jobq %s", cmd.Use)
		}
		return nil
	}
}

// cacheView is one cache path as users see it.
type cacheView struct {
	Scope    string    `json:"scope"` // "main" or a ref
	Path     string    `json:"path"`
	Size     int64     `json:"size"`
	LastUsed time.Time `json:"last_used,omitzero"`
	Host     string    `json:"host,omitempty"`
}

// caches is repo's cache records, for a reader (authorize first).
func (a *app) caches(repo string) (cache.Store, string, error) {
	if err := a.open(); err != nil {
		return cache.Store{}, "", err
	}
	v, err := a.view(repo)
	if err != nil {
		return cache.Store{}, "", err
	}
	return cache.Open(a.store.Dir()), v.Incarnation(), nil
}

func (a *app) cacheList(repo string, jsonOut bool) error {
	if err := a.authorize(repo); err != nil {
		return err
	}
	st, inc, err := a.caches(repo)
	if err != nil {
		return err
	}
	var rows []cacheView
	if inc != "" {
		recs, err := st.List(repo, inc)
		if err != nil {
			return err
		}
		for _, r := range recs {
			for _, v := range r.Volumes {
				rows = append(rows, cacheView{Scope: r.Scope, Path: v.Path, Size: v.Size, LastUsed: r.LastUsed, Host: r.Host})
			}
		}
	}
	if jsonOut {
		if rows == nil {
			rows = []cacheView{}
		}
		return writeJSON(a.e.stdout, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintf(a.e.stdout, "%s has no caches\n", repo)
		return nil
	}
	tw := tabwriter.NewWriter(a.e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tPATH\tSIZE\tLAST USED\tHOST")
	for _, r := range rows {
		used, host := "-", "-"
		if !r.LastUsed.IsZero() {
			used = r.LastUsed.Local().Format(queue.TimeFormat)
		}
		if r.Host != "" {
			host = termsafe.Line(r.Host)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", termsafe.Line(r.Scope), r.Path, human.Bytes(r.Size), used, host)
	}
	return tw.Flush()
}

// cacheRemove drops the cache ref's jobs use. Forbidden looks like
// missing to a non-reader (may); a reader learns which right it lacks.
func (a *app) cacheRemove(repo, ref string) error {
	if err := queue.ValidName(repo); err != nil {
		return errNoRepo(repo)
	}
	if ref == "" {
		ref = a.headRef(repo)
	} else if !strings.HasPrefix(ref, "refs/") {
		ref = "refs/heads/" + ref
	}
	if !gitoliteRef.MatchString(ref) || strings.Contains(ref, "..") {
		if _, err := a.may(repo, read, anyRef); err != nil {
			return err
		}
		return cli.Usagef("%s is not a ref name", termsafe.Line(ref))
	}
	ok, err := a.may(repo, write, ref)
	if err != nil {
		return err
	}
	protected := ""
	if opts, _, _, err := a.repoOptions(repo); err == nil {
		protected = opts.CacheProtected
	}
	scope := cache.ScopeOf(ref, protected)
	if ok && scope == cache.Main && a.user != "" {
		if ok, err = a.access(repo, rewind, ref); err != nil {
			return err
		}
		if !ok {
			return &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("%s may not drop %s's main cache: that needs + (force push) on %s, a protected ref", a.user, repo, termsafe.Line(ref))}
		}
	}
	if !ok {
		return &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("%s may not drop the cache of %s in %s: that needs write access (W) on it", a.user, termsafe.Line(ref), repo)}
	}
	st, inc, err := a.caches(repo)
	if err != nil {
		return err
	}
	name := "the main cache"
	if scope != cache.Main {
		name = "the cache of " + termsafe.Line(ref)
	}
	dropped := false
	if inc != "" {
		if dropped, err = st.Remove(repo, inc, scope); err != nil {
			return err
		}
	}
	if !dropped {
		return &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("%s has no %s", repo, strings.TrimPrefix(name, "the "))}
	}
	fmt.Fprintf(a.e.stdout, "jobq: dropped %s of %s; its next job starts it empty\n", name, repo)
	return nil
}

// headRef is the ref the repository's HEAD names, refs/heads/master if it
// cannot be read.
func (a *app) headRef(repo string) string {
	gitDir := ""
	if base := a.e.getenv("GL_REPO_BASE"); base != "" {
		gitDir = filepath.Join(base, repo+".git")
	} else if a.open() == nil {
		if ls, err := a.store.Jobs(repo, 1); err == nil && len(ls) > 0 && ls[0].Job != nil {
			gitDir = ls[0].Job.GitDir
		}
	}
	if gitDir != "" {
		ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
		defer cancel()
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, "git", "--git-dir="+gitDir, "symbolic-ref", "-q", "HEAD")
		cmd.Stdout = &out
		if cmd.Run() == nil {
			if ref := strings.TrimSpace(out.String()); strings.HasPrefix(ref, "refs/") {
				return ref
			}
		}
	}
	return "refs/heads/master"
}
