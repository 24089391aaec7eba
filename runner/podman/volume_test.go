package podman

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/volumes"
	"github.com/containers/podman/v5/pkg/domain/entities"

	"github.com/jobq/jobq/internal/testenv"
	"github.com/jobq/jobq/queue"
)

// A volume's name says whose job it is for, and only a name sourceVolume
// made for this data directory is read as one.
func TestVolumeJob(t *testing.T) {
	const home = "/home/git/.jobq"
	j := &queue.Job{Repo: "team/app+x@y", ID: 42}
	name := sourceVolume(home, j)
	if other := sourceVolume(home, j); other == name {
		t.Errorf("two volumes of one job share the name %s", name)
	}
	if repo, id, ok := volumeJob(home, name); !ok || repo != j.Repo || id != j.ID {
		t.Errorf("volumeJob(%s) = %q %d %v", name, repo, id, ok)
	}
	tag := volumeTag(home)
	for _, tt := range []struct{ name, volume string }{
		{"another data directory's", sourceVolume("/srv/other/.jobq", j)},
		{"a user's", "mydata"},
		{"the tag alone", tag},
		{"no random part", strings.TrimSuffix(name, name[len(name)-17:])},
		{"a short random part", name[:len(name)-1]},
		{"a negative ID", tag + "-1-61-0011223344556677"},
		{"a repository not hex", tag + "1-zz-0011223344556677"},
		{"an invalid repository", tag + "1-2e2e2f78-0011223344556677"},
		{"a field more", name + "-00"},
	} {
		if repo, id, ok := volumeJob(home, tt.volume); ok {
			t.Errorf("%s (%s): read as job %s %d", tt.name, tt.volume, repo, id)
		}
	}
}

// A remote job's /source volume goes with its container (WithVolumes), and
// the sweep removes the volumes of this data directory's jobs that no
// container uses and whose job no longer runs: a removal cut short leaves
// them; containers are not all a job leaves. Another data directory's, a
// user's, and a running job's stay.
func TestSweepVolumes(t *testing.T) {
	r, _ := newTestPodman(t)
	ctx := context.Background()
	conn, _, err := r.cfg.Service.Connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	home := r.cfg.Home
	running := &queue.Job{Repo: "team/running", ID: 3}
	r.cfg.Active = func(repo string, id int64) bool { return repo == running.Repo && id == running.ID }

	// With the container: named as sourceVolume says, anonymous, removed
	// with it.
	j := testJob("/r", strings.Repeat("a", 40), testenv.Busybox+" true")
	s, err := Spec(j, home, "", time.Second, false, nil, &hostInfo{}, hardLimits{nofile: 20000, nproc: 32768})
	if err != nil {
		t.Fatal(err)
	}
	created, err := containers.CreateWithSpec(conn, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	vol := s.Volumes[0].Name
	if v, err := volumes.Inspect(conn, vol, nil); err != nil || !v.Anonymous {
		t.Errorf("the job's volume %s: %+v %v", vol, v, err)
	}
	if err := remove(conn, created.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := volumes.Inspect(conn, vol, nil); !notFound(err) {
		t.Errorf("the job's volume outlives its container: %v", err)
	}

	stray := sourceVolume(home, &queue.Job{Repo: "team/dead", ID: 9})
	keep := []string{
		sourceVolume(home, running),
		sourceVolume(home+"-other", &queue.Job{Repo: "team/dead", ID: 9}),
		"jobq-radopt-user-data",
	}
	for _, name := range append([]string{stray}, keep...) {
		if _, err := volumes.Create(conn, entities.VolumeCreateOptions{Name: name}, nil); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, name := range append([]string{stray}, keep...) {
			volumes.Remove(conn, name, nil)
		}
	}()
	r.sweep(conn, j)
	if _, err := volumes.Inspect(conn, stray, nil); !notFound(err) {
		t.Errorf("a dead job's volume left by a cut removal is still there after the sweep: %v", err)
	}
	for _, name := range keep {
		if _, err := volumes.Inspect(conn, name, nil); err != nil {
			t.Errorf("the sweep removed %s: %v", name, err)
		}
	}
}
