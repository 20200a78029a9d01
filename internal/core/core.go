// Package core runs contid's core goroutine: the one goroutine that owns
// the engine. Task events from a taskevent.Source, batches of audit
// records, the registration API's requests and a tick all arrive here,
// and the core applies them in an order that keeps the engine's view
// ahead of what it is asked about.
//
// The tick is the daemon's only timer: the source's scan, the drain of
// the events batched since the last one, the counters and the hooks'
// upkeep (event time, loss records, log flushes) all ride on it. It comes
// once a second while anything happens, and while nothing does (no task
// event, audit batch or request, nothing held for a later tick) it backs
// off, doubling up to IdleTick; the first thing that happens brings it
// back to within a second. While it has backed off, a Waiter source that
// batches its wakeups is asked to wake the core at its next event, so an
// event on an idle host is seen at once, not at the longer tick.
//
// The barrier (Sync) is the core's promise: before an audit batch or a
// request runs, every task event the source buffered before it is
// applied, so a record's process and a request's caller and target are
// known. With a Waiter source (the tracker's ring) the core drains the
// buffer itself; otherwise a reader goroutine blocks in Read and hands
// events over in batches, and the barrier pauses it, takes what it handed
// over, empties the source with TryRead, and lets it go on. At stop
// nothing read is lost: the batches handed over are applied, then the one
// the reader held, and later barriers (the audit path's last batches)
// drain the source directly. A reader that ended early (an error) does
// not block a barrier: it is drained directly too.
//
// The core writes contid's own records (Emit): into the kernel's audit
// stream through the audit path's Sender when there is one, else, or
// when its queue is full, to the host log, stamped from contid's own
// serial space. Losses become CONTID_LOSS records (Loss).
//
// Loss is counted, never silent: malformed events, events the engine
// could not place, records the host log refused are in Counters.
//
// Concurrency: Do, Call, Emit, Local, Loss (through Emit), Counters and
// QueueLen are safe from any goroutine; the rest belongs to the goroutine
// that calls Run, or to start-up before Run.
package core

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/sink/auditlog"
	"github.com/contid/contid/internal/source/procfs"
	"github.com/contid/contid/internal/source/taskevent"
)

// Config configures New. Source and HostLog are required.
type Config struct {
	// Source yields the task events. A taskevent.Waiter is drained on
	// the core goroutine when it wakes; another source gets a reader
	// goroutine.
	Source taskevent.Source
	// Kernel keeps registrations where the kernel holds them; nil: none
	// (the proc connector).
	Kernel      engine.Kernel
	MaxPerOwner int
	// HostLog takes the own records that do not go into the kernel's
	// stream; auditlog's errors (ErrQueued, ErrDiskFull) are understood.
	HostLog LineWriter
	// Exe resolves a process's executable for exec events, given the
	// process's start (ticks since boot, 0 when not known): it must fail
	// rather than answer for another process under a reused pid
	// (procfs.FS.ExeOf); nil: none.
	Exe func(pid int32, start uint64) (string, error)
	// Ticks drives the tick; nil: the core's own timer, every Tick while
	// anything happens, backing off to IdleTick while nothing does (see
	// the package doc).
	Ticks <-chan time.Time
	// Tick and IdleTick: 0 means DefaultTick and DefaultIdleTick.
	Tick, IdleTick time.Duration
	// Scan, when set, runs at every tick before the buffered task events
	// are applied: the source's periodic scan (the tracker's namespace
	// scan), whose events the same tick applies. On the core goroutine,
	// so that the periodic work wakes one goroutine, not one per job.
	Scan func() error
	Log  *slog.Logger
	// Record, when set, is given every input the engine applies, in
	// order, with the kernel's answers meanwhile: a trace that replays
	// the run (contid daemon --record).
	Record Recorder
}

