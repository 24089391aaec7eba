// Package deliver sends the notifications package notify records: mail
// through the host's sendmail (sendmail -t -oi, as git's
// post-receive-email does), webhooks (a signed POST of the job's JSON),
// and host commands (the JSON on their standard input). A Deliverer
// lives in a worker: it sends a job's notifications in a goroutine once
// the result is recorded, retries with backoff, picks up what dead
// workers left (the index of package notify), and at the worker's exit
// waits a little for what is under way, leaving the rest recorded for
// the next worker or jobq gc. Nothing it does is on a job's path.
package deliver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jobq/jobq/internal/faults"
	"github.com/jobq/jobq/notify"
	"github.com/jobq/jobq/queue"
)

// Defaults of Config.
const (
	DefaultSendmail    = "/usr/sbin/sendmail"
	DefaultBackoff     = time.Second      // the pause after a first failed try; doubled after each
	MaxBackoff         = 10 * time.Minute // the longest pause between tries
	DefaultLinger      = 30 * time.Second
	DefaultHTTPTimeout = 10 * time.Second
	DefaultExecTimeout = 30 * time.Second
	// DefaultInFlight bounds the tries a Deliverer has under way at once.
	DefaultInFlight = 4
	// PickupEvery is how often a long-lived worker looks for what other
	// processes left (a worker killed before it delivered).
	PickupEvery = time.Minute
)

// Config is a Deliverer's settings; zero values take the defaults.
type Config struct {
	Store *queue.Store
	// Secret returns a secret's value from the host's store: the key of a
	// webhook's signature (JOBQ_NOTIFY_SECRET). nil: no secret is found.
	Secret func(name string) ([]byte, error)
	// Sendmail is the host's sendmail program (JOBQ_SENDMAIL).
	Sendmail string
	// Backoff is the pause after a job's first failed try to a
	// destination; each further failure doubles it, up to MaxBackoff.
	Backoff time.Duration
	// HTTPTimeout bounds a webhook's try, ExecTimeout a sendmail's or an
	// exec destination's (its process group is killed then).
	HTTPTimeout, ExecTimeout time.Duration
	// InFlight bounds the tries under way at once, of every kind (a
	// webhook's connection, a sendmail's or an exec destination's
	// process): a pusher who makes many jobs fail towards a receiver
	// that hangs gets at most InFlight connections or processes of the
	// hosting account, not one per job. Further tries wait their turn.
	InFlight int
	// Logf is the worker's log: failed tries, an exec destination's output.
	Logf func(format string, args ...any)
}

// Deliverer sends notifications in goroutines of its own. Its methods are
// safe for concurrent use.
type Deliverer struct {
	cfg    Config
	client *http.Client
	// stop ends the retries (Close); a try under way runs to its end,
	// bounded by its timeout.
	stop   context.Context
	cancel context.CancelFunc

	// slots holds a token for each try under way (Config.InFlight).
	slots chan struct{}

	mu     sync.Mutex
	active map[notify.Job]bool
	wg     sync.WaitGroup
	picker chan struct{} // closed to end Start's pick-ups
}

// New makes a Deliverer.
func New(cfg Config) *Deliverer {
	if cfg.Sendmail == "" {
		cfg.Sendmail = DefaultSendmail
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.HTTPTimeout <= 0 {
		cfg.HTTPTimeout = DefaultHTTPTimeout
	}
	if cfg.ExecTimeout <= 0 {
		cfg.ExecTimeout = DefaultExecTimeout
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = DefaultInFlight
	}
	if cfg.Secret == nil {
		cfg.Secret = func(name string) ([]byte, error) {
			return nil, fmt.Errorf("secret %s: no secret store: %w", name, fs.ErrNotExist)
		}
	}
	stop, cancel := context.WithCancel(context.Background())
	return &Deliverer{cfg: cfg, client: newClient(cfg.HTTPTimeout), stop: stop, cancel: cancel,
		slots: make(chan struct{}, cfg.InFlight), active: map[notify.Job]bool{}, picker: make(chan struct{})}
}

// Prepare records job j's notifications before its result is recorded
// (j carries the final state): the worker's first step. It reports
// whether there is anything to send.
func (d *Deliverer) Prepare(j *queue.Job) (bool, error) {
	return notify.Prepare(d.cfg.Store, j)
}

// Send delivers job j's notifications, once its result is recorded, in a
// goroutine: it returns at once.
func (d *Deliverer) Send(j *queue.Job) { d.start(notify.Job{Repo: j.Repo, ID: j.ID}) }

// Start picks up the notifications left pending in the data directory
// (by a worker killed before it delivered them), now and every
// PickupEvery until Close.
func (d *Deliverer) Start() {
	d.Pickup()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(PickupEvery)
		defer t.Stop()
		for {
			select {
			case <-d.picker:
				return
			case <-d.stop.Done():
				return
			case <-t.C:
				d.Pickup()
			}
		}
	}()
}

// Pickup starts delivering every job's notifications left pending.
func (d *Deliverer) Pickup() {
	js, err := notify.Entries(d.cfg.Store)
	if err != nil {
		d.logf("%v", err)
	}
	for _, k := range js {
		d.start(k)
	}
}

// Close waits up to linger for the deliveries under way, then ends their
// retries and waits for the tries in flight (each bounded by its
// timeout). What is left is recorded: the next worker or jobq gc sends it.
func (d *Deliverer) Close(linger time.Duration) {
	d.mu.Lock()
	select {
	case <-d.picker:
	default:
		close(d.picker)
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	t := time.NewTimer(max(linger, 0))
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		d.cancel()
		<-done
	}
	d.cancel()
}

