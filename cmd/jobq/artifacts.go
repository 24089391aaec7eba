package main

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/jobq/jobq/internal/cli"
	"github.com/jobq/jobq/internal/human"
	"github.com/jobq/jobq/internal/termsafe"
	"github.com/jobq/jobq/queue"
)

// artifactsCmd is jobq artifacts REPO ID [PATH] [--tar] [--json].
func artifactsCmd(a *app) *cobra.Command {
	var jsonOut, tarOut bool
	c := &cobra.Command{
		Use:   "artifacts REPO ID [PATH]",
		Short: "List a job's artifacts, write one to stdout, or all as a tar (--tar)",
		Long: `jobq artifacts REPO ID          the job's artifacts: path and size
jobq artifacts REPO ID PATH     the artifact PATH, its bytes to stdout
jobq artifacts REPO ID --tar    all of them, as one tar to stdout

Artifacts are the files JOBQ_ARTIFACTS collected from the job's /source
after it ended. Bytes are never written to a terminal: redirect them
(> FILE) or pipe them (| tar x).` + "\n" + helpTail,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 || len(args) > 3 {
				return cli.Usagef("usage: jobq artifacts REPO ID [PATH] [--tar] [--json]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case tarOut && (jsonOut || len(args) == 3):
				return cli.Usagef("--tar writes all of a job's artifacts: jobq artifacts REPO ID --tar")
			case jsonOut && len(args) == 3:
				return cli.Usagef("--json is for the list: jobq artifacts REPO ID --json")
			}
			path := ""
			if len(args) == 3 {
				path = args[2]
			}
			return a.artifacts(args[0], args[1], path, tarOut, jsonOut)
		},
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print the list as JSON")
	c.Flags().BoolVar(&tarOut, "tar", false, "write all artifacts as one tar to stdout")
	return c
}

func (a *app) artifacts(repo, idArg, path string, tarOut, jsonOut bool) error {
	if err := a.authorize(repo); err != nil {
		return err
	}
	id, err := parseID(idArg)
	if err != nil {
		return err
	}
	if err := a.open(); err != nil {
		return err
	}
	if _, err := a.job(repo, id); err != nil {
		return err
	}
	if path != "" {
		return a.writeArtifact(repo, id, path)
	}
	list, err := a.store.Artifacts(repo, id)
	if err != nil {
		return err
	}
	switch {
	case tarOut:
		return a.writeArtifactsTar(repo, id, list)
	case jsonOut:
		return writeJSON(a.e.stdout, list)
	}
	tw := tabwriter.NewWriter(a.e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tSIZE")
	for _, l := range list {
		// Collection admits no control characters in a name; one put
		// there otherwise is still shown safe.
		fmt.Fprintf(tw, "%s\t%s\n", termsafe.Line(l.Path), human.Bytes(l.Size))
	}
	return tw.Flush()
}

// toTerminal refuses bytes for a terminal: an artifact is the job's
// output, binary as often as not, and its bytes could drive the terminal
// (the log is shown made safe; an artifact must stay exact). Through ssh
// without -t stdout is a pipe, and the bytes go where the user sends them.
func (a *app) toTerminal(what string) error {
	f, ok := a.e.stdout.(*os.File)
	if !ok {
		return nil
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return nil
	}
	return cli.Usagef("%s: stdout is a terminal; redirect it (> FILE) or pipe it", what)
}

func (a *app) writeArtifact(repo string, id int64, path string) error {
	f, err := a.store.OpenArtifact(repo, id, path)
	if notFound(err) {
		return &cli.ExitError{Code: cli.Failed, Msg: fmt.Sprintf("job %d of %s has no artifact %.200q", id, repo, path)}
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := a.toTerminal("an artifact's bytes"); err != nil {
		return err
	}
	_, err = io.Copy(a.e.stdout, f)
	return err
}

// writeArtifactsTar writes list as one tar: regular files with their
// size and executable bit, no owner.
func (a *app) writeArtifactsTar(repo string, id int64, list []queue.Artifact) error {
	if err := a.toTerminal("a tar"); err != nil {
		return err
	}
	tw := tar.NewWriter(a.e.stdout)
	for _, l := range list {
		if err := a.tarOne(tw, repo, id, l); err != nil {
			return err
		}
	}
	return tw.Close()
}

func (a *app) tarOne(tw *tar.Writer, repo string, id int64, l queue.Artifact) error {
	f, err := a.store.OpenArtifact(repo, id, l.Path)
	if notFound(err) {
		return nil // replaced meanwhile (an adopting worker collected again)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	mode := int64(0o644)
	if fi.Mode()&0o100 != 0 {
		mode = 0o755
	}
	if err := tw.WriteHeader(&tar.Header{Name: l.Path, Typeflag: tar.TypeReg, Size: fi.Size(), Mode: mode, ModTime: fi.ModTime(), Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, fi.Size())
	return err
}
