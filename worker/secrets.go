package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/jobq/jobq/internal/gitolite"
	"github.com/jobq/jobq/internal/secret"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
)

// GrantsFunc reads the JOBQ_SECRETS of job j's repository as it is now.
type GrantsFunc func(ctx context.Context, j *queue.Job) (string, error)

// Grants is where a worker of the account whose environment getenv reads
// finds the JOBQ_SECRETS of a job's repository. Where the account runs a
// gitolite, in gitolite's options ("option ENV.JOBQ_SECRETS"), asked when
// the job starts: a grant removed or changed while the job waited applies
// to it. Elsewhere, the grants the push had, recorded in the job
// (queue.Options.Secrets): nothing else says which repository grants
// what, and a worker's own environment is that of whichever push started
// it, or of a service that drains every repository's queue.
//
// gitolite is asked only for a job queued while its repository had
// grants: the question costs a job's start about 0.1 s of Perl, which
// jobs without secrets need not pay. A grant added to a repository that
// had none applies from its next push (or retry).
func Grants(getenv func(string) string) GrantsFunc {
	if !gitolite.Installed(getenv) {
		return func(_ context.Context, j *queue.Job) (string, error) { return j.Options.Secrets, nil }
	}
	program := gitolite.Program(getenv)
	return func(ctx context.Context, j *queue.Job) (string, error) {
		if j.Options.Secrets == "" {
			return "", nil
		}
		opts, err := gitolite.Options(ctx, program, nil, j.Repo, `^gitolite-options\.ENV\.JOBQ_SECRETS$`)
		if err != nil {
			return "", err
		}
		return opts["gitolite-options.ENV.JOBQ_SECRETS"], nil
	}
}

// jobSecrets reads, as job j starts (or is adopted), the secrets its
// repository grants to its ref now, with their values as the store has
// them now: a grant removed or a value rotated while the job waited
// applies to it.
//
// Starting, it writes to log which names the job is given and which
// granted names are withheld from its ref and why; never a value. A
// granted name missing from the store, or a JOBQ_SECRETS that cannot be
// read, is an error: the job fails before it starts, with that line,
// rather than run a deployment without its credential and fail obscurely.
//
// Adopting, the job runs already with what it was given: jobSecrets
// writes nothing to its log (its output goes there) and returns what it
// can read, for the runner to mask, and its troubles go to the worker's
// log.
//
// mask is the values of the granted names withheld from j's ref, for the
// runner to mask in its output too: what a job given a secret leaves
// where another ref's job reads (a cache) must not reach that job's log
// in clear. A withheld name missing from the store has no value to mask
// and fails nothing: that job is not given it.
func (w *Worker) jobSecrets(ctx context.Context, j *queue.Job, log *os.File, adopted bool) (secrets []runner.Secret, mask [][]byte, err error) {
	if w.Grants == nil {
		return nil, nil, nil
	}
	// trouble fails a job about to start; an adopted one runs already.
	trouble := func(err error) error {
		if adopted {
			w.logf("%s %d: adopted job's secrets: %v", j.Repo, j.ID, err)
			return nil
		}
		return fmt.Errorf("%w; the job did not start", err)
	}
	text, err := w.Grants(ctx, j)
	if err != nil {
		return nil, nil, trouble(fmt.Errorf("could not read the repository's JOBQ_SECRETS: %w", err))
	}
	grants, err := secret.ParseGrants(text)
	if err != nil {
		return nil, nil, trouble(err)
	}
	if len(grants) == 0 {
		return nil, nil, nil
	}
	given, withheld := secret.Resolve(grants, j.Ref)
	store := secret.Open(w.Store.Dir())
	for _, g := range given {
		v, err := store.Get(g.Name)
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("secret %s is granted to this ref (JOBQ_SECRETS) but not in the store (jobq secret set %s)", g.Name, g.Name)
		}
		if err != nil {
			if err := trouble(err); err != nil {
				return nil, nil, err
			}
			continue
		}
		secrets = append(secrets, runner.Secret{Name: g.Name, Var: g.Var, Value: v})
	}
	for _, name := range withheld {
		v, err := store.Get(name)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				w.logf("%s %d: withheld secret %s, not masked: %v", j.Repo, j.ID, name, err)
			}
			continue
		}
		mask = append(mask, v)
	}
	if !adopted {
		queue.WriteOwn(log, secretLines(grants, given, withheld, j.Ref))
	}
	return secrets, mask, nil
}

// secretLines say which secrets a job is given and which granted ones
// it is not, and why: names, patterns and the ref only.
func secretLines(grants []secret.Grant, given []secret.Grant, withheld []string, ref string) string {
	var b strings.Builder
	if len(given) > 0 {
		var names []string
		for _, g := range given {
			if g.Var != "" {
				names = append(names, fmt.Sprintf("%s (also $%s)", g.Name, g.Var))
			} else {
				names = append(names, g.Name)
			}
		}
		fmt.Fprintf(&b, "jobq: secrets given: %s\n", strings.Join(names, ", "))
	}
	for _, name := range withheld {
		var patterns []string
		for _, g := range grants {
			if g.Name == name {
				patterns = append(patterns, g.Pattern)
			}
		}
		fmt.Fprintf(&b, "jobq: secret %s withheld: JOBQ_SECRETS grants it to %s only, not to this job's ref %s\n",
			name, strings.Join(patterns, " "), ref)
	}
	return b.String()
}
