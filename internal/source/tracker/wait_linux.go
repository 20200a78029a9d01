package tracker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Wait blocks until the kernel side wakes the ring buffer's readers, ctx
// is done (ctx.Err() is returned) or the tracker is closed (an error
// wrapping os.ErrClosed). It reads nothing: the caller takes the events
// with TryRead, from the goroutine of its choice, without stopping Wait.
//
// This is the reader for a consumer that drains the ring anyway before
// each piece of work that needs the events (the daemon's barrier before an
// audit record or a request): nothing waits in Read, so the barrier is a
// few TryReads on the caller's goroutine, with no goroutine to stop and
// wake, and Wait returns only when events would otherwise pile up. The
// kernel wakes at most once per Config.Batch while events flow, and on
// every event while a quarter of the ring is full. A wakeup that came
// while nobody waited makes the next Wait return at once, so a Wait may
// return with nothing to read. Wait is for one goroutine at a time, and
// not at the same time as Read.
func (t *Tracker) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := t.watchFile()
	if err != nil {
		return err
	}
	// The file is non-blocking and in Go's poller, so the wait parks the
	// goroutine, not a thread; a deadline in the past interrupts it.
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Now()) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("tracker: wait: %w", err)
	}
	waited := false
	err = rc.Read(func(uintptr) bool {
		// The first call is before the wait, the second after it: the
		// poller reports each wakeup of the ring's wait queue (edge
		// triggered), not whether data is waiting.
		done := waited
		waited = true
		return done
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		f.SetReadDeadline(time.Time{})
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return nil // a stale deadline from an earlier ctx: a spurious return
	case t.closed.Load() || errors.Is(err, os.ErrClosed):
		// The poller's "use of closed file" is not os.ErrClosed.
		return fmt.Errorf("tracker: wait: %w", os.ErrClosed)
	default:
		return fmt.Errorf("tracker: wait: %w", err)
	}
}

// watchFile returns the ring buffer map's descriptor as a non-blocking
// file in Go's poller, made at the first Wait.
func (t *Tracker) watchFile() (*os.File, error) {
	t.watchOnce.Do(func() {
		fd, err := unix.FcntlInt(uintptr(t.objs.Events.FD()), unix.F_DUPFD_CLOEXEC, 0)
		if err == nil {
			err = unix.SetNonblock(fd, true)
			if err != nil {
				unix.Close(fd)
			}
		}
		if err != nil {
			t.watchErr = fmt.Errorf("tracker: wait: %w", err)
			return
		}
		t.watch = os.NewFile(uintptr(fd), "ringbuf")
	})
	return t.watch, t.watchErr
}

// watcher is Wait's part of Tracker.
type watcher struct {
	watchOnce sync.Once
	watch     *os.File
	watchErr  error
	closed    atomic.Bool
}

// WakeNext makes the next event of a task with a contid wake Wait at
// once, whatever Config.Batch; events of other tasks stay batched. For a
// consumer that has gone idle and would otherwise learn of a container's
// events (its end, a join) only at its next, long, timer. After that
// wakeup the batching goes on as before. A store into the programs'
// memory: no system call.
func (t *Tracker) WakeNext() error {
	if t.batch <= 0 {
		return nil // every event wakes
	}
	if err := t.objs.WakeContained.Set(uint32(1)); err != nil {
		return fmt.Errorf("tracker: wake next: %w", err)
	}
	return nil
}