// Recorder takes what the core consumes, in the order it consumes it, on
// the core goroutine (or before Run): enough to replay a run's host log.
type Recorder interface {
	// Record takes an input the engine applied. kernel holds the results
	// of the calls the engine made to Config.Kernel meanwhile, in order;
	// sent, for each own record it wrote meanwhile, whether the record
	// went into the kernel's stream (it comes back in a later batch)
	// rather than to the host log.
	Record(in engine.Input, kernel []error, sent []bool)
	// Audit takes how the audit path was opened: its mode, the daemon's
	// pid, the reassembly timeout and the filtering rules' text.
	Audit(mode string, self int32, timeout time.Duration, filter string)
	// Batch takes a batch of records as the audit path is given it.
	Batch(b []records.Raw)
	// Tick takes the audit path's tick: idle when no batch waited.
	Tick(now time.Time, idle bool)
	// Loss takes a CONTID_LOSS record the core wrote: at is its stamp.
	Loss(at int64, kind string, n uint64, extra []records.Field, sent bool)
	// Stop takes the audit path's stop (the pipeline delivers what it
	// holds); Unsent, after it, how many own records still queued for
	// the kernel were written to the host log instead.
	Stop()
	Unsent(n int)
}

// LineWriter is a log that takes whole lines (auditlog.Writer).
type LineWriter interface {
	WriteLine(line []byte) error
}

// Sender puts an own record into the kernel's audit stream; false when
// it cannot take it now (its queue is full).
type Sender interface {
	Send(r records.Record) bool
}

// Observer learns of the task events the core applies, on the core
// goroutine: Event for each, AfterEvents after each batch of them.
type Observer interface {
	Event(ev taskevent.Event)
	AfterEvents()
}

// Hooks attach the audit path and the periodic work; set with Attach
// before Run. Every function runs on the core goroutine.
type Hooks struct {
	// AuditMode is the audit path's mode (primary, listener, plugin);
	// "" or "off" when there is none. Loss records name it, and a
	// listener's are written directly: sent into the kernel's stream
	// they would come back by the path whose loss they report.
	AuditMode string
	// AuditIn delivers batches of records as received; AuditBatch runs
	// one through the pipeline, after the barrier.
	AuditIn    <-chan []records.Raw
	AuditBatch func(b []records.Raw)
	// Own sends own records into the kernel's stream; nil: written to
	// the host log directly.
	Own      Sender
	Observer Observer
	// Tick runs once a tick, after the buffered task events are applied.
	// It returns true when it left work that the next tick must do soon
	// (records held for reassembly, lines queued on a full disk): the
	// tick then does not back off.
	Tick func(now time.Time) (held bool)
}

// waker is a Waiter whose batching of wakeups can be cut short: after
// WakeNext, the next event that may make a record (one of a contained
// task) wakes Wait at once (the tracker's ring).
type waker interface {
	WakeNext() error
}

// Core is the core goroutine's state. See the package doc.
type Core struct {
	log    *slog.Logger
	src    taskevent.Source
	waiter taskevent.Waiter // src, when it is one
	hl     LineWriter
	exe    func(pid int32, start uint64) (string, error)
	ticks  <-chan time.Time
	pace   pace
	scan   func() error
	eng    *engine.Engine
	hooks  Hooks
	rec    Recorder
	kerrs  []error // the kernel's answers during the input being applied (rec)
	sent   []bool  // where the own records of the input being applied went (rec)
	unsent int     // own records written locally at stop (Unsent)

	events chan []taskevent.Event // batches: one hand-over for many events
	ahead  []taskevent.Event      // drain's read-ahead
	exits  map[int32]int          // … and where in it each process ends
	ringUp chan struct{}          // the waiter woke: drain
	reqs   chan request
	calls  chan call
	// stopped is closed when the loop has ended: Do then fails.
	stopped chan struct{}

	// The reader goroutine's pause protocol (see Sync).
	pause      chan struct{}
	paused     chan struct{}
	resume     chan struct{}
	readerGone chan struct{} // closed when the reader returns
	cancelMu   sync.Mutex
	cancel     context.CancelFunc
	held       []taskevent.Event // the batch the reader held at stop

	wrote   atomic.Uint64 // own records emitted: what task events did (pace)
	serial  atomic.Uint64
	offset  int64  // unix ns minus CLOCK_MONOTONIC ns
	scanEnd uint64 // CLOCK_MONOTONIC when the start-up scan ended
	tagged  uint64 // CLOCK_MONOTONIC when the latest Tag reached the kernel
	// readerDone: Run has returned; Sync drains without pausing.
	readerDone bool

	counters struct {
		recordsWritten, recordErrors, badEvents, dupSeeds, syncs atomic.Uint64
		batches, ownLocal, ownQueueFull, lossRecords             atomic.Uint64
	}
	engineStats atomic.Pointer[engine.Stats]
	tasks       atomic.Int64
}