// Active counts the jobs whose notifications this Deliverer is sending.
func (d *Deliverer) Active() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.active)
}

func (d *Deliverer) start(k notify.Job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.active[k] || d.stop.Err() != nil {
		return
	}
	d.active[k] = true
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer func() {
			d.mu.Lock()
			delete(d.active, k)
			d.mu.Unlock()
		}()
		d.deliver(k)
	}()
}

// deliver tries job k's destinations until each is delivered or given
// up, or until Close ends the retries.
func (d *Deliverer) deliver(k notify.Job) {
	for {
		next, more := d.round(k)
		if !more {
			return
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-d.stop.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// round tries, under the job's delivery lock, each destination whose try
// is due, recording each result at once. It returns when the next try
// is due, and whether one is.
func (d *Deliverer) round(k notify.Job) (next time.Time, more bool) {
	s := d.cfg.Store
	l, err := notify.Lock(s, k.Repo, k.ID)
	if err != nil {
		d.logf("notify %s %d: %v", k.Repo, k.ID, err)
		return time.Time{}, false
	}
	if l == nil {
		return time.Time{}, false // another process delivers them
	}
	defer l.Unlock()
	r, err := notify.Read(s, k.Repo, k.ID)
	if errors.Is(err, fs.ErrNotExist) {
		notify.Settled(s, k.Repo, k.ID) // nothing (more) to tell
		return time.Time{}, false
	}
	if err != nil {
		d.logf("%v", err)
		return time.Time{}, false
	}
	j, err := s.Job(k.Repo, k.ID)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		notify.Settled(s, k.Repo, k.ID)
		return time.Time{}, false
	case err != nil:
		d.logf("notify %s %d: %v", k.Repo, k.ID, err)
		return time.Time{}, false
	case !j.State.Final():
		// Its worker died before it recorded the result: whoever
		// records it prepares the notification again, and sends it.
		return time.Time{}, false
	case j.State != r.State:
		// Recorded as another result than the one prepared (a crash
		// between the two, then another ending): that one was never true.
		d.giveUp(r, "the job's result is not the one this notification was made for")
		notify.Settled(s, k.Repo, k.ID)
		return time.Time{}, false
	}
	for i := range r.Deliveries {
		del := &r.Deliveries[i]
		now := time.Now()
		switch {
		case del.Status != notify.Waiting:
			continue
		case now.Sub(r.Created) >= notify.MaxAge:
			del.Status, del.Done = notify.Failed, now.UTC()
			del.LastError = oneLine(fmt.Sprintf("given up after %s: %s", notify.MaxAge, del.LastError))
		case del.Next.After(now):
			continue
		case d.stop.Err() != nil:
			continue // Close ended the retries
		default:
			// The wait for a turn is in this job's goroutine, never on
			// the job's path (Send returns at once); Close ends it.
			select {
			case d.slots <- struct{}{}:
			case <-d.stop.Done():
				continue
			}
			err := d.try(j, r, del.Dest)
			<-d.slots
			if err == nil {
				faults.Point("notify-delivered") // sent, not yet recorded: it is sent again
			}
			del.Attempts++
			if err == nil {
				del.Status, del.Done, del.LastError, del.Next = notify.Delivered, time.Now().UTC(), "", time.Time{}
			} else {
				del.LastError = oneLine(err.Error())
				del.Next = time.Now().Add(d.backoff(del.Attempts)).UTC()
				d.logf("notify %s %d: %s try %d: %s", k.Repo, k.ID, notify.Kind(del.Dest), del.Attempts, del.LastError)
			}
		}
		if err := notify.Write(s, r); err != nil {
			d.logf("%v", err)
		}
	}
	for _, del := range r.Deliveries {
		if del.Status == notify.Waiting && (!more || del.Next.Before(next)) {
			next, more = del.Next, true
		}
	}
	if !more {
		if err := notify.Settled(s, k.Repo, k.ID); err != nil {
			d.logf("notify %s %d: %v", k.Repo, k.ID, err)
		}
	}
	return next, more
}

func (d *Deliverer) giveUp(r *notify.Record, why string) {
	for i := range r.Deliveries {
		if del := &r.Deliveries[i]; del.Status == notify.Waiting {
			del.Status, del.Done, del.LastError = notify.Failed, time.Now().UTC(), why
		}
	}
	if err := notify.Write(d.cfg.Store, r); err != nil {
		d.logf("%v", err)
	}
}

// backoff is the pause after the n-th failed try.
func (d *Deliverer) backoff(n int) time.Duration {
	b := d.cfg.Backoff
	for i := 1; i < n && b < MaxBackoff; i++ {
		b *= 2
	}
	return min(b, MaxBackoff)
}

// try sends job j's notification r to dest once.
func (d *Deliverer) try(j *queue.Job, r *notify.Record, dest string) error {
	switch notify.Kind(dest) {
	case "mail":
		return d.mail(j, r, dest)
	case "webhook":
		return d.webhook(j, r, dest)
	case "exec":
		return d.exec(j, r, dest)
	}
	return fmt.Errorf("%q is not a destination jobq knows", notify.Kind(dest))
}

func (d *Deliverer) logf(format string, args ...any) {
	if d.cfg.Logf != nil {
		d.cfg.Logf(format, args...)
	}
}

// oneLine is an error as a record and the worker's log keep it: one line,
// bounded.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
