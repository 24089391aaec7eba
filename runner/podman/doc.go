// Package podman is the podman backend of the worker (JOBQ_RUNNER=podman):
// each job runs IMAGE ARGS... in a container of its own through the Podman
// v5 bindings, on the service JOBQ_CONNECTION names. Its files:
//
//   - podman.go: the Runner: a job's run from its source to its result.
//     The pushed revision is checked out with internal/gittree into a
//     directory of the job's own and bind-mounted, or, for a remote
//     service, streamed into /source as a tar (gittree.Archive); the
//     image is made present with the images package. Cleanup removes the
//     container and the checkout after the result is recorded.
//   - spec.go: the container's spec: mounts, limits, labels, user
//     namespace.
//   - idrange.go, isolation.go: an ID range of the job's own (reserved
//     while the job is still queued, once it has its slot: Reserve), and
//     what the service can do, read once per service and boot.
//   - stream.go, batch.go: the output, attached before the container
//     starts so that none is lost, batched into the job's log.
//   - adopt.go: taking over a job whose worker died while its container
//     ran.
//   - connection.go: which service, and reaching it: a local one started
//     on demand, a remote one over ssh:// through a tunnel kept per host.
//   - tunnel.go: the glue to internal/sshtunnel: the Podman socket on the
//     remote, and messages that say where Podman's connections are named.
//   - pool.go: build hosts: a farm of services, a cap of jobs on each.
//   - artifacts.go: Collect, the job's artifacts read from its stopped
//     container through the archive endpoint, written by internal/safetar.
//   - volume.go: the volume of a remote job's /source, named so that the
//     sweep finds one that a cut-short removal left.
//   - cache.go: the job's caches (JOBQ_CACHE, records in runner/cache):
//     its scope's lock, reserved with its ID range; its volumes, mounted
//     with U where the files are another range's; a ref's first cache
//     copied from the main one through the archive endpoints; the size
//     bound after the job; the sweep of volumes no record names.
//   - secrets.go, mask.go: a job's secrets, as files /run/secrets/NAME
//     held in memory only (a tmpfs of this host bind-mounted, or a tmpfs
//     volume on a build host), as variables through jobq-env; and their
//     values masked in the job's output, adoption and resume included.
//
// Its records, in the job's run directory (runner.Job.Dir), each removed
// only once what it names is gone:
//
//	checkout   the path of the job's checkout directory
//	container  the ID of the job's container
//	logstart   where the container's output begins in the job's log
//	           (byte k of the container's log is byte START+k of the
//	           job's; with secrets, of its masked output: mask.go), for
//	           an adoption to resume without loss or repeat
//	secrets    "dir PATH": the tmpfs directory of a local job's secret
//	           files, or "volume NAME": a build host job's secrets volume;
//	           written before either is made
package podman