// New makes the core and its engine; nothing runs until Run.
func New(cfg Config) *Core {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Core{
		log: log, src: cfg.Source, hl: cfg.HostLog, exe: cfg.Exe, ticks: cfg.Ticks, rec: cfg.Record, scan: cfg.Scan,
		pace:   newPace(cmp.Or(cfg.Tick, DefaultTick), cmp.Or(cfg.IdleTick, DefaultIdleTick)),
		events: make(chan []taskevent.Event, 64), ringUp: make(chan struct{}, 1), exits: map[int32]int{},
		reqs: make(chan request), calls: make(chan call), stopped: make(chan struct{}),
		pause: make(chan struct{}, 1), paused: make(chan struct{}), resume: make(chan struct{}, 1),
		readerGone: make(chan struct{}),
	}
	if c.exe == nil {
		c.exe = func(int32, uint64) (string, error) { return "", nil }
	}
	c.waiter, _ = cfg.Source.(taskevent.Waiter)
	var k engine.Kernel
	if cfg.Kernel != nil {
		k = kernel{c, cfg.Kernel}
	}
	ec := engine.Config{Sink: c, Kernel: k, MaxPerOwner: cfg.MaxPerOwner}
	if c.rec != nil {
		ec.Requests = c.record
	}
	c.eng = engine.New(ec)
	c.updateOffset()
	return c
}

// Attach sets the hooks; call it before Run.
func (c *Core) Attach(h Hooks) { c.hooks = h }

// Engine is the core's engine: for start-up before Run, and for what
// runs on the core goroutine (the pipeline's attribution).
func (c *Core) Engine() *engine.Engine { return c.eng }

// Seed is the state found at start-up.
type Seed struct {
	Containers []engine.SeedContainer // parents first
	Tasks      []procfs.Task
	// ScanEnd is CLOCK_MONOTONIC when the scan of Tasks ended: a fork
	// before it may already be seeded.
	ScanEnd uint64
	// Contid is the contid the kernel holds for a task; nil: none.
	Contid func(tid int32) (contid.ID, bool)
}

// Seed restores containers and running tasks into the engine; before Run.
func (c *Core) Seed(s Seed) {
	now := time.Now().UnixNano()
	for _, sc := range s.Containers {
		sc.Time = now
		err := c.eng.SeedContainer(sc)
		c.record(sc)
		if err != nil {
			c.log.Warn("seed container", "err", err)
		}
	}
	c.scanEnd = s.ScanEnd
	boot := now - int64(Boottime())
	for _, t := range s.Tasks {
		st := seedOf(t, now, boot)
		if s.Contid != nil {
			if id, ok := s.Contid(st.PID); ok {
				st.HasContid, st.Contid = true, id
			}
		}
		err := c.eng.SeedTask(st)
		c.record(st)
		if err != nil {
			c.log.Debug("seed task", "err", err)
		}
	}
	c.tasks.Store(int64(c.eng.TaskCount()))
}

// Tasks is how many tasks the engine knows, as last published.
func (c *Core) Tasks() int { return int(c.tasks.Load()) }

// Run runs the core until ctx is done, then stops the reader and applies
// every event it read. After Run, Sync and AuditBatch still work (on the
// caller's goroutine): the audit path's last batches at stop.
func (c *Core) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if c.waiter != nil {
		close(c.readerGone) // nobody reads: the core drains
		wg.Go(func() { c.watch(ctx) })
	} else {
		wg.Go(func() { defer close(c.readerGone); c.read(ctx) })
	}
	c.loop(ctx)
	close(c.stopped)
	wg.Wait()
	c.readerDone = true
	for done := false; !done; {
		select {
		case evs := <-c.events:
			c.applyAll(evs)
		default:
			done = true
		}
	}
	if len(c.held) > 0 {
		c.applyAll(c.held)
		c.held = nil
	}
}

