package tracker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/contid/contid/internal/source/taskevent"
)

// Read returns the next event, blocking until one arrives, ctx is done
// (ctx.Err() is returned) or the tracker is closed (an error wrapping
// os.ErrClosed). A sample that does not decode gives an error wrapping
// taskevent.ErrMalformed; reading may go on after it. Events of one task arrive in
// the order they happened; events of different tasks on different CPUs may
// be reordered by a few microseconds (compare Time). Loss is never silent:
// see Stats.
func (t *Tracker) Read(ctx context.Context) (taskevent.Event, error) {
	t.readMu.Lock()
	defer t.readMu.Unlock()
	raw, err := t.readRaw(ctx)
	if err != nil {
		return taskevent.Event{}, err
	}
	return Decode(raw, t.nsDev)
}

// readRaw returns the next sample; it is valid until the next call.
// readMu must be held.
func (t *Tracker) readRaw(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Flush wakes the blocked reader; a stale flush from an earlier call
	// shows up as ErrFlushed with ctx not done and is ignored.
	stop := context.AfterFunc(ctx, func() { _ = t.rd.Flush() })
	defer stop()
	for {
		if t.closed.Load() {
			return nil, errClosed
		}
		// With batching, events that did not wake us are collected on a
		// timer while events flow. After a whole quiet period the next
		// event wakes us itself (its producer sees the last wakeup is old),
		// so the timer can stop.
		if t.batch > 0 {
			if t.quiet {
				t.rd.SetDeadline(time.Time{})
			} else {
				t.rd.SetDeadline(time.Now().Add(t.batch))
			}
		}
		err := t.rd.ReadInto(&t.rec)
		switch {
		case err == nil:
			t.quiet, t.gotData = false, true
			return t.rec.RawSample, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The reader reports the deadline after the records it
			// found when it expired; quiet only if there were none.
			t.quiet, t.gotData = !t.gotData, false
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
		case errors.Is(err, ringbuf.ErrFlushed):
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
		case errors.Is(err, ringbuf.ErrClosed), errors.Is(err, os.ErrClosed):
			return nil, errClosed
		default:
			return nil, fmt.Errorf("tracker: read: %w", err)
		}
	}
}

var errClosed = fmt.Errorf("tracker: read: %w", os.ErrClosed)

// Stats reads the loss counters.
func (t *Tracker) Stats() (Stats, error) {
	lost, err := t.counter(cntRingbufFull)
	if err != nil {
		return Stats{}, err
	}
	inh, err := t.counter(cntInheritFail)
	if err != nil {
		return Stats{}, err
	}
	return Stats{Lost: lost, InheritFailures: inh}, nil
}

// Lost returns the number of events dropped because the ring buffer was
// full (Stats.Lost).
func (t *Tracker) Lost() (uint64, error) { return t.counter(cntRingbufFull) }

func (t *Tracker) counter(idx uint32) (uint64, error) {
	var perCPU []uint64
	if err := t.objs.ContidStats.Lookup(idx, &perCPU); err != nil {
		return 0, fmt.Errorf("tracker: read counter %d: %w", idx, err)
	}
	var sum uint64
	for _, v := range perCPU {
		sum += v
	}
	return sum, nil
}

// NSDev is the device number of the nsfs entries (stat -L -c %d
// /proc/self/ns/net), which Read writes into every ns.ID.
func (t *Tracker) NSDev() uint32 { return t.nsDev }

// ScanNS runs the namespace scan once: every task whose namespaces differ
// from what the tracker last reported for it gets a KindNS event (Op
// NSScan). Open starts a loop calling it every Config.NSScan.
func (t *Tracker) ScanNS() error {
	t.scanMu.Lock()
	defer t.scanMu.Unlock()
	rc, err := t.scan.Open()
	if err != nil {
		return fmt.Errorf("tracker: namespace scan: %w", err)
	}
	defer rc.Close()
	// The program writes nothing; reading runs it over every task.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("tracker: namespace scan: %w", err)
	}
	return nil
}

func (t *Tracker) scanLoop(every time.Duration) {
	defer close(t.scanDone)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-t.stopScan:
			return
		case <-tick.C:
			if err := t.ScanNS(); err != nil {
				t.log.Warn("namespace scan failed", "err", err)
			}
		}
	}
}
