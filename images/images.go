package images

import (
	"context"
	"fmt"
	"io"
	"strings"

	bindings "github.com/containers/podman/v5/pkg/bindings/images"
)

// Pull policies (JOBQ_PULL).
const (
	PullMissing = "missing" // pull only an image that is not present
	PullAlways  = "always"  // pull every time
	PullNever   = "never"   // use only an image that is present
)

// Check refuses what is not an image reference or a pull policy, before
// anything is asked of the service.
func Check(ref, policy string) error {
	if ref == "" || strings.HasPrefix(ref, "-") {
		return fmt.Errorf("image %q is not an image reference", ref)
	}
	switch policy {
	case PullMissing, PullNever, PullAlways:
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
	if policy != PullAlways {
		ok, err := bindings.Exists(conn, ref, nil)
		if err != nil {
			return false, fmt.Errorf("look up image %s: %w", ref, err)
		}
		if ok {
			return false, nil
		}
		if policy == PullNever {
			return false, fmt.Errorf("image %s is not present and JOBQ_PULL=never", ref)
		}
	}
	opts := new(bindings.PullOptions).WithPolicy(PullAlways).WithProgressWriter(progress)
	if _, err := bindings.Pull(conn, ref, opts); err != nil {
		return false, fmt.Errorf("pull image %s: %w", ref, err)
	}
	return true, nil
}