func (c *Core) loop(ctx context.Context) {
	ticks := c.ticks
	var timer *time.Timer // the core's own tick, paced
	if ticks == nil {
		timer = time.NewTimer(c.pace.cur)
		defer timer.Stop()
		ticks = timer.C
	}
	// happened notes activity: a backed-off tick comes back within the
	// base period.
	happened := func() {
		if c.pace.happened() && timer != nil {
			timer.Reset(c.pace.cur)
		}
	}
	for {
		wrote := c.wrote.Load()
		select {
		case <-ctx.Done():
			return
		case evs := <-c.events:
			c.applyAll(evs)
		case <-c.ringUp:
			c.drain()
		case r := <-c.reqs:
			c.Sync()
			r.done <- r.f(c.eng)
			c.publish()
			happened()
		case f := <-c.calls:
			f.f()
			close(f.done)
			happened()
		case b := <-c.hooks.AuditIn:
			c.AuditBatch(b)
			happened()
		case now := <-ticks:
			c.tick(now, timer)
			continue
		}
		if c.wrote.Load() != wrote {
			happened() // task events that made records: a container's end, its namespaces
		}
	}
}

// tick is the periodic work: the source's scan, the events since the last
// drain, the counters, the hooks' upkeep; then the next tick is set.
func (c *Core) tick(now time.Time, timer *time.Timer) {
	c.updateOffset()
	if c.scan != nil {
		if err := c.scan(); err != nil {
			c.log.Warn("task events: scan", "err", err)
		}
	}
	wrote := c.wrote.Load()
	if c.waiter != nil {
		c.drain() // the events since the last drain
	}
	if c.wrote.Load() != wrote {
		c.pace.happened()
	}
	c.publish()
	held := false
	if c.hooks.Tick != nil {
		held = c.hooks.Tick(now)
	}
	if timer == nil {
		return // the ticks are given
	}
	timer.Reset(c.pace.tick(held))
	if w, ok := c.waiter.(waker); ok && c.pace.idle() {
		// Idle: the next event that may make a record wakes the core
		// rather than waiting for the longer tick.
		if err := w.WakeNext(); err != nil {
			c.log.Debug("task events: wake on the next event", "err", err)
		}
	}
}

// AuditBatch runs one batch of records through the audit path, after
// the task events that came before it. Core goroutine only.
func (c *Core) AuditBatch(b []records.Raw) {
	c.counters.batches.Add(1)
	c.Sync()
	if c.rec != nil {
		c.rec.Batch(b)
	}
	c.hooks.AuditBatch(b)
}

// watch tells the loop when the waiter woke, until ctx is done.
func (c *Core) watch(ctx context.Context) {
	for {
		if err := c.waiter.Wait(ctx); err != nil {
			if ctx.Err() == nil {
				c.log.Error("task events: wait", "err", err)
			}
			return
		}
		select {
		case c.ringUp <- struct{}{}:
		default: // the loop has not taken the last one yet: it drains all
		}
	}
}

// read moves the source's events to the loop until ctx is done, pausing
// when the barrier asks (see Sync).
func (c *Core) read(ctx context.Context) {
	for ctx.Err() == nil {
		rctx, cancel := context.WithCancel(ctx)
		c.cancelMu.Lock()
		c.cancel = cancel
		c.cancelMu.Unlock()
		select {
		case <-c.pause:
			cancel()
			c.paused <- struct{}{}
			select {
			case <-c.resume:
			case <-ctx.Done():
			}
			continue
		default:
		}
		ev, err := c.src.Read(rctx)
		cancel()
		switch {
		case err == nil:
			// Take what else is waiting: a hand-over per event costs the
			// core more than the event.
			batch := append(make([]taskevent.Event, 0, 16), ev)
			for len(batch) < 256 {
				ev, ok := c.tryRead()
				if !ok {
					break
				}
				batch = append(batch, ev)
			}
			select {
			case c.events <- batch:
			case <-ctx.Done():
				c.held = batch // Run applies it after those handed over
				return
			}
		case errors.Is(err, taskevent.ErrMalformed):
			c.counters.badEvents.Add(1)
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			// paused or stopping: the loop top decides
		default:
			c.log.Error("task events: read", "err", err)
			return
		}
	}
}

