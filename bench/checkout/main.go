// Command checkout runs jobq's checkout once, or ships the same tree into
// a container as a build host gets it:
//
//	checkout GIT_DIR REV DIR          the checkout, into DIR
//	checkout ship IMAGE GIT_DIR REV   the tar, into a container created on
//	                                  $CONTAINER_HOST; prints the ship's ms
//
// bench/run.sh and bench/isolation.sh time the first against git checkout
// --force; bench/run.sh compares the two ways for a local service.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/specgen"

	"github.com/jobq/jobq/internal/gittree"
)

func main() {
	var err error
	switch {
	case len(os.Args) == 5 && os.Args[1] == "ship":
		err = ship(context.Background(), os.Args[2], os.Args[3], os.Args[4])
	case len(os.Args) == 4:
		err = gittree.Checkout(context.Background(), os.Args[1], os.Args[2], os.Args[3], gittree.DefaultLimits())
	default:
		fmt.Fprintln(os.Stderr, "usage: checkout GIT_DIR REV DIR | checkout ship IMAGE GIT_DIR REV")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// ship creates a container with an anonymous volume at /source, as the
// runner does for a build host, and times the tar of the tree into it
// (the runner's Archive into CopyFromArchive); the create and the removal
// are not timed, as the checkout's container is not.
func ship(ctx context.Context, image, gitDir, rev string) error {
	conn, err := bindings.NewConnection(ctx, os.Getenv("CONTAINER_HOST"))
	if err != nil {
		return err
	}
	s := specgen.NewSpecGenerator(image, false)
	s.Command = []string{"true"}
	s.Volumes = []*specgen.NamedVolume{{Dest: "/source", Options: []string{"nocopy"}}}
	c, err := containers.CreateWithSpec(conn, s, nil)
	if err != nil {
		return err
	}
	defer containers.Remove(conn, c.ID, new(containers.RemoveOptions).WithForce(true).WithVolumes(true))
	start := time.Now()
	pr, pw := io.Pipe()
	archived := make(chan error, 1)
	go func() {
		err := gittree.Archive(ctx, gitDir, rev, pw, gittree.DefaultLimits())
		pw.CloseWithError(err)
		archived <- err
	}()
	copyFn, err := containers.CopyFromArchive(conn, c.ID, "/source", pr)
	if err == nil {
		err = copyFn()
	}
	pr.CloseWithError(errors.New("the copy ended"))
	if aerr := <-archived; aerr != nil {
		return aerr
	}
	if err != nil {
		return err
	}
	fmt.Printf("%.1f\n", float64(time.Since(start))/float64(time.Millisecond))
	return nil
}
