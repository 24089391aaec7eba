// Command floor runs a trivial job's container through the Podman
// bindings alone, as jobq's podman runner does but with nothing else of
// jobq around it: the floor that a push's job overhead is held to.
//
//	floor IMAGE GIT_DIR REV RUNS
//
// Each run checks REV out into a new directory, then creates, attaches to,
// starts and waits for a container of IMAGE running `true` with
// the options of a jobq job (jobq's own Spec: the checkout at /source,
// --network=none, the k8s-file log, the first ID range of the user's
// subordinate IDs) on $CONTAINER_HOST. It prints each run's milliseconds,
// the checkout's included, one a line; bench/run.sh takes the median and
// sets jobq's push-to-result beside it. The container and the checkout are
// removed after the time is taken, as jobq removes them after it records
// the result.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/specgen"
	"github.com/containers/storage/pkg/idtools"
	storagetypes "github.com/containers/storage/types"

	"github.com/jobq/jobq/internal/gittree"
	"github.com/jobq/jobq/push"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner"
	"github.com/jobq/jobq/runner/podman"
)

// rangeSize is the IDs of one job's range, as the runner gives each job.
const rangeSize = 4096

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: floor IMAGE GIT_DIR REV RUNS")
		os.Exit(2)
	}
	runs, err := strconv.Atoi(os.Args[4])
	if err == nil && runs < 1 {
		err = errors.New("RUNS must be at least 1")
	}
	if err == nil {
		err = floor(context.Background(), os.Args[1], os.Args[2], os.Args[3], runs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func floor(ctx context.Context, image, gitDir, rev string, runs int) error {
	conn, err := bindings.NewConnection(ctx, os.Getenv("CONTAINER_HOST"))
	if err != nil {
		return err
	}
	uids, err := firstRange("/etc/subuid")
	if err != nil {
		return err
	}
	gids, err := firstRange("/etc/subgid")
	if err != nil {
		return err
	}
	opts, err := push.ParseOptions(func(k string) (string, bool) {
		v, ok := map[string]string{"JOBQ_COMMAND": image + " true", "JOBQ_NETWORK": "none"}[k]
		return v, ok
	}, "floor")
	if err != nil {
		return err
	}
	j := &queue.Job{Repo: "floor", Queue: "floor", Ref: "refs/heads/main", NewRev: rev, Options: opts}
	for i := range runs {
		j.ID = int64(i)
		if err := once(conn, j, gitDir, uids, gids); err != nil {
			return err
		}
	}
	return nil
}

// once is one job's life without jobq, timed from the checkout to the
// container's exit; then the container and the checkout are removed.
func once(conn context.Context, j *queue.Job, gitDir string, uids, gids []idtools.IDMap) error {
	start := time.Now()
	dir, err := os.MkdirTemp("", "jobq-floor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := gittree.Checkout(conn, gitDir, j.NewRev, dir, gittree.DefaultLimits()); err != nil {
		return err
	}
	s, err := podman.Spec(j, "floor", dir, runner.DefaultGrace, false, nil, nil, podman.LocalHard())
	if err != nil {
		return err
	}
	// As the runner's ID range: a user namespace of the job's own, the
	// checkout chowned to it.
	s.UserNS = specgen.Namespace{NSMode: specgen.Private}
	s.IDMappings = &storagetypes.IDMappingOptions{UIDMap: uids, GIDMap: gids}
	s.Mounts[0].Options = append(s.Mounts[0].Options, "U")
	c, err := containers.CreateWithSpec(conn, s, nil)
	if err != nil {
		return err
	}
	defer remove(conn, c.ID)
	// As podman run does: attached before the start (which initialises
	// the container), its end the sign that the container exits, then a
	// fine wait for its state.
	ready := make(chan bool, 1)
	attached := make(chan error, 1)
	go func() {
		// Writers the bindings can tell from nil (they reflect on them).
		var out bytes.Buffer
		attached <- containers.Attach(conn, c.ID, nil, &out, &out, ready, new(containers.AttachOptions).WithStream(true))
	}()
	select {
	case <-ready:
	case err := <-attached:
		return fmt.Errorf("attach: %w", err)
	}
	if err := containers.Start(conn, c.ID, nil); err != nil {
		return err
	}
	if err := <-attached; err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	code, err := containers.Wait(conn, c.ID, new(containers.WaitOptions).WithInterval("1ms"))
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("the container exited %d", code)
	}
	fmt.Printf("%.1f\n", float64(time.Since(start))/float64(time.Millisecond))
	return nil
}

// remove removes a container, asking again while a container that has just
// exited is still in Podman's own clean-up (its shm mount busy), as the
// runner does.
func remove(conn context.Context, id string) {
	for range 10 {
		_, err := containers.Remove(conn, id, new(containers.RemoveOptions).WithForce(true).WithVolumes(true).WithTimeout(0))
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// firstRange is the first rangeSize subordinate IDs of this user in file
// (/etc/subuid or /etc/subgid), as container IDs 0 on.
func firstRange(file string) ([]idtools.IDMap, error) {
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) != 3 || (fields[0] != u.Username && fields[0] != u.Uid) {
			continue
		}
		first, err1 := strconv.Atoi(fields[1])
		n, err2 := strconv.Atoi(fields[2])
		if err1 != nil || err2 != nil || n < rangeSize {
			continue
		}
		return []idtools.IDMap{{ContainerID: 0, HostID: first, Size: rangeSize}}, nil
	}
	return nil, fmt.Errorf("%s: no range of %d IDs for %s", file, rangeSize, u.Username)
}