// Sync applies every task event buffered before it was called: the
// barrier. With a Waiter, at stop, or when the reader has ended, it
// empties the source itself. Otherwise it stops the reader (applying
// what the reader hands over meanwhile), empties the source, then lets
// the reader go on. Core goroutine only.
func (c *Core) Sync() {
	c.counters.syncs.Add(1)
	select {
	case <-c.readerGone:
		c.drain() // nobody to pause
		return
	default:
	}
	if c.readerDone {
		c.drain()
		return
	}
	c.pause <- struct{}{}
	c.cancelMu.Lock()
	if c.cancel != nil {
		c.cancel()
	}
	c.cancelMu.Unlock()
	gone := false
	for waiting := true; waiting; {
		select {
		case evs := <-c.events:
			c.applyAll(evs)
		case <-c.paused:
			waiting = false
		case <-c.readerGone:
			waiting, gone = false, true
		}
	}
	c.drain()
	if !gone {
		c.resume <- struct{}{} // the reader is paused and takes it
	}
}

// drain applies what the reader handed over, then what the source holds,
// read ahead a chunk at a time: an exec whose process exits later in the
// chunk is applied without looking up its executable, which is gone by
// now (most execs on a host are short commands, and the lookup was most
// of what such an exec cost the core).
func (c *Core) drain() {
	for {
		select {
		case evs := <-c.events:
			c.applyAll(evs)
			continue
		default:
		}
		c.ahead = c.ahead[:0]
		for len(c.ahead) < aheadMax {
			ev, ok := c.tryRead()
			if !ok {
				break
			}
			c.ahead = append(c.ahead, ev)
		}
		if len(c.ahead) == 0 {
			return
		}
		clear(c.exits)
		for i, ev := range c.ahead {
			if ev.Kind == taskevent.KindExit && ev.TID == ev.TGID {
				c.exits[ev.TGID] = i // the process's end
			}
		}
		for i, ev := range c.ahead {
			// Not for a non-leader thread's exec: its old leader's exit
			// (tid = tgid) may come from another CPU just after it.
			if ev.Kind == taskevent.KindExec && ev.OldTID == ev.TID {
				if end, ok := c.exits[ev.TGID]; ok && end > i {
					c.applyWith(ev, noExe)
					continue
				}
			}
			c.apply(ev)
		}
		if c.hooks.Observer != nil {
			c.hooks.Observer.AfterEvents() // as after a reader's batch
		}
	}
}

// aheadMax bounds drain's read-ahead.
const aheadMax = 1024

func noExe(int32, uint64) (string, error) { return "", nil }

// tryRead returns the next buffered event, if any, counting and skipping
// malformed ones.
func (c *Core) tryRead() (taskevent.Event, bool) {
	for {
		ev, ok, err := c.src.TryRead()
		if errors.Is(err, taskevent.ErrMalformed) {
			c.counters.badEvents.Add(1)
			continue
		}
		return ev, err == nil && ok
	}
}

// apply feeds one task event to the engine.
func (c *Core) apply(ev taskevent.Event) { c.applyWith(ev, c.exe) }

// applyWith is apply with exe to look up an exec's executable.
func (c *Core) applyWith(ev taskevent.Event, exe func(pid int32, start uint64) (string, error)) {
	if ev.Kind == taskevent.KindFork && ev.Time <= c.scanEnd {
		// The scan may already have seeded this child.
		if ti, ok := c.eng.Task(ev.TID); ok && ti.Start == procfs.TicksFromBoottime(ev.StartBoottime) {
			c.counters.dupSeeds.Add(1)
			return
		}
	}
	in := toInput(ev, c.offset, exe)
	if in == nil {
		c.counters.badEvents.Add(1)
		return
	}
	if f, ok := in.(engine.Fork); ok && ev.Time <= c.tagged {
		// The fork read its creator's contid before the latest registration
		// reached the kernel but is applied after it (the request drained
		// the ring before tagging): its value predates the tag and cannot
		// be compared. The tag walked the new thread too; the engine's
		// inheritance decides as always.
		if _, known := c.eng.Task(f.Parent); known {
			f.HasContid = false
			in = f
		}
	}
	c.eng.Apply(in)
	c.record(in)
	if c.hooks.Observer != nil {
		c.hooks.Observer.Event(ev)
	}
	if ev.Kind == taskevent.KindFork && ev.JoinedCgroup && ev.HasContid {
		// Created in a bound cgroup (clone3 CLONE_INTO_CGROUP): the
		// kernel gave the child its container; the engine inherited
		// the creator's nothing. Apply the join.
		j := engine.Join{Time: int64(ev.Time) + c.offset, PID: ev.TGID, Contid: ev.Contid, Mover: ev.ParentTID, Tagged: true}
		c.eng.Apply(j)
		c.record(j)
	}
}

