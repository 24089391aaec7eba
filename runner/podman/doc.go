// Package podman is the podman backend of the worker (JOBQ_RUNNER=podman):
// it checks the pushed revision out with go-git into a directory of the
// job's own (checkout.go), makes the job's image present (images.go),
// gives the job an ID range of its own (idrange.go, isolation.go: reserved
// while the job is still queued, once it has its slot: Reserve), and runs
// IMAGE ARGS... in a container through the Podman v5 bindings (podman.go,
// spec.go) on the service JOBQ_CONNECTION names, started on demand
// (connection.go), attached before it starts so that no output is lost,
// its output batched into the log (batch.go). Cleanup removes the
// container and the checkout, after the result is recorded.
package podman
