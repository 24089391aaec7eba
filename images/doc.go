// Package images is where a job's image is checked and made present:
// image references and the pull policy (JOBQ_PULL: missing, always,
// never), applied through the Podman bindings on the service a job runs
// on, whichever backend asks.
//
// It links the bindings: the hook and ssh binary (cmd/jobq, and push,
// which it links) must not import it.
package images
