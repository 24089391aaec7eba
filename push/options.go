package push

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jobq/jobq/queue"
)

// Defaults of the options that have one.
const (
	DefaultTimeout = 600 * time.Second
	DefaultPIDs    = 1024
)

// ErrNoCommand means JOBQ_COMMAND is unset: the repository queues no jobs.
var ErrNoCommand = errors.New("JOBQ_COMMAND is not set")

// ParseOptions reads the options through lookup, which gets JOBQ_X and then
// GL_OPTION_JOBQ_X (gitolite's name for "option ENV.JOBQ_X"). repo's own
// queue (queue.DefaultQueue) is the default. Errors are one line naming the option and its value; the
// caller says what follows from them.
func ParseOptions(lookup func(string) (string, bool), repo string) (queue.Options, error) {
	get := func(name string) (string, bool) {
		if v, ok := lookup(name); ok {
			return v, true
		}
		return lookup("GL_OPTION_" + name)
	}
	o := queue.Options{
		RefFilter: DefaultRefFilter,
		Queue:     queue.DefaultQueue(repo),
		Timeout:   DefaultTimeout,
		Runner:    "podman",
		Pull:      "missing",
		PIDs:      DefaultPIDs,
		Keep:      queue.DefaultKeep,
	}
	bad := func(name, v, why string) error {
		return fmt.Errorf("%s=%q %s", name, v, why)
	}
	var ok bool
	o.Command, ok = get("JOBQ_COMMAND")
	if !ok || strings.TrimSpace(o.Command) == "" {
		return o, ErrNoCommand
	}
	if v, ok := get("JOBQ_RUNNER"); ok {
		switch v = strings.TrimSpace(v); v {
		case "podman", "exec":
			o.Runner = v
		default:
			return o, bad("JOBQ_RUNNER", v, "is not podman or exec")
		}
	}
	if o.Runner == "podman" {
		argv, err := ImageArgs(o.Command)
		if err != nil {
			return o, bad("JOBQ_COMMAND", o.Command, "is not IMAGE [ARG...]: "+err.Error())
		}
		o.Argv = argv
	}
	if v, ok := get("JOBQ_REF_FILTER"); ok {
		if _, err := ParseRefFilter(v); err != nil {
			return o, bad("JOBQ_REF_FILTER", v, err.Error())
		}
		if strings.TrimSpace(v) != "" {
			o.RefFilter = v
		}
	}
	if v, ok := get("JOBQ_QUEUE"); ok && strings.TrimSpace(v) != "" {
		if err := queue.ValidName(v); err != nil {
			return o, bad("JOBQ_QUEUE", v, "is not a valid queue name")
		}
		o.Queue = v
	}
	if v, ok := get("JOBQ_ASYNC"); ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "1", "true", "yes", "on":
			o.Async = true
		case "", "0", "false", "no", "off":
		default:
			return o, bad("JOBQ_ASYNC", v, "is not 1/true/yes or 0/false/no")
		}
	}
	if v, ok := get("JOBQ_TIMEOUT"); ok {
		d, err := parseDuration(v)
		if err != nil {
			return o, bad("JOBQ_TIMEOUT", v, "is not a duration")
		}
		o.Timeout = d
	}
	if v, ok := get("JOBQ_PULL"); ok {
		switch v = strings.TrimSpace(v); v {
		case "missing", "always", "never":
			o.Pull = v
		default:
			return o, bad("JOBQ_PULL", v, "is not missing, always or never")
		}
	}
	if v, ok := get("JOBQ_MEMORY"); ok {
		n, err := ParseBytes(v)
		if err != nil {
			return o, bad("JOBQ_MEMORY", v, "is not a size (like 512m or 2g)")
		}
		o.Memory = n
	}
	if v, ok := get("JOBQ_CPUS"); ok && strings.TrimSpace(v) != "" {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 || f > 4096 {
			return o, bad("JOBQ_CPUS", v, "is not a number of CPUs")
		}
		o.CPUs = f
	}
	if v, ok := get("JOBQ_PIDS"); ok && strings.TrimSpace(v) != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			return o, bad("JOBQ_PIDS", v, "is not a number of processes (0: unlimited)")
		}
		o.PIDs = n
	}
	if v, ok := get("JOBQ_NETWORK"); ok {
		v = strings.TrimSpace(v)
		if strings.ContainsFunc(v, unicode.IsSpace) {
			return o, bad("JOBQ_NETWORK", v, "is not a network mode")
		}
		o.Network = v
	}
	if v, ok := get("JOBQ_PASS_ENV"); ok {
		for _, name := range strings.Fields(v) {
			if !isEnvName(name) {
				return o, bad("JOBQ_PASS_ENV", v, "holds "+strconv.Quote(name)+", not a variable name")
			}
			o.PassEnv = append(o.PassEnv, name)
		}
	}
	if v, ok := get("JOBQ_CONNECTION"); ok {
		o.Connection = strings.TrimSpace(v)
	}
	// Checked when the job starts, not here: the worker reads the grants
	// then (internal/secret, worker/secrets.go), and a bad one fails that
	// job, never the push.
	if v, ok := get("JOBQ_SECRETS"); ok {
		o.Secrets = strings.TrimSpace(v)
	}
	if v, ok := get("JOBQ_KEEP"); ok && strings.TrimSpace(v) != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 {
			return o, bad("JOBQ_KEEP", v, "is not a number of jobs (at least 1)")
		}
		o.Keep = n
	}
	return o, nil
}

// ImageArgs splits a podman runner's command into the image and its arguments.
func ImageArgs(command string) ([]string, error) {
	w, err := SplitWords(command)
	if err != nil {
		return nil, err
	}
	if len(w) == 0 {
		return nil, errors.New("no image")
	}
	return w, nil
}

// parseDuration takes a Go duration ("90s", "1h30m") or a number of seconds.
func parseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	d, err := time.ParseDuration(v)
	if err != nil {
		n, err2 := strconv.ParseUint(v, 10, 32)
		if err2 != nil {
			return 0, err
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, errors.New("not positive")
	}
	return d, nil
}

// ParseBytes takes a size as Podman's --memory does: a number with an optional
// b, k, m or g suffix (powers of 1024).
func ParseBytes(v string) (int64, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" {
		return 0, nil
	}
	mult := int64(1)
	switch v[len(v)-1] {
	case 'b':
		v = v[:len(v)-1]
	case 'k':
		mult, v = 1<<10, v[:len(v)-1]
	case 'm':
		mult, v = 1<<20, v[:len(v)-1]
	case 'g':
		mult, v = 1<<30, v[:len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, errors.New("not a size")
	}
	return n * mult, nil
}

func isEnvName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// FormatBytes writes a size as ParseBytes reads it, in the largest unit
// that divides it: 1g, 512m, 100k, 7.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
