package auditlog

import "errors"

// Errors a Writer returns, wrapped with context. Errors from the system
// keep their errno: errors.Is(err, syscall.ENOSPC) holds for a full disk.
var (
	// ErrDropped is wrapped by every error of WriteLine that means the
	// line was not written (and was counted in Stats.Dropped): with
	// ErrBadLine, ErrSuspended, ErrClosed, or a failed write. A WriteLine
	// error without it (ErrRotate, ErrSync) reports a problem met while
	// the line was written all the same.
	ErrDropped = errors.New("auditlog: line dropped")
	// ErrBadLine: the line contains '\n' or '\r'.
	ErrBadLine = errors.New("auditlog: line contains a line break")
	// ErrSuspended: MaxAction Suspend is in force.
	ErrSuspended = errors.New("auditlog: logging suspended at maximum size")
	// ErrClosed: the Writer is closed.
	ErrClosed = errors.New("auditlog: writer closed")
	// ErrRotate: a rotation or a reopen failed. The log goes on in the
	// file in use, which keeps every line; if that file is no longer at
	// Path, a reopen is tried again before each line.
	ErrRotate = errors.New("auditlog: cannot rotate or reopen the log")
	// ErrSync: an fsync failed (FlushIncremental, the background fsync of
	// FlushIncrementalAsync, or the one at Flush, rotation or Close).
	// Lines since the last good fsync may not be on disk: after a failed
	// fsync Linux may drop the dirty pages, so a later fsync succeeding
	// proves nothing about them.
	ErrSync = errors.New("auditlog: flush to disk failed")
	// ErrQueued: the disk is full; the line is kept in memory and will be
	// written before any later line when space returns (Config.QueueBytes).
	// It is not dropped. The error also wraps the failed write's errno
	// when there was one.
	ErrQueued = errors.New("auditlog: disk full, line queued in memory until space returns")
	// ErrDiskFull: the disk is full and so is the queue (or there is
	// none); the line was dropped and counted in Stats.Dropped.DiskFull.
	ErrDiskFull = errors.New("auditlog: disk full and queue full")
	// ErrNoRotation: Rotate was called with NumLogs 1 and MaxAction other
	// than KeepLogs; rotating would delete the log.
	ErrNoRotation = errors.New("auditlog: rotation disabled (NumLogs 1)")
)

// droppedError marks err as ErrDropped without changing its text.
type droppedError struct{ err error }

func (e droppedError) Error() string        { return e.err.Error() }
func (e droppedError) Unwrap() error        { return e.err }
func (e droppedError) Is(target error) bool { return target == ErrDropped }

func dropped(err error) error { return droppedError{err} }
