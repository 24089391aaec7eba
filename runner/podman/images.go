package podman

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/containers/podman/v5/pkg/bindings/images"
)

// Pull policies (JOBQ_PULL).
const (
	pullMissing = "missing"
	pullAlways  = "always"
	pullNever   = "never"
)

// checkImage refuses what is not an image reference or a pull policy, before
// anything is asked of the service.
func checkImage(ref, policy string) error {
	if ref == "" || strings.HasPrefix(ref, "-") {
		return fmt.Errorf("image %q is not an image reference", ref)
	}
	switch policy {
	case pullMissing, pullNever, pullAlways:
		return nil
	}
	return fmt.Errorf("unknown pull policy %q", policy)
}

// ensureImage makes ref present on the service conn (a bindings connection
// context) under policy; pull progress goes to progress. pulled says
// whether it pulled.
func ensureImage(conn context.Context, ref, policy string, progress io.Writer) (pulled bool, err error) {
	if err := checkImage(ref, policy); err != nil {
		return false, err
	}
	if policy != pullAlways {
		ok, err := images.Exists(conn, ref, nil)
		if err != nil {
			return false, fmt.Errorf("look up image %s: %w", ref, err)
		}
		if ok {
			return false, nil
		}
		if policy == pullNever {
			return false, fmt.Errorf("image %s is not present and JOBQ_PULL=never", ref)
		}
	}
	opts := new(images.PullOptions).WithPolicy(pullAlways).WithProgressWriter(progress)
	if _, err := images.Pull(conn, ref, opts); err != nil {
		return false, fmt.Errorf("pull image %s: %w", ref, err)
	}
	return true, nil
}
