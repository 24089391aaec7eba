package podman

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/containers/podman/v5/pkg/bindings/volumes"

	"github.com/jobq/jobq/queue"
)

// A remote job's /source is a volume of its own. Podman removes an
// anonymous volume with its container (WithVolumes), but one that a
// removal cut short leaves (the service died between the two) carries
// nothing that says whose it is: no labels. So the volume is named, by
// jobq, and marked anonymous (IsAnonymous, as Podman's own kube emptyDir):
// it is created with the container, in the same request, and removed with
// it, at no cost; its name says which data directory's job it is for,
// and the sweep removes those of jobs that no longer run once no
// container uses them.

// volumeTag begins the names of the volumes of home's jobs: jobq- and
// home's digest, as hostKey makes it.
func volumeTag(home string) string { return "jobq-" + hostKey(home) + "-" }

// sourceVolume names a new /source volume for job j of home: the tag, the
// job's ID, its repository in hex (a volume name allows no '/'), and a
// random part, so that no volume left over (a repository deleted and made
// again numbers its jobs from 0) is ever taken for a new job's.
func sourceVolume(home string, j *queue.Job) string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return fmt.Sprintf("%s%d-%x-%x", volumeTag(home), j.ID, j.Repo, b)
}

// volumeJob is the job of home that volume name is for; ok is false for
// any volume sourceVolume did not name for home.
func volumeJob(home, name string) (repo string, id int64, ok bool) {
	rest, found := strings.CutPrefix(name, volumeTag(home))
	f := strings.Split(rest, "-")
	if !found || len(f) != 3 || len(f[2]) != 16 {
		return "", 0, false
	}
	id, err := strconv.ParseInt(f[0], 10, 64)
	r, herr := hex.DecodeString(f[1])
	if err != nil || id < 0 || herr != nil || queue.ValidName(string(r)) != nil {
		return "", 0, false
	}
	return string(r), id, true
}

// sweepVolumes removes the /source volumes of home's jobs that no
// container uses (dangling) and whose job no longer runs, current aside.
// Podman refuses to remove a volume a container took meanwhile (no
// force). It never fails a job.
func (r *Runner) sweepVolumes(conn context.Context, current *queue.Job) {
	list, err := volumes.List(conn, new(volumes.ListOptions).WithFilters(map[string][]string{"dangling": {"true"}}))
	if err != nil {
		return
	}
	for _, v := range list {
		repo, id, ok := volumeJob(r.cfg.Home, v.Name)
		if !ok || current != nil && repo == current.Repo && id == current.ID || r.cfg.Active != nil && r.cfg.Active(repo, id) {
			continue
		}
		volumes.Remove(conn, v.Name, nil)
	}
}

// Sweep implements the worker's Sweeper (jobq gc): it removes what jobs
// that no longer run left (containers, then volumes) on every build host
// of the pools jobs name, each host once, and their secret directories on
// this host. A host that cannot be reached is skipped, and said.
func (r *Runner) Sweep(ctx context.Context, jobs []*queue.Job) error {
	r.sweepSecretDirs(nil)
	seen := map[string]bool{}
	var errs []error
	r.sweepCacheRecords(ctx, jobs)
	for _, j := range jobs {
		ms, err := r.cfg.Service.pool(j.Options.Connection)
		if err != nil {
			continue // its jobs say why
		}
		for _, m := range ms {
			// This machine's service is swept by its workers: gc does not
			// start one.
			if seen[m.ep.uri] || !m.remote() {
				continue
			}
			seen[m.ep.uri] = true
			l, err := r.cfg.Service.link(ctx, m.ep)
			if err != nil {
				errs = append(errs, fmt.Errorf("sweep %s: %w", m.name, err))
				continue
			}
			r.sweep(l.conn, nil)
		}
	}
	return errors.Join(errs...)
}
