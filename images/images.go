// Package images makes a job's image available on the Podman service
// according to JOBQ_PULL (missing, always, never), through the Podman v5
// bindings, and says in one line why when it cannot.
package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/containers/podman/v5/pkg/bindings/images"
)

// Pull policies (JOBQ_PULL).
const (
	Missing = "missing"
	Always  = "always"
	Never   = "never"
)

// Check refuses what is not an image reference or a pull policy, before
// anything is asked of the service.
func Check(ref, policy string) error {
	if ref == "" || strings.HasPrefix(ref, "-") {
		return fmt.Errorf("image %q is not an image reference", ref)
	}
	switch policy {
	case Missing, Never, Always:
		return nil
	}
	return fmt.Errorf("unknown pull policy %q", policy)
}

// Ensure makes ref present on the service conn (a bindings connection
// context) under policy; pull progress goes to progress. pulled says
// whether it pulled.
func Ensure(conn context.Context, ref, policy string, progress io.Writer) (pulled bool, err error) {
	if err := Check(ref, policy); err != nil {
		return false, err
	}
	if policy != Always {
		ok, err := images.Exists(conn, ref, nil)
		if err != nil {
			return false, fmt.Errorf("look up image %s: %w", ref, err)
		}
		if ok {
			return false, nil
		}
		if policy == Never {
			return false, fmt.Errorf("image %s is not present and JOBQ_PULL=never", ref)
		}
	}
	opts := new(images.PullOptions).WithPolicy(Always).WithProgressWriter(progress)
	if _, err := images.Pull(conn, ref, opts); err != nil {
		return false, fmt.Errorf("pull image %s: %s", ref, firstLine(err))
	}
	return true, nil
}

// firstLine keeps a pull error to one line: registries answer at length.
func firstLine(err error) string {
	s := err.Error()
	var join interface{ Unwrap() []error }
	if errors.As(err, &join) && len(join.Unwrap()) > 0 {
		s = join.Unwrap()[0].Error()
	}
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
