package tracker

import (
	"errors"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/contid/contid/internal/source/taskevent"
)

// TryRead returns the next event if one is buffered, without blocking; ok
// is false when the ring buffer is empty. With Read paused, calling TryRead
// until ok is false applies every event the kernel produced before the
// call: the daemon's barrier before it answers a request.
func (t *Tracker) TryRead() (ev taskevent.Event, ok bool, err error) {
	t.readMu.Lock()
	defer t.readMu.Unlock()
	if t.closed.Load() {
		return taskevent.Event{}, false, errClosed
	}
	if t.rd.AvailableBytes() == 0 {
		// Nothing reserved since the last read: empty without a syscall
		// (the barrier ends with this answer).
		return taskevent.Event{}, false, nil
	}
	defer t.rd.SetDeadline(time.Time{})
	for try := 0; ; try++ {
		t.rd.SetDeadline(time.Now())
		err = t.rd.ReadInto(&t.rec)
		switch {
		case err == nil:
			// Events are flowing: a producer within the batch period of
			// the wakeup that announced this one will not wake the
			// reader, so Read must poll on its timer again, not wait
			// for a wakeup as after a quiet period.
			t.quiet, t.gotData = false, true
			ev, err = Decode(t.rec.RawSample, t.nsDev)
			return ev, err == nil, err
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, ringbuf.ErrFlushed):
			// Empty — or a flush left over from a Read whose context
			// was cancelled just as it returned an event, which the
			// reader reports once; only a second such answer means
			// empty. (Events that woke nobody, see Config.Batch, are
			// found: the reader reads the ring whenever its wait ends.)
			if try == 0 {
				continue
			}
			return taskevent.Event{}, false, nil
		default:
			return taskevent.Event{}, false, err
		}
	}
}
