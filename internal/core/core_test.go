package core

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/source/procfs"
	"github.com/contid/contid/internal/source/taskevent"
)

// fakeSource is a taskevent.Source fed by the test: Push queues events
// as a kernel buffer would; Read blocks for one; TryRead takes one
// without blocking. fail makes the next Read end the reader.
type fakeSource struct {
	mu      sync.Mutex
	pending []taskevent.Event
	errs    []error // returned by Read before the events, in order
	wake    chan struct{}
	closed  bool
	taken   int           // events handed out
	took    chan struct{} // one per event handed out, while there is room
	single  bool          // TryRead finds nothing: one event per hand-over
}

func newFake() *fakeSource {
	return &fakeSource{wake: make(chan struct{}, 1), took: make(chan struct{}, 1024)}
}

func (f *fakeSource) Push(evs ...taskevent.Event) {
	f.mu.Lock()
	f.pending = append(f.pending, evs...)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fakeSource) PushErr(err error) {
	f.mu.Lock()
	f.errs = append(f.errs, err)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fakeSource) pop() (taskevent.Event, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return taskevent.Event{}, false, fmt.Errorf("fake: %w", os.ErrClosed)
	}
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return taskevent.Event{}, false, err
	}
	if len(f.pending) == 0 {
		return taskevent.Event{}, false, nil
	}
	ev := f.pending[0]
	f.pending = f.pending[1:]
	f.taken++
	select {
	case f.took <- struct{}{}:
	default: // nobody counts
	}
	return ev, true, nil
}

func (f *fakeSource) Read(ctx context.Context) (taskevent.Event, error) {
	for {
		ev, ok, err := f.pop()
		if err != nil || ok {
			return ev, err
		}
		select {
		case <-ctx.Done():
			return taskevent.Event{}, ctx.Err()
		case <-f.wake:
		}
	}
}

func (f *fakeSource) TryRead() (taskevent.Event, bool, error) {
	f.mu.Lock()
	single := f.single
	f.mu.Unlock()
	if single {
		return taskevent.Event{}, false, nil
	}
	return f.pop()
}

func (f *fakeSource) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}

// waitSource is a fakeSource the core drains itself (a taskevent.Waiter).
type waitSource struct{ *fakeSource }

func (w waitSource) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-w.wake:
		return nil
	}
}

// lines is a LineWriter that keeps what it was given.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) WriteLine(b []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l = append(l.l, string(b))
	return nil
}

// observer reports each applied event on a channel.
type observer struct{ ev chan taskevent.Event }

func (o observer) Event(ev taskevent.Event) { o.ev <- ev }
func (o observer) AfterEvents()             {}

// fork is the fork of child from init (pid 1, seeded).
func fork(child int32) taskevent.Event {
	return taskevent.Event{Kind: taskevent.KindFork, Time: 1, TID: child, TGID: child, ParentTID: 1, ParentTGID: 1, StartBoottime: uint64(child) * 1e7}
}

// start runs a core on src, seeded with init, until the test ends or
// stop is called; it returns the core and stop, which returns once Run
// has.
func start(t *testing.T, src taskevent.Source, h Hooks) (*Core, func()) {
	t.Helper()
	c, cancel, done := startCtx(t, src, h)
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return c, stop
}