// record hands an applied input to the recorder.
func (c *Core) record(in engine.Input) {
	if c.rec == nil {
		return
	}
	c.rec.Record(in, c.kerrs, c.sent)
	c.kerrs = c.kerrs[:0]
	c.sent = c.sent[:0]
}

// Recorder is Config.Record: nil when the run is not recorded. Core
// goroutine only.
func (c *Core) Recorder() Recorder { return c.rec }

func (c *Core) applyAll(evs []taskevent.Event) {
	for _, ev := range evs {
		c.apply(ev)
	}
	if c.hooks.Observer != nil {
		c.hooks.Observer.AfterEvents()
	}
}

// request is a function to run on the core goroutine after the barrier.
type request struct {
	f    func(*engine.Engine) error
	done chan error
}

// Do runs f on the core goroutine after every task event buffered before
// the call has been applied (api.Core).
func (c *Core) Do(ctx context.Context, f func(*engine.Engine) error) error {
	r := request{f: f, done: make(chan error, 1)}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stopped:
		return ErrStopped
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Refresh applies every task event buffered before the call and
// publishes the counters (a request that does nothing after the barrier):
// what status reads is then current even while the tick has backed off.
func (c *Core) Refresh(ctx context.Context) error {
	return c.Do(ctx, func(*engine.Engine) error { return nil })
}

type call struct {
	f    func()
	done chan struct{}
}

// Call runs f on the core goroutine, without the barrier, and waits for
// it (a reload).
func (c *Core) Call(ctx context.Context, f func()) error {
	cl := call{f: f, done: make(chan struct{})}
	select {
	case c.calls <- cl:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stopped:
		return ErrStopped
	}
	<-cl.done
	return nil
}

// ErrStopped is Do's and Call's error once the core has stopped.
var ErrStopped = errors.New("core: stopping")

// Emit hands on one of contid's own records: into the kernel's audit
// stream when the audit path has a Sender (the kernel stamps and
// delivers it, back to contid and to auditd's log); else, or when its
// queue is full, to the host log directly.
func (c *Core) Emit(r records.Record) {
	sent := c.emit(r)
	if c.rec != nil {
		c.sent = append(c.sent, sent)
	}
}

// emit is Emit; true when r went into the kernel's stream.
func (c *Core) emit(r records.Record) bool {
	c.wrote.Add(1)
	if c.hooks.Own != nil {
		if c.hooks.Own.Send(r) {
			return true
		}
		c.counters.ownQueueFull.Add(1)
	}
	c.Local(r)
	return false
}

// Local writes an own record to the host log, stamped from contid's own
// serial space, which cannot collide with the kernel's. Safe from any
// goroutine.
func (c *Core) Local(r records.Record) {
	r.Stamp.Serial = records.OwnSerialBase + c.serial.Add(1) - 1
	if c.auditOn() {
		c.counters.ownLocal.Add(1)
	}
	switch err := c.hl.WriteLine(records.AppendRaw(nil, &r)); {
	case err == nil || errors.Is(err, auditlog.ErrQueued) && !errors.Is(err, auditlog.ErrDropped):
		// Queued on a full disk: written when space returns.
		c.counters.recordsWritten.Add(1)
	case errors.Is(err, auditlog.ErrDiskFull):
		c.counters.recordErrors.Add(1) // the log said so; the loss is recorded when it resumes
	default:
		c.counters.recordErrors.Add(1)
		c.log.Error("host log", "err", err)
	}
}

func (c *Core) auditOn() bool { return c.hooks.AuditMode != "" && c.hooks.AuditMode != "off" }

// Loss writes a CONTID_LOSS record of n lost items of kind.
func (c *Core) Loss(kind string, n uint64, extra ...records.Field) {
	c.counters.lossRecords.Add(1)
	at := time.Now().UnixNano()
	r := LossRecord(c.hooks.AuditMode, at, kind, n, extra...)
	sent := false
	if c.hooks.AuditMode == "listener" {
		c.wrote.Add(1)
		c.Local(r)
	} else {
		sent = c.emit(r)
	}
	if c.rec != nil {
		c.rec.Loss(at, kind, n, extra, sent)
	}
}

// LossRecord is the CONTID_LOSS record of n lost items of kind, stamped
// at (unix ns), from the audit path in mode ("" or "off": none).
func LossRecord(mode string, at int64, kind string, n uint64, extra ...records.Field) records.Record {
	if mode == "" {
		mode = "off"
	}
	return records.Record{
		Type:  records.ContidLoss,
		Stamp: records.StampAt(at, 0),
		Fields: append([]records.Field{
			{Key: "kind", Value: kind}, {Key: "count", Value: strconv.FormatUint(n, 10)},
			{Key: "source", Value: mode},
		}, extra...),
	}
}

// Unsent writes an own record that was queued for the kernel's stream
// when the sender stopped to the host log (Local), counting it for the
// recorder; EndUnsent records the count. Core goroutine, at stop.
func (c *Core) Unsent(r records.Record) {
	c.Local(r)
	c.unsent++
}

// EndUnsent records how many records Unsent wrote.
func (c *Core) EndUnsent() {
	if c.rec != nil && c.unsent > 0 {
		c.rec.Unsent(c.unsent)
	}
	c.unsent = 0
}

// DiskFullLoss records the lines a log dropped while its disk was full,
// once it writes again (so the record is not lost the same way). log is
// relative to the log directory.
func (c *Core) DiskFullLoss(log string, n uint64) {
	c.log.Warn("log lines were lost while the disk was full", "log", log, "lines", n)
	c.Loss("disk_full", n, records.Field{Key: "log", Value: log})
}

func (c *Core) publish() {
	st := c.eng.Stats()
	c.engineStats.Store(&st)
	c.tasks.Store(int64(c.eng.TaskCount()))
}

// Publish makes the engine's counters visible to Counters; core
// goroutine only.
func (c *Core) Publish() { c.publish() }

// Counters adds the core's counters to m; safe from any goroutine.
func (c *Core) Counters(m map[string]uint64) {
	m["records_written"] = c.counters.recordsWritten.Load()
	m["record_errors"] = c.counters.recordErrors.Load()
	m["bad_events"] = c.counters.badEvents.Load()
	m["seed_duplicates"] = c.counters.dupSeeds.Load()
	m["syncs"] = c.counters.syncs.Load()
	if st := c.engineStats.Load(); st != nil {
		m["engine_inputs"] = st.Inputs
		m["unknown_parent"] = st.UnknownParent
		m["unknown_exit"] = st.UnknownExit
		m["evicted"] = st.Evicted
		m["inherit_mismatch"] = st.Mismatch
		m["unknown_join"] = st.UnknownJoin
		m["stale_ns"] = st.StaleNS
		m["quota_refused"] = st.QuotaRefused
	}
	if c.auditOn() {
		m["audit_batches"] = c.counters.batches.Load()
		m["own_local"] = c.counters.ownLocal.Load()
		m["own_queue_full"] = c.counters.ownQueueFull.Load()
		m["loss_records"] = c.counters.lossRecords.Load()
	}
}

// QueueLen reports the fill of the task-event hand-over queue; safe
// from any goroutine.
func (c *Core) QueueLen() (n, capacity int) { return len(c.events), cap(c.events) }

func (c *Core) updateOffset() { c.offset = time.Now().UnixNano() - int64(Monotonic()) }

// Boottime is CLOCK_BOOTTIME in nanoseconds.
func Boottime() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return uint64(ts.Nano())
}

// Monotonic is CLOCK_MONOTONIC in nanoseconds, the task events' clock.
func Monotonic() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// kernel notes when each registration reached the kernel (see apply).
type kernel struct {
	c *Core
	k engine.Kernel
}

func (k kernel) Tag(target engine.TaskRef, id contid.ID) error {
	err := k.k.Tag(target, id)
	k.c.tagged = Monotonic()
	return k.c.kernelSaid(err)
}

func (k kernel) Keep(ci engine.ContainerInfo) error { return k.c.kernelSaid(k.k.Keep(ci)) }
func (k kernel) Forget(id contid.ID) error          { return k.c.kernelSaid(k.k.Forget(id)) }

// kernelSaid notes the kernel's answer for the recorder.
func (c *Core) kernelSaid(err error) error {
	if c.rec != nil {
		c.kerrs = append(c.kerrs, err)
	}
	return err
}
