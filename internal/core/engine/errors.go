package engine

import (
	"golang.org/x/sys/unix"
)

// Error is a refused request: the errno spec §3 assigns and a sentence for
// humans. errors.Is(err, unix.EEXIST) holds for an *Error carrying EEXIST.
type Error struct {
	Errno  unix.Errno
	Reason string
}

func (e *Error) Error() string { return ErrnoName(e.Errno) + ": " + e.Reason }

// Unwrap exposes the errno so callers can match it with errors.Is.
func (e *Error) Unwrap() error { return e.Errno }

// ErrnoName returns the symbolic name of an errno ("EEXIST").
func ErrnoName(n unix.Errno) string {
	if s := unix.ErrnoName(n); s != "" {
		return s
	}
	return "E?"
}

func refuse(n unix.Errno, reason string) *Error { return &Error{Errno: n, Reason: reason} }
