// Package queue is jobq's on-disk job store: job records and logs, the FIFO
// queues that order them, and the protocol that lets hooks, workers and ssh
// commands share them without a daemon.
//
// # Layout (under $JOBQ_HOME)
//
//	repos/NAME/next            the next job ID to hand out (a hint, see below)
//	repos/NAME/lock            flock: held while a job record of NAME changes
//	repos/NAME/incarnation     the incarnation token of NAME's history, and its bare repository
//	repos/NAME/ID/job.json     the job record (Job), replaced atomically
//	repos/NAME/ID/log          header, the job's output, one result line
//	repos/NAME/ID/own          which lines of log are jobq's: offset and text of each (own.go)
//	repos/NAME/ID/cancel       present: cancellation of a running job requested
//	repos/NAME/ID/lock         flock: held by the worker handling the job (Claim), Peek to Done
//	repos/NAME/ID/waiting      why a queued job has not started (shown while its lock is held)
//	repos/NAME/ID/run/         the job's runner's own (RunDir): its records of what the
//	                           job uses outside the data directory, named by the
//	                           runner's package; each removed once what it names is gone
//	queues/NAME/worker.lock    flock: held by the one worker draining the queue
//	queues/NAME/start.lock     flock: held while a worker for the queue starts
//	queues/NAME/enqueue.lock   flock: held while an entry is added
//	queues/NAME/pending/SEQ-ID-REPO   queued jobs; SEQ orders the queue (FIFO)
//	queues/NAME/running/SEQ-ID-REPO   the job the queue's worker has claimed
//	slots/lock                 flock: held for the instant a worker decides
//	slots/N.lock               flock: one per job running; names its pusher
//	slots/wait/QUEUEDAT-QUEUE  flock: a job waiting for a slot; names its pusher
//	dispatch.lock              flock: held by the data directory's one dispatcher
//	handoff/NAME               queue NAME was handed to the dispatcher, not taken yet
//	retired/NAME/TOKEN/ID/     jobs of a deleted incarnation of NAME (the administrator's)
//	secrets/NAME               the host's secret store (internal/secret), not the queue's:
//	                           no record or log of this package ever holds a value
//	GIT_DIR/jobq-incarnation   in the bare repository: its incarnation token
//
// NAME is a repository or queue name with '%' and '/' escaped, so every name
// is one directory entry; names are validated before they touch a path.
// A queue is one a JOBQ_QUEUE names, shared by the repositories that name
// it, or a repository's own, repo:REPO (DefaultQueue), which no JOBQ_QUEUE
// can name: a repository does not join a queue by being named like it.
// Own queues once had the repository's bare name; QueueFor sends a
// repository's new jobs after its jobs still in such a queue.
//
// # Protocol
//
// Enqueue, under the repository lock: take ID from next (skipping any ID whose
// directory exists; next is a hint, rebuilt by a scan if lost) and store
// ID+1; add the pending entry, which fixes the job's Seq (it dangles: the job
// directory does not exist yet); write the record into a temporary directory;
// rename the temporary directory to ID. That rename is the commit point: a
// crash before it leaves no job, after it a whole, queued job. Three fsyncs
// make it so: the record, the entry's directory, then the repository's. A
// worker that finds a dangling entry takes the repository lock, which the
// enqueuer holds until it has committed, and removes the entry if it still
// dangles.
//
// Incarnations (incarnation.go): a repository's history belongs to one
// incarnation of it, named by a random token in the bare repository that
// the first enqueue makes (written aside and linked into place, so two
// first pushes agree). Enqueue, under the repository lock, compares it with
// repos/NAME/incarnation: a new token retires the old history to retired/
// (queued jobs cancelled; a running job, or one whose clean-up is to be
// done, stays, marked old and hidden, until Prune moves it). IDs keep
// counting across incarnations. Readers show a job only while the two
// tokens agree and the job carries the live one (Store.View); a worker
// cancels, instead of running, a queued job whose repository's token has
// changed since.
//
// Claim, by the queue's worker (Hold: HoldQueue, Peek, Claim, Done): it
// takes the job's lock (Peek), then renames pending/E to running/E, then,
// under the repository lock, changes the record from queued to running. A job cancelled
// while queued is skipped. A job is started only after its running state is
// durable, so a worker that restarts after a crash finds in running/ either a
// job still marked queued (never started: it goes back to pending) or a job
// marked running. After a job the worker records its result, then has the
// runner clean up (its container, its checkout), so that the result does not
// wait for that; then Done removes running/E and lets the job's lock go.
// Readers (Follow, the listing's Waiting) take a job marked running or
// waiting whose lock is free for one whose worker died or stopped: a lock
// dies with its process, where a pid can be reused.
//
// Adoption (Hold.Recover, Adopt): a job marked running outlives its worker
// (a crash, or SIGTERM: a stopping worker leaves its running jobs and their
// entries, and only lets their locks go). The next holder of the queue
// takes the job's lock, so one worker only adopts it, records itself and
// the adoption in the job, takes a slot at once (AdoptSlot: past JOBQ_SLOTS
// if every slot is taken meanwhile; it names the pusher, so the cap counts
// it) and has the job's runner take it over: its output continues in the
// log exactly once, after one line saying so, under the timeout counted
// from the job's start and the cancel request. A job the runner finds gone
// (no container or supervisor, or never started) is recorded lost, and never
// run again. The queue's next job waits for the adopted one (FIFO). Follow
// goes on following a job whose worker is gone, and its caller starts a
// worker for the queue (EnsureWorker) so that one comes to adopt it.
//
// Cancellation: Cancel, under the repository lock, makes a queued job
// cancelled at once (its worker skips it at the claim) and asks a running
// one to stop by creating repos/NAME/ID/cancel, which its worker looks for
// every poll interval; the worker then stops the job (SIGTERM, the grace
// period, SIGKILL) and records it cancelled.
//
// Slots: at most JOBQ_SLOTS jobs run on the host, at most JOBQ_USER_SLOTS
// of them pushed by one user, and a slot that frees goes to the job that
// has waited longest, whatever queue or worker it is in. A queue's worker
// that wants to start a job takes slots/lock (every step below happens
// under it, so it is short and nothing there changes meanwhile) and, the
// first time, registers the job: it creates slots/wait/QUEUEDAT-QUEUE (its
// queued time, nanoseconds, zero-padded: names sort oldest first), locks it
// and writes the pusher in it. Then it tries every slots/N.lock: one it
// cannot lock is held, by a running job of the pusher the file names; one
// it can lock, below its worker's JOBQ_SLOTS, is free, and stays locked
// for now. It tries every other waiter file too: one it can lock has no
// live worker and is removed. It goes through the waiters oldest first,
// handing the free slots out and skipping any whose pusher would exceed
// the cap; if its own job is handed one, it writes the pusher into that
// slot, keeps it locked for the job's run, and removes its waiter file.
// Otherwise it lets the free slots go and looks again after 1+P poll
// intervals (at most 25), P its place in line, those the cap holds back
// last: the first in line looks often, a hundred waiting queues do not
// each look every interval. Whoever looks first, only the oldest eligible
// jobs start. Within one process (the dispatcher holds hundreds of
// waiters) one goroutine at a time takes slots/lock, and for 100 ms after
// a look the process's other waiters that look did not let start take
// their place and reason from it instead of looking again; only a look
// under slots/lock hands out a slot, and a slot or waiter the process
// lets go ends the shared look at once.
// Every mark is a flock held by a live process, so a worker that dies
// leaves no slot and no place in line taken: the kernel drops its locks,
// its slot counts as free, and its waiter file is removed at the next
// look. A job handed off (below) leaves the line for the instant between
// its worker's hand-off and the dispatcher's first look, and comes back
// to its place: its waiter file's name is its queued time. A worker that
// waits for free space (JOBQ_MIN_FREE, JOBQ_MIN_FREE_INODES) holds no
// place in line meanwhile: it could not start a job if given a slot.
//
// A runner's records (run/) name what a job uses outside the data
// directory: a checkout, a container. A runner removes a record only once
// what it names is gone, and Prune keeps a job whose run/ is not empty, so
// a failed clean-up is retried (jobq gc) instead of forgotten.
//
// Hand-off (dispatch.go): a queue whose next job cannot start yet (no
// slot, no build host, no space) is not held by a process of its own. A
// worker a hook started (jobq-worker drain --wait; DrainOrHandOff) that
// finds its job cannot start at its first try lets the job's claim and
// place in line go (the job stays pending, in the queue's order), and
// hands the queue off: holding the queue still, it creates handoff/NAME
// and keeps it open; then it try-locks dispatch.lock. Got: no dispatcher
// runs, and this worker becomes it, keeping its queue (the mark goes).
// Not got: it lets the queue go, and try-locks dispatch.lock once more
// (got: it becomes the dispatcher, and takes its queue back through the
// mark like any other); then it closes the mark and exits. The
// dispatcher (or the service, below, once it holds dispatch.lock) watches
// handoff/ with inotify, set up before its first look: a mark's close
// (after the queue is let go, or the worker's death) wakes it, and it
// try-locks each marked queue's worker.lock; one it gets it drains in a
// goroutine, waiting for the job's slot in its place in line as any
// worker does (the waiter file's name, the job's queued time, gives the
// job its place back); one it does not get is held by the worker still
// handing it off, whose close wakes it again. Whoever takes a queue
// (HoldQueue, and Release's second take) removes its mark: the holder
// answers for it, so a mark is left only on a queue nobody holds. The
// dispatcher holds the queue from then on, so a push to it starts
// nothing. It exits when it holds no queue: it lets dispatch.lock go,
// then looks at handoff/ again, and if a mark is there try-locks
// dispatch.lock again and goes on. No queue waits for a dispatcher gone:
// a worker whose first try-lock failed lets its queue go before its
// second; if that second fails too, the holder is either a dispatcher that
// let go after the worker's mark was made and looks at handoff/ after
// that (and sees the mark: it goes on, or another took the role), or one
// that runs (and is woken by the mark's close, or looks first). Every
// mark's queue is held, or is taken by the dispatcher, or (a worker or
// the dispatcher killed) waits, unheld and marked, for the next push, the
// next dispatcher (it looks at every mark when it starts) or jobq gc, as
// a killed worker's queue always has. The dispatcher holds, per waiting
// queue, a goroutine and three files (the queue's, the job's and its
// waiter's locks); a look at the line skips the waiters this process
// holds (Store.mine), so a thousand waiting queues cost one ReadDir a
// look. A hook's worker gets its queue's name on its standard input:
// every process on the host can read a command line.
//
// Serving and gc: jobq-worker drain --all (a service) drains every queue
// that has entries, each in a goroutine holding its worker.lock as a hook's
// worker would, and is the dispatcher whenever no other process is (it
// tries every second): with a service running, hooks' workers hand their
// waiting queues to it; jobq gc settles queues no worker holds (Recover:
// it adopts their running jobs, and waits for them), retries failed
// clean-ups, prunes, and drains queues with entries.
//
// Wake-up (EnsureWorker; HoldQueue and Release): after enqueueing, the
// hook try-locks worker.lock. If it gets it, no worker is draining the
// queue: it lets go, and if it can take start.lock it starts a detached
// worker, which waits for start.lock (held by the hook until it has
// started the worker), then for worker.lock, and only then lets start.lock
// go. A hook that finds start.lock taken starts nothing: a worker is on
// its way and will see its entry. A worker that finds the queue empty
// releases worker.lock, looks again, and try-locks again if an entry
// arrived meanwhile. Either the hook's try-lock fails before the worker
// releases (and the worker's second look sees the entry) or it succeeds
// (and a worker is started, or on its way): no job waits for a push that
// never comes. A hook may also start the worker before it enqueues
// (StartWorker), holding start.lock until its entry is committed: the
// worker's start-up overlaps the enqueue, and it takes worker.lock only
// after the entry is there, so the same argument holds.
//
// # Assumptions
//
// One host: flock does not work across NFS. The wall clock orders a queue, but
// an entry always sorts after the queue's existing entries, so a clock that
// steps back does not reorder what is already queued.
package queue
