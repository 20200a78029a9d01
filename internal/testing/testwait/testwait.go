// Package testwait makes tests wait on progress, never on the clock.
//
// Machines differ several times over in speed and CI may run loaded, so a
// test must not give work that grows with load a fixed total time, and must
// not sleep in place of a signal that something has happened. The waits
// here fail only when nothing moved for Idle: a mark the caller chooses (a
// count of events, a file's size, a set of counters) that stayed the same.
// A wait for one event that has no measure of progress in between (a
// process starts, a line appears, a blocked call returns) is allowed Idle
// in total, which is far more than such a step takes on any machine.
//
// Parked establishes "a call is blocked" from the goroutine's own state,
// for tests of what interrupts a blocked call.
//
// Everything here is for tests; a failure is reported with t.Fatalf and
// names what was awaited and the last mark seen.
package testwait

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// DefaultIdle is how long a wait may see no progress before it fails.
const DefaultIdle = 60 * time.Second

// IdleEnv, a Go duration ("2m"), overrides DefaultIdle.
const IdleEnv = "CONTID_TEST_IDLE"

// Idle is how long a wait may see no progress: DefaultIdle, or IdleEnv
// when that is set to a valid positive duration.
func Idle() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(IdleEnv)); err == nil && d > 0 {
		return d
	}
	return DefaultIdle
}

// pause returns the poll interval after n polls: quick at first, so that
// fast steps stay fast, then every 50 ms.
func pause(n int) time.Duration {
	return min(time.Millisecond<<min(n, 6), 50*time.Millisecond)
}

// Until polls cond until it reports done. mark is any comparable value
// that changes while the awaited work advances (a count, a size, a struct
// of several); Until fails the test once mark has stayed equal for Idle,
// naming what and the last mark.
func Until(t testing.TB, what string, cond func() (done bool, mark any)) {
	t.Helper()
	UntilIdle(t, what, Idle(), cond)
}

// UntilIdle is Until with an idle period of the caller's, for a wait whose
// work is known to show progress more often than Idle.
func UntilIdle(t testing.TB, what string, idle time.Duration, cond func() (done bool, mark any)) {
	t.Helper()
	start := time.Now()
	var last any
	moved := start
	for n := 0; ; n++ {
		done, mark := cond()
		if done {
			return
		}
		now := time.Now()
		if n == 0 || mark != last {
			last, moved = mark, now
		} else if now.Sub(moved) >= idle {
			t.Fatalf("testwait: waiting for %s: no progress for %v (last mark %v, %v in all)",
				what, idle, last, now.Sub(start).Round(time.Millisecond))
		}
		time.Sleep(pause(n))
	}
}

// For polls cond until it is true, failing the test after Idle. Use it for
// one step whose time does not grow with the work a test does; use Until
// where progress can be measured.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Until(t, what, func() (bool, any) { return cond(), nil })
}

// Receive returns the next value from ch, failing the test when none
// arrives within Idle.
func Receive[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	tm := time.NewTimer(Idle())
	defer tm.Stop()
	select {
	case v := <-ch:
		return v
	case <-tm.C:
		t.Fatalf("testwait: waiting for %s: nothing for %v", what, Idle())
		panic("unreachable")
	}
}

// ErrIdle is the cause of a Watch's context ending: no progress for Idle.
var ErrIdle = errors.New("testwait: no progress")

// Watch gives a loop of blocking reads an idle timeout: its context ends
// when Idle passes without a call to Moved. Call Stop when done.
type Watch struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	what   string
	idle   time.Duration
}

// NewWatch starts a Watch for what; its context is a child of parent.
func NewWatch(parent context.Context, what string) *Watch {
	ctx, cancel := context.WithCancelCause(parent)
	w := &Watch{ctx: ctx, cancel: cancel, what: what, idle: Idle()}
	w.timer = time.AfterFunc(w.idle, func() {
		cancel(fmt.Errorf("%w for %v: %s", ErrIdle, w.idle, w.what))
	})
	return w
}

// Context is done when Idle passed without Moved, or parent is done;
// context.Cause says which.
func (w *Watch) Context() context.Context { return w.ctx }

// Moved records progress: the idle period starts again.
func (w *Watch) Moved() { w.timer.Reset(w.idle) }

// Err is the cause of the context's end, or nil while it runs.
func (w *Watch) Err() error { return context.Cause(w.ctx) }

// Stop releases the Watch.
func (w *Watch) Stop() {
	w.timer.Stop()
	w.cancel(context.Canceled)
}

// parkedStates are goroutine states (as runtime.Stack prints them) of a
// goroutine that waits: in the network poller, in a system call, in a
// select or on a channel.
var parkedStates = [][]byte{[]byte("[IO wait"), []byte("[syscall"), []byte("[select"), []byte("[chan receive")}

// Parked waits until a goroutine whose stack holds frame (a function name
// as runtime.Stack prints it, e.g. "procconn.(*Conn).receive") waits, and
// fails the test after Idle. It establishes that a blocking call has
// started to block before the test interrupts it.
func Parked(t testing.TB, frame string) {
	t.Helper()
	var mu sync.Mutex
	buf := make([]byte, 1<<20)
	For(t, "a parked goroutine in "+frame, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for {
			n := runtime.Stack(buf, true)
			if n < len(buf) {
				return parked(buf[:n], []byte(frame))
			}
			buf = make([]byte, 2*len(buf))
		}
	})
}

// parked reports whether a goroutine in dump (runtime.Stack of all) has
// frame in its stack and waits.
func parked(dump, frame []byte) bool {
	for _, g := range bytes.Split(dump, []byte("\n\n")) {
		head, _, _ := bytes.Cut(g, []byte("\n"))
		if !bytes.Contains(g, frame) {
			continue
		}
		for _, s := range parkedStates {
			if bytes.Contains(head, s) {
				return true
			}
		}
	}
	return false
}
