// Package cli is what jobq's two programs share on their command lines:
// the exit statuses and the error that carries one to main, where it is
// printed once, as one line.
package cli

import (
	"errors"
	"fmt"
	"io"
)

// Exit statuses of jobq and jobq-worker.
const (
	OK     = 0 // done
	Failed = 1 // the command failed
	Usage  = 2 // a mistake in the command line, or a command not allowed here
)

// ExitError ends a command with exit status Code and the one-line message
// Msg (none if empty).
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string { return e.Msg }

// Usagef is a mistake in the command line.
func Usagef(format string, args ...any) error {
	return &ExitError{Code: Usage, Msg: fmt.Sprintf(format, args...)}
}

// Exit prints err, if any, as "prog: message" on stderr and returns the
// exit status it carries (Failed for an error without one).
func Exit(stderr io.Writer, prog string, err error) int {
	if err == nil {
		return OK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Msg != "" {
			fmt.Fprintln(stderr, prog+": "+ee.Msg)
		}
		return ee.Code
	}
	fmt.Fprintln(stderr, prog+": "+err.Error())
	return Failed
}
