// Package secret keeps the host's secrets and decides who sees them: the
// store of named values in the data directory (Store), the per-repository
// grants that give them to the jobs of some refs (Grant, JOBQ_SECRETS),
// and the masker that keeps their values out of a job's output (Masker).
//
// # The store
//
//	$JOBQ_HOME/secrets/        0700, the hosting account's only
//	$JOBQ_HOME/secrets/NAME    0600, one secret's value, replaced whole
//	                           (internal/atomicfile); its mtime is when it was set
//
// A value is kept as given, bytes and newlines alike (an ssh key needs its
// last newline). Values are 6 bytes to 64 KiB: a shorter one could not be
// masked without mangling a log (every "secret" or "123456" in it would
// go), a longer one is no credential.
//
// # Grants
//
// JOBQ_SECRETS is a space-separated list of NAME[:VAR][@REFPATTERN]: the
// secret NAME is given to the jobs of the refs the pattern selects (as a
// JOBQ_REF_FILTER of that one pattern selects them; no pattern: every ref),
// also as the environment variable VAR. Only gitolite's options set it: a
// pusher cannot grant anything.
//
// # Masking
//
// A Masker replaces, in a stream, every occurrence of a secret's value by
// "***" before it reaches its writer, wherever the stream's writes split
// it. A value of several lines is also masked line by line, each line of
// MinLen bytes or more on its own (a job that prints a key file's lines
// one at a time, or with \r\n, masks them all); shorter lines ("-----",
// "}") are masked only as part of the whole value, as masking them alone
// would mangle the log. A value's last newline is not masked, so that
// the job's lines stay lines. The longest value that matches at a place
// wins, and the leftmost place first. A value transformed by the job (base64,
// quoted, reversed) is not masked: masking is a safety net for mistakes,
// not a barrier against a job that means to print its secrets.
package secret