func startCtx(t *testing.T, src taskevent.Source, h Hooks) (*Core, context.CancelFunc, <-chan struct{}) {
	t.Helper()
	c := New(Config{Source: src, HostLog: &lines{}})
	c.Seed(Seed{Tasks: []procfs.Task{{PID: 1, TGID: 1, Start: 1, Comm: "init"}}})
	c.Attach(h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, cancel, done
}

func known(e *engine.Engine, tid int32) bool { _, ok := e.Task(tid); return ok }

// wantKnown fails t with why unless task tid is known to the engine when a
// request to the core runs.
func wantKnown(t *testing.T, c *Core, tid int32, why string) {
	t.Helper()
	if err := c.Do(context.Background(), func(e *engine.Engine) error {
		if !known(e, tid) {
			return errors.New(why)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestBarrier: every event the source buffered before a request is
// applied when the request runs, whether the reader has it in hand,
// has handed it over, or it still waits in the source; and the reader
// goes on reading after each barrier. Waiter sources are drained by the
// core itself.
func TestBarrier(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  func(*fakeSource) taskevent.Source
	}{
		{"reader", func(f *fakeSource) taskevent.Source { return f }},
		{"waiter", func(f *fakeSource) taskevent.Source { return waitSource{f} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			obs := observer{ev: make(chan taskevent.Event, 4096)}
			c, _ := start(t, tc.src(f), Hooks{Observer: obs})
			ctx := context.Background()
			for i := range int32(300) {
				// Bursts of growing size, so the barrier meets the reader
				// in every state.
				for j := range i%7 + 1 {
					f.Push(fork(1000 + i*10 + j))
				}
				if err := c.Do(ctx, func(e *engine.Engine) error {
					for j := range i%7 + 1 {
						if tid := 1000 + i*10 + j; !known(e, tid) {
							return fmt.Errorf("task %d pushed before the request is unknown to it", tid)
						}
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			// Without a request: the reader (or the waiter's wakeup)
			// still brings events to the engine.
			for len(obs.ev) > 0 {
				<-obs.ev
			}
			f.Push(fork(99999))
			for ev := range obs.ev {
				if ev.TID == 99999 {
					break
				}
			}
		})
	}
}

// TestAuditBatchAfterBarrier: an audit batch runs after the task events
// buffered before it.
func TestAuditBatchAfterBarrier(t *testing.T) {
	f := newFake()
	in := make(chan []records.Raw)
	var c *Core
	got := make(chan error, 1)
	c, _ = start(t, f, Hooks{AuditMode: "primary", AuditIn: in, AuditBatch: func(b []records.Raw) {
		if !known(c.Engine(), 4242) {
			got <- errors.New("the batch ran before the fork buffered ahead of it")
			return
		}
		got <- nil
	}})
	f.Push(fork(4242))
	in <- []records.Raw{{Type: 1300, Data: []byte("x")}}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	c.Counters(m)
	if m["audit_batches"] != 1 || m["syncs"] < 1 {
		t.Fatalf("counters %v", m)
	}
}

// TestStopWithBatchInHand: the core stops while the reader holds a
// batch it could not hand over (the hand-over queue is full because the
// core is busy): every event read is applied by the time Run returns,
// and those still in the source by the next barrier.
func TestStopWithBatchInHand(t *testing.T) {
	f := newFake()
	f.single = true
	c, cancel, done := startCtx(t, f, Hooks{})
	busy, release := make(chan struct{}), make(chan struct{})
	callDone := make(chan error, 1)
	go func() { callDone <- c.Call(context.Background(), func() { close(busy); <-release }) }()
	<-busy
	// One event per hand-over: wait until the reader has taken each
	// before pushing the next, until the queue (64) is full and the
	// reader holds one more.
	const n = 65
	for i := range int32(n) {
		f.Push(fork(2000 + i))
		<-f.took
	}
	if len(c.events) != cap(c.events) {
		t.Fatalf("the hand-over queue holds %d batches, want it full (%d)", len(c.events), cap(c.events))
	}
	f.Push(fork(3000)) // left in the source
	cancel()           // while the core is busy: it stops with the queue full
	close(release)
	if err := <-callDone; err != nil {
		t.Fatal(err)
	}
	<-done
	for i := range int32(n) {
		if !known(c.Engine(), 2000+i) {
			t.Fatalf("task %d, read before the stop, is lost", 2000+i)
		}
	}
	f.mu.Lock()
	f.single = false
	f.mu.Unlock()
	c.Sync() // after Run: drains the source directly
	if !known(c.Engine(), 3000) {
		t.Fatal("a barrier after the stop did not drain the source")
	}
}

// TestReaderGone: a reader that ended on an error does not block the
// barrier: requests still run, after the events the source holds.
func TestReaderGone(t *testing.T) {
	f := newFake()
	c, _ := start(t, f, Hooks{})
	f.PushErr(errors.New("device on fire"))
	<-c.readerGone
	f.Push(fork(5000))
	for range 3 {
		wantKnown(t, c, 5000, "the barrier did not drain the source")
	}
}

// TestMalformedCounted: malformed events are counted and skipped, by
// the reader and by the barrier.
func TestMalformedCounted(t *testing.T) {
	f := newFake()
	c, _ := start(t, f, Hooks{})
	bad := fmt.Errorf("fake: %w", taskevent.ErrMalformed)
	f.PushErr(bad)
	f.Push(fork(6000))
	wantKnown(t, c, 6000, "the event after a malformed one was lost")
	m := map[string]uint64{}
	c.Counters(m)
	if m["bad_events"] != 1 {
		t.Fatalf("bad_events %d, want 1", m["bad_events"])
	}
}

// TestDoAfterStop: a request after the stop fails with ErrStopped.
func TestDoAfterStop(t *testing.T) {
	c, stop := start(t, newFake(), Hooks{})
	stop()
	if err := c.Do(context.Background(), func(*engine.Engine) error { return nil }); !errors.Is(err, ErrStopped) {
		t.Fatalf("Do after stop: %v", err)
	}
}

// refuser is a Sender whose queue is always full.
type refuser struct{ n int }

func (r *refuser) Send(records.Record) bool { r.n++; return false }

// TestEmitFallsBack: an own record the sender cannot take goes to the
// host log, stamped from contid's own serial space, and is counted.
func TestEmitFallsBack(t *testing.T) {
	hl := &lines{}
	c := New(Config{Source: newFake(), HostLog: hl})
	snd := &refuser{}
	c.Attach(Hooks{AuditMode: "primary", Own: snd})
	c.Emit(records.Record{Type: records.ContidLoss, Stamp: records.StampAt(1e18, 0)})
	c.Loss("kernel", 3)
	if snd.n != 2 || len(hl.l) != 2 {
		t.Fatalf("sent %d, written %d", snd.n, len(hl.l))
	}
	want := fmt.Sprintf(":%d)", records.OwnSerialBase)
	if !strings.Contains(hl.l[0], want) {
		t.Fatalf("first own record %q lacks serial %s", hl.l[0], want)
	}
	m := map[string]uint64{}
	c.Counters(m)
	if m["own_queue_full"] != 2 || m["own_local"] != 2 || m["loss_records"] != 1 || m["records_written"] != 2 {
		t.Fatalf("counters %v", m)
	}
	// A listener's loss records are written directly, never sent.
	c.Attach(Hooks{AuditMode: "listener", Own: snd})
	c.Loss("enobufs", 1)
	if snd.n != 2 || len(hl.l) != 3 || !strings.Contains(hl.l[2], "source=listener") {
		t.Fatalf("listener loss: sent %d, lines %q", snd.n, hl.l)
	}
}

// TestDrainSkipsGoneExe: a drain looks up the executable of an exec only
// when the process does not end later in what it read: a short command's
// exec and exit, drained together, cost no lookup; a process that lives
// on, one that ended before it exec'd again, and a thread's exec (its
// old leader's exit may come after it) get theirs.
func TestDrainSkipsGoneExe(t *testing.T) {
	f := newFake()
	var asked []int32
	c := New(Config{Source: waitSource{f}, HostLog: &lines{}, Exe: func(pid int32, _ uint64) (string, error) {
		asked = append(asked, pid) // the core goroutine's
		return "/bin/x", nil
	}})
	c.Seed(Seed{Tasks: []procfs.Task{{PID: 1, TGID: 1, Start: 1, Comm: "init"}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	exec := func(pid int32) taskevent.Event {
		return taskevent.Event{Kind: taskevent.KindExec, Time: 2, TID: pid, TGID: pid, OldTID: pid, Comm: "x"}
	}
	// A thread of 900 exec'd; its old leader's exit came after it.
	threadExec := taskevent.Event{Kind: taskevent.KindExec, Time: 2, TID: 900, TGID: 900, OldTID: 901, Comm: "x"}
	exit := func(pid int32) taskevent.Event {
		return taskevent.Event{Kind: taskevent.KindExit, Time: 3, TID: pid, TGID: pid}
	}
	thread := taskevent.Event{Kind: taskevent.KindExit, Time: 3, TID: 703, TGID: 700}
	f.Push(fork(500), exec(500), exit(500), // a short command
		fork(600), exec(600), // lives on
		fork(700), exec(700), thread, // a thread of it ends, not the process
		fork(800), exit(800), exec(800), // its end comes before the exec (a reused pid's)
		fork(900), threadExec, exit(900))
	var got []int32
	if err := c.Do(ctx, func(*engine.Engine) error { got = slices.Clone(asked); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []int32{600, 700, 800, 900}; !slices.Equal(got, want) {
		t.Fatalf("executables looked up for %v, want %v", got, want)
	}
}

// afterObserver counts AfterEvents.
type afterObserver struct{ after *atomic.Int32 }

func (afterObserver) Event(taskevent.Event) {}
func (o afterObserver) AfterEvents()        { o.after.Add(1) }

// TestAfterEventsOnDrain: the observer hears AfterEvents after the events
// a drain applied, as after a reader's batch (the packet pairing then
// watches a container's new network namespace before the next audit
// batch, not at the next tick).
func TestAfterEventsOnDrain(t *testing.T) {
	f := newFake()
	var after atomic.Int32
	c, _ := start(t, waitSource{f}, Hooks{Observer: afterObserver{&after}})
	ctx := context.Background()
	before := after.Load()
	f.Push(fork(4321))
	var got int32
	if err := c.Do(ctx, func(e *engine.Engine) error {
		if !known(e, 4321) {
			return errors.New("the fork is not applied")
		}
		got = after.Load()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got <= before {
		t.Fatalf("AfterEvents calls: %d before the drain, %d after", before, got)
	}
}
