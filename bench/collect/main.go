// Command collect runs jobq's collection of artifacts once, as the podman
// runner does after a job (podman.CollectFrom: the archive endpoint,
// internal/safetar), from a stopped container on $CONTAINER_HOST:
//
//	collect CONTAINER DIR MAX PATTERN...
//
// DIR must exist and be empty; MAX is JOBQ_ARTIFACTS_MAX. It fails unless
// everything selected was collected. bench/run.sh times it against podman
// cp of the same directory.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containers/podman/v5/pkg/bindings"

	"github.com/jobq/jobq/push"
	"github.com/jobq/jobq/queue"
	"github.com/jobq/jobq/runner/podman"
)

func main() {
	if len(os.Args) < 5 {
		fmt.Fprintln(os.Stderr, "usage: collect CONTAINER DIR MAX PATTERN...")
		os.Exit(2)
	}
	if err := collect(context.Background(), os.Args[1], os.Args[2], os.Args[3], os.Args[4:]); err != nil {
		fmt.Fprintln(os.Stderr, "collect:", err)
		os.Exit(1)
	}
}

func collect(ctx context.Context, id, dir, max string, pats []string) error {
	conn, err := bindings.NewConnection(ctx, os.Getenv("CONTAINER_HOST"))
	if err != nil {
		return err
	}
	b, f, err := push.ParseArtifactsMax(max)
	if err != nil {
		return err
	}
	o := queue.Options{Artifacts: pats, ArtifactsBytes: b, ArtifactsFiles: f}
	var lines []string
	say := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	if err := podman.CollectFrom(ctx, conn, id, o, dir, nil, say); err != nil {
		return err
	}
	// The last line is the count; any other says what was left out.
	if len(lines) != 1 {
		return errors.New(strings.Join(lines, "; "))
	}
	return nil
}
