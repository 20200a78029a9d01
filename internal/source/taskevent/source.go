package taskevent

import "context"

// Source yields task events: the eBPF tracker and the proc connector
// implement it, and the daemon's core drives either one through it.
//
//   - Read blocks until an event arrives, ctx is done (ctx.Err() is
//     returned) or the source is closed (an error wrapping os.ErrClosed).
//   - TryRead returns a buffered event without blocking; ok is false when
//     there is none. Called until ok is false while Read is not running,
//     it returns every event that happened before the call but for those
//     the source counts as lost.
//   - An event that does not decode gives an error wrapping ErrMalformed;
//     reading may go on after it.
//   - Close ends a blocked Read, and every later Read and TryRead, with an
//     error wrapping os.ErrClosed. It may be called from any goroutine.
//
// Read and TryRead are for one goroutine at a time. The conformance suite
// in package taskevent/sourcetest checks these promises on a live source.
type Source interface {
	Read(ctx context.Context) (Event, error)
	TryRead() (ev Event, ok bool, err error)
	Close() error
}

// Waiter is a Source whose consumer takes the events itself, with
// TryRead on its own goroutine, when Wait says some are buffered, instead
// of keeping a goroutine blocked in Read (the eBPF tracker's ring). Wait
// returns when events may be waiting (possibly none), ctx is done
// (ctx.Err()) or the source is closed (os.ErrClosed).
type Waiter interface {
	Wait(ctx context.Context) error
}
