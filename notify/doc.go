// Package notify tells people and tools of jobs' results: mail through the
// host's sendmail, signed webhooks, host commands (package notify/deliver
// sends them). Destinations come only from the administrator's options
// (JOBQ_NOTIFY, JOBQ_NOTIFY_ON, JOBQ_NOTIFY_SECRET, JOBQ_WEB_URL, read
// at push time into the job's queue.Options): no pusher can point a
// worker at a host.
//
// # Durable, at least once
//
// A job's worker decides, as it records the job's result, whether the
// result is to be told (Decide: JOBQ_NOTIFY_ON's failure, change or
// always), and if so writes the job's Record (repos/NAME/ID/notify.json:
// the result, and each destination's delivery state) and an entry in the
// data directory's index (notify/ID-NAME), durably, before the result
// itself: a result that is recorded has its notifications recorded. A
// crash between the two leaves the job running; whoever records its
// result later writes the record again (Prepare replaces it), and a
// record whose result is not the job's is never sent (Due).
//
// Delivery happens after the result is recorded, off the job's path (a
// goroutine of the worker, which the next job does not wait for), each
// destination until it is delivered or MaxAge old, with backoff. The
// process delivering a job's notifications holds notify.lock in the
// job's directory, and re-reads the record under it, so two processes
// (a worker, and jobq gc after a crash) do not send the same try twice.
// A delivery is recorded after it is sent: a crash in between sends it
// again, so receivers dedupe on the idempotency key (the repository's
// incarnation and the job's ID). The index entry goes once every
// destination is delivered or given up; queue.Store.Prune keeps a job
// while it is there; Pending counts the entries (the metrics' gauge).
//
// Readers see, for each destination, only its kind, its tries, its
// state and its last error (View): never the destination, which may
// hold a token, nor the webhook's secret.
package notify
