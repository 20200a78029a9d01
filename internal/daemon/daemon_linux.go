// Package daemon wires contid's live pipeline: the eBPF tracker's events
// and the start-up scan feed the engine on one core goroutine; the engine's
// records go to the host log; the registration API runs its requests on the
// same goroutine through Do, after a barrier that applies every kernel
// event buffered before the request (so the caller and target are known).
//
// Loss is counted, never silent: ring-buffer overflow (tracker Stats.Lost),
// events the engine could not place (engine Stats), records the log could
// not take (auditlog Stats) are all in Status().
//
// Ownership: the core goroutine (loop) owns the configuration and the
// pipeline. Each log has one auditlog.Writer for the daemon's life, never
// replaced: SIGHUP reconfigures and reopens it in place (reload), so the
// sender goroutine and the output, which hold it, never write to a stale
// file. Other goroutines read only atomics and what is fixed at start.
package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/api"
	"github.com/contid/contid/internal/auditlog"
	"github.com/contid/contid/internal/config"
	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/engine"
	"github.com/contid/contid/internal/procconn"
	"github.com/contid/contid/internal/procfs"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/safedir"
	"github.com/contid/contid/internal/search"
	"github.com/contid/contid/internal/taskevent"
	"github.com/contid/contid/internal/tracker"
)

// Daemon is a running contid daemon.
type Daemon struct {
	cfg     config.Config // the core goroutine's; reload changes it
	fileCfg config.Config // the configuration file as last read, for reload to compare
	source  string        // where task events come from; fixed at start, read by Status
	log     *slog.Logger
	src     source
	tr      *tracker.Tracker // nil on the proc connector
	pins    *pinnedContainers
	eng     *engine.Engine
	hl      *auditlog.Writer
	hix     *search.LogIndex // the host log's search index; nil when off
	srv     *api.Server

	events  chan []taskevent.Event // batches: one hand-over for many events (proc connector)
	ringUp  chan struct{}          // the tracker's ring wants draining (watch)
	scanNow chan struct{}          // the tick asks for a namespace scan (scan)
	reqs    chan request
	stopped chan struct{}

	// The reader goroutine's pause protocol (see sync).
	pause    chan struct{}
	paused   chan struct{}
	resume   chan struct{}
	cancelMu sync.Mutex
	cancel   context.CancelFunc

	hostLost uint64 // the host log's Dropped.DiskFull already reported (core)

	serial  atomic.Uint64
	offset  int64 // unix ns minus CLOCK_MONOTONIC ns
	scanEnd uint64
	tagged  uint64 // CLOCK_MONOTONIC when the latest Tag reached the kernel
	// readerDone: the reader goroutine has returned (at stop); sync
	// drains without pausing it.
	readerDone bool
	counters   struct {
		recordsWritten, recordErrors, badEvents, dupSeeds, syncs atomic.Uint64
	}
	engineStats atomic.Pointer[engine.Stats]
	tasks       atomic.Int64

	audit   auditState
	pk      *packets    // packet record attribution (packets_linux.go), nil when off
	fleet   *fleetRoute // the fleet stream route (fleet_linux.go), nil when off
	stopAll context.CancelFunc
}

// Options are the parts of start-up that are not configuration.
type Options struct {
	// Ready, when set, is closed once the API answers.
	Ready chan<- struct{}
	// Stdin is auditd's plugin feed (audit mode plugin).
	Stdin io.Reader
}

// Run starts the daemon and runs it until ctx is done or SIGTERM/SIGINT;
// SIGHUP reloads the configuration file (configPath) and reopens the log.
func Run(ctx context.Context, cfg config.Config, configPath string, log *slog.Logger, opt Options) error {
	if ok, err := procfs.Host.InitialUserNS(); err != nil || !ok {
		return fmt.Errorf("daemon: must run in the initial user namespace (capability checks need it): %v", err)
	}
	d := &Daemon{
		cfg: cfg, log: log,
		events: make(chan []taskevent.Event, 64), ringUp: make(chan struct{}, 1), scanNow: make(chan struct{}, 1), reqs: make(chan request), stopped: make(chan struct{}),
		pause: make(chan struct{}, 1), paused: make(chan struct{}), resume: make(chan struct{}, 1),
	}
	var err error
	if err = d.openSource(); err != nil {
		return err
	}
	defer d.src.Close()
	if d.tr != nil {
		if d.pins, err = openPinned(cfg.PinDir); err != nil {
			return err
		}
		defer d.pins.Close()
	}
	// Root writes here: a directory another user owns or may write to
	// could have its files swapped for links.
	if err := safedir.Ensure(cfg.LogDir, 0o700); err != nil {
		return fmt.Errorf("daemon: log directory: %w", err)
	}
	if d.fileCfg, err = config.Load(configPath); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if d.hl, err = auditlog.Open(cfg.HostLog(), log); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	defer d.hl.Close()
	if cfg.SearchIndex {
		d.hix = search.NewLogIndex(0, log)
		d.hl.Observe(d.hix)
	}
	var k engine.Kernel
	if d.tr != nil {
		k = kernel{d}
	}
	d.eng = engine.New(engine.Config{Sink: d, Kernel: k, MaxPerOwner: d.cfg.MaxContainersPerOwner})
	d.updateOffset()
	if err := d.seed(); err != nil {
		return err
	}
	if d.cfg.Audit.Mode != "off" {
		if err := d.openAudit(opt.Stdin); err != nil {
			return err
		}
	}
	defer d.closeAudit()

	msrv, err := d.listenMetrics()
	if err != nil {
		return err
	}
	acfg := api.Config{Path: cfg.Socket, Status: d.Status}
	if d.tr != nil {
		acfg.KernelContid = func(tid int32) (contid.ID, bool, error) { return d.tr.Contid(int(tid)) }
	}
	if d.srv, err = api.Listen(acfg, d, log); err != nil {
		if msrv != nil {
			msrv.Shutdown(context.Background())
		}
		return fmt.Errorf("daemon: %w", err)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	d.stopAll = stop
	var wg sync.WaitGroup
	wg.Add(2)
	if d.tr != nil {
		go func() { defer wg.Done(); d.watch(ctx) }()
		if !d.cfg.NSSyscalls {
			wg.Add(1)
			go func() { defer wg.Done(); d.scan(ctx) }()
		}
	} else {
		go func() { defer wg.Done(); d.read(ctx) }()
	}
	if d.audit.in != nil {
		// Not waited for here: a read of the plugin feed cannot be
		// interrupted; the goroutine touches nothing once ctx is done but
		// what closeAudit waits for (received).
		d.audit.received = make(chan struct{})
		go d.receive(ctx)
	}
	if d.audit.writer != nil {
		wg.Add(1)
		go func() { defer wg.Done(); d.send(ctx) }()
	}
	go func() {
		defer wg.Done()
		if err := d.srv.Serve(); err != nil {
			log.Error("api", "err", err)
			stop()
		}
	}()
	if msrv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := msrv.Serve(); err != nil {
				log.Error("metrics", "err", err)
				stop()
			}
		}()
	}
	log.Info("contid daemon ready", "socket", cfg.Socket, "log", cfg.HostLog().Path, "tasks", d.tasks.Load())
	notify(log, "READY=1\nSTATUS=serving "+cfg.Socket)
	if opt.Ready != nil {
		close(opt.Ready)
	}
	err = d.loop(ctx, sigs, configPath)
	notify(log, "STOPPING=1")
	close(d.stopped)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	d.srv.Shutdown(sctx)
	if msrv != nil {
		msrv.Shutdown(sctx)
	}
	cancel()
	stop()
	wg.Wait()
	d.readerDone = true
	d.hl.Flush()
	log.Info("contid daemon stopped")
	return err
}

// source is where task events come from: the eBPF tracker, or the
// process-events connector without eBPF.
type source interface {
	Read(ctx context.Context) (taskevent.Event, error)
	TryRead() (taskevent.Event, bool, error)
	Close() error
}

// openSource opens the configured source and says which it runs on.
func (d *Daemon) openSource() error {
	want := d.cfg.Source
	if want == "auto" || want == "ebpf" {
		err := tracker.Available()
		if err == nil {
			// The namespace scan runs on the core's tick (scan), not
			// on a timer of its own.
			d.tr, err = tracker.Open(tracker.Config{PinDir: d.cfg.PinDir, NSSyscalls: d.cfg.NSSyscalls, Batch: ringBatch, NSScan: -1}, d.log)
		}
		if err == nil {
			d.src, d.cfg.Source, d.source = d.tr, "ebpf", "ebpf"
			d.log.Info("task events from eBPF: contids in kernel task storage, inherited at fork inside the kernel",
				"pin_dir", d.cfg.PinDir, "ns_syscalls", d.cfg.NSSyscalls)
			return nil
		}
		if want == "ebpf" {
			return fmt.Errorf("daemon: eBPF tracker: %w", err)
		}
		d.log.Warn("eBPF tracker unavailable, falling back to the process-events connector", "err", err)
	}
	pc, err := procconn.Open(procconn.Config{}, d.log)
	if err != nil {
		return fmt.Errorf("daemon: process-events connector: %w", err)
	}
	d.src, d.cfg.Source, d.source = pc, "proc-connector", "proc-connector"
	d.log.Warn("task events from the process-events connector: inheritance is BEST EFFORT " +
		"(no kernel state: attribution follows the order of fork events, registrations do not survive a restart, " +
		"namespaces are not tracked, and overload loses events, counted in status)")
	return nil
}

// seed restores container objects from the pinned map and every running
// task from /proc with the contid the kernel holds for it.
func (d *Daemon) seed() error {
	var conts []engine.SeedContainer
	if d.pins != nil {
		var err error
		if conts, err = d.pins.List(); err != nil {
			return err
		}
	}
	now := time.Now().UnixNano()
	for _, c := range conts {
		c.Time = now
		if err := d.eng.SeedContainer(c); err != nil {
			d.log.Warn("seed container", "err", err)
		}
	}
	tasks, st, err := procfs.Host.Scan()
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	d.scanEnd = monotonic()
	boot := now - int64(boottime())
	for _, t := range tasks {
		s := seedOf(t, now, boot)
		if d.tr != nil {
			if id, ok, err := d.tr.Contid(int(s.PID)); err == nil && ok {
				s.HasContid, s.Contid = true, id
			}
		}
		if err := d.eng.SeedTask(s); err != nil {
			d.log.Debug("seed task", "err", err)
		}
	}
	d.tasks.Store(int64(d.eng.TaskCount()))
	d.log.Info("seeded from /proc and pinned state", "tasks", st.Tasks, "vanished", st.Vanished, "containers", len(conts))
	return nil
}

// ringBatch is how often at most the tracker's kernel side wakes the
// daemon while events flow (tracker.Config.Batch): in effect only once a
// quarter of the ring is full. Nothing needs an event sooner: the core
// drains the ring before each audit batch and request (sync), and on its
// one-second tick, so the engine's state is at most a second old between
// those; the wakeup keeps the ring from filling in between. So a host
// that forks all the time costs the daemon no wakeup of its own, where
// one per event, or one per 5 ms, cost more than the events.
const ringBatch = time.Hour

// watch tells the core when the tracker's kernel side woke the ring's
// readers (ringBatch), until ctx is done; the core then drains the ring.
func (d *Daemon) watch(ctx context.Context) {
	for {
		if err := d.tr.Wait(ctx); err != nil {
			if ctx.Err() == nil {
				d.log.Error("tracker wait", "err", err)
			}
			return
		}
		select {
		case d.ringUp <- struct{}{}:
		default: // the core has not taken the last one yet: it drains all
		}
	}
}

// scan compares every task's namespaces with what the tracker last
// reported, once a second when the core's tick asks (the tracker's own
// timer is off: one timer wakes the daemon, not one per goroutine). Its own
// goroutine: a scan visits every task and must not hold up the core.
func (d *Daemon) scan(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.scanNow:
			if err := d.tr.ScanNS(); err != nil {
				d.log.Warn("namespace scan failed", "err", err)
			}
		}
	}
}

// read moves the proc connector's events to the core until ctx is done,
// pausing when the core asks (see sync).
func (d *Daemon) read(ctx context.Context) {
	for ctx.Err() == nil {
		rctx, cancel := context.WithCancel(ctx)
		d.cancelMu.Lock()
		d.cancel = cancel
		d.cancelMu.Unlock()
		select {
		case <-d.pause:
			cancel()
			d.paused <- struct{}{}
			select {
			case <-d.resume:
			case <-ctx.Done():
			}
			continue
		default:
		}
		ev, err := d.src.Read(rctx)
		cancel()
		switch {
		case err == nil:
			// Take what else is waiting: a hand-over per event costs the
			// core more than the event.
			batch := append(make([]taskevent.Event, 0, 16), ev)
			for len(batch) < 256 {
				ev, ok := d.tryRead()
				if !ok {
					break
				}
				batch = append(batch, ev)
			}
			select {
			case d.events <- batch:
			case <-ctx.Done():
				return
			}
		case errors.Is(err, taskevent.ErrMalformed):
			d.counters.badEvents.Add(1)
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			// paused or stopping: the loop top decides
		default:
			d.log.Error("tracker read", "err", err)
			return
		}
	}
}

// sync applies every event buffered before it was called. With the
// tracker it empties the ring (nobody else reads it). With the proc
// connector it stops the reader (draining what the reader hands over
// meanwhile), then empties the socket itself, then lets the reader go on.
func (d *Daemon) sync() {
	d.counters.syncs.Add(1)
	if d.readerDone || d.tr != nil {
		d.drain() // at stop, or with the tracker: nobody to pause
		return
	}
	d.pause <- struct{}{}
	d.cancelMu.Lock()
	if d.cancel != nil {
		d.cancel()
	}
	d.cancelMu.Unlock()
	for waiting := true; waiting; {
		select {
		case evs := <-d.events:
			d.applyAll(evs)
		case <-d.paused:
			waiting = false
		}
	}
	d.drain()
	d.resume <- struct{}{} // the reader is paused and takes it
}

// drain applies what the reader handed over, then what the ring holds.
func (d *Daemon) drain() {
	for {
		select {
		case evs := <-d.events:
			d.applyAll(evs)
			continue
		default:
		}
		ev, ok := d.tryRead()
		if !ok {
			return
		}
		d.apply(ev)
	}
}

// tryRead returns the next buffered event, if any, counting and skipping
// malformed ones.
func (d *Daemon) tryRead() (taskevent.Event, bool) {
	for {
		ev, ok, err := d.src.TryRead()
		if errors.Is(err, taskevent.ErrMalformed) {
			d.counters.badEvents.Add(1)
			continue
		}
		return ev, err == nil && ok
	}
}

func (d *Daemon) loop(ctx context.Context, sigs <-chan os.Signal, configPath string) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case evs := <-d.events:
			d.applyAll(evs)
		case <-d.ringUp:
			d.drain()
		case r := <-d.reqs:
			d.sync()
			r.done <- r.f(d.eng)
			d.publish()
		case b := <-d.audit.batches:
			d.auditBatch(b)
		case now := <-tick.C:
			d.updateOffset()
			if d.tr != nil {
				d.drain() // the events since the last drain
				select {
				case d.scanNow <- struct{}{}:
				default: // still scanning
				}
			}
			d.publish()
			d.tickAudit(now)
			d.tickHostLog()
		case s := <-sigs:
			if s != syscall.SIGHUP {
				d.log.Info("signal, stopping", "signal", s)
				return nil
			}
			notifyReloading(d.log)
			d.reload(configPath)
			notify(d.log, "READY=1")
		}
	}
}

// reload runs on SIGHUP: it re-reads the configuration file, applies its
// [log] and [containers] sections (limits, flush policy, disk-full queue),
// and reopens every log in place — the host log, the JSON log and each
// open container log — so a log renamed away (logrotate) is started anew
// and nothing is lost: lines written before the reopen are in the renamed
// file, later ones in the new one. Every other key takes effect only at
// restart (a warning says so when one changed), and flags given at start
// keep their effect. A file that is refused changes nothing, but the logs
// are reopened all the same: logrotate's SIGHUP must work whatever the
// state of the file.
func (d *Daemon) reload(path string) {
	file, err := config.Load(path)
	if err != nil {
		d.log.Error("reload: configuration refused, keeping the old one", "err", err)
		d.reopenLogs()
		d.log.Info("reopened the logs")
		return
	}
	was, now := d.fileCfg, file
	was.Log, was.Containers.Log = config.Log{}, config.Log{}
	now.Log, now.Containers.Log = config.Log{}, config.Log{}
	if !bytes.Equal(was.Text(), now.Text()) {
		d.log.Warn("reload: only the log limits of [log] and [containers] apply now; other changed keys take effect at restart")
	}
	d.fileCfg = file
	d.cfg.Log, d.cfg.Containers.Log = file.Log, file.Containers.Log
	d.reopenLogs()
	d.log.Info("reloaded configuration", "path", path,
		"max_log_file", d.cfg.Log.MaxLogFile, "num_logs", d.cfg.Log.NumLogs, "max_log_file_action", d.cfg.Log.MaxLogFileAction,
		"flush", d.cfg.Log.Flush, "freq", d.cfg.Log.Freq)
}

// reopenLogs gives every open log the configuration in force and reopens
// it in place.
func (d *Daemon) reopenLogs() {
	var errs []error
	if err := d.hl.Reconfigure(d.cfg.HostLog()); err != nil {
		errs = append(errs, err)
	}
	if a := &d.audit; a.out != nil {
		if a.json != nil {
			if err := a.json.Reconfigure(d.cfg.JSONLog()); err != nil {
				errs = append(errs, err)
			}
		}
		a.out.Reconfigure() // container logs; it logs its own errors
	}
	if err := errors.Join(errs...); err != nil {
		d.log.Error("reload: reopening a log failed; writing on to the file in use and retrying at each line", "err", err)
	}
}

// tickHostLog, once a second: hands a FlushNone buffer to the kernel,
// writes what a full disk queued if space is back, and once the log writes
// again, records what it dropped meanwhile (SPEC §8: never silently).
func (d *Daemon) tickHostLog() {
	if d.cfg.Log.Flush == auditlog.FlushNone {
		d.hl.Flush()
	}
	d.hl.Retry()
	if d.hix != nil {
		d.hix.Sync() // logs its own errors: the index only makes searches faster
	}
	if st := d.hl.Stats(); !st.DiskFull && st.Dropped.DiskFull > d.hostLost {
		d.diskFullLoss("audit.log", st.Dropped.DiskFull-d.hostLost)
		d.hostLost = st.Dropped.DiskFull
	}
}

// apply feeds one tracker event to the engine.
func (d *Daemon) apply(ev taskevent.Event) {
	if ev.Kind == taskevent.KindFork && ev.Time <= d.scanEnd {
		// The scan may already have seeded this child.
		if ti, ok := d.eng.Task(ev.TID); ok && ti.Start == procfs.TicksFromBoottime(ev.StartBoottime) {
			d.counters.dupSeeds.Add(1)
			return
		}
	}
	in := toInput(ev, d.offset, procfs.Host.Exe)
	if in == nil {
		d.counters.badEvents.Add(1)
		return
	}
	if f, ok := in.(engine.Fork); ok && ev.Time <= d.tagged {
		// The fork read its creator's contid before the latest registration
		// reached the kernel but is applied after it (the request drained
		// the ring before tagging): its value predates the tag and cannot
		// be compared. The tag walked the new thread too; the engine's
		// inheritance decides as always.
		if _, known := d.eng.Task(f.Parent); known {
			f.HasContid = false
			in = f
		}
	}
	d.eng.Apply(in)
	d.packetEvent(ev)
	if ev.Kind == taskevent.KindFork && ev.JoinedCgroup && ev.HasContid {
		// Created in a bound cgroup (clone3 CLONE_INTO_CGROUP): the
		// kernel gave the child its container; the engine inherited
		// the creator's nothing. Apply the join.
		d.eng.Apply(engine.Join{Time: int64(ev.Time) + d.offset, PID: ev.TGID, Contid: ev.Contid, Mover: ev.ParentTID, Tagged: true})
	}
}

func (d *Daemon) applyAll(evs []taskevent.Event) {
	for _, ev := range evs {
		d.apply(ev)
	}
	d.packetsAfterEvents()
}

// Emit hands on one of contid's own records (SPEC §5.1): into the
// kernel's audit stream when kernel audit is in use, which stamps and
// delivers it (back to contid, and to auditd's log); else, or when that
// queue is full, to the host log directly. Whether audit is enabled is
// the sender's to ask the kernel (send), just before it sends.
func (d *Daemon) Emit(r records.Record) {
	a := &d.audit
	if a.writer != nil {
		select {
		case a.own <- r:
			return
		default:
			a.counters.ownQueueFull.Add(1)
		}
	}
	d.local(r)
}

// local writes an own record to the host log, stamped from contid's own
// serial space, which cannot collide with the kernel's. Safe from any
// goroutine.
func (d *Daemon) local(r records.Record) {
	r.Stamp.Serial = records.OwnSerialBase + d.serial.Add(1) - 1
	if d.audit.mode != "" && d.audit.mode != "off" {
		d.audit.counters.ownLocal.Add(1)
	}
	switch err := d.hl.WriteLine(records.AppendRaw(nil, &r)); {
	case err == nil || errors.Is(err, auditlog.ErrQueued) && !errors.Is(err, auditlog.ErrDropped):
		// Queued on a full disk: written when space returns.
		d.counters.recordsWritten.Add(1)
	case errors.Is(err, auditlog.ErrDiskFull):
		d.counters.recordErrors.Add(1) // the log said so; the loss is recorded when it resumes
	default:
		d.counters.recordErrors.Add(1)
		d.log.Error("host log", "err", err)
	}
}

func (d *Daemon) publish() {
	st := d.eng.Stats()
	d.engineStats.Store(&st)
	d.tasks.Store(int64(d.eng.TaskCount()))
}

// Status reports the daemon's counters; safe from any goroutine.
func (d *Daemon) Status() api.Status {
	s := api.Status{Source: d.source, Tasks: int(d.tasks.Load()), Counters: map[string]uint64{
		"records_written": d.counters.recordsWritten.Load(),
		"record_errors":   d.counters.recordErrors.Load(),
		"bad_events":      d.counters.badEvents.Load(),
		"seed_duplicates": d.counters.dupSeeds.Load(),
		"syncs":           d.counters.syncs.Load(),
	}}
	if st := d.engineStats.Load(); st != nil {
		s.Counters["engine_inputs"] = st.Inputs
		s.Counters["unknown_parent"] = st.UnknownParent
		s.Counters["unknown_exit"] = st.UnknownExit
		s.Counters["evicted"] = st.Evicted
		s.Counters["inherit_mismatch"] = st.Mismatch
		s.Counters["unknown_join"] = st.UnknownJoin
		s.Counters["stale_ns"] = st.StaleNS
		s.Counters["quota_refused"] = st.QuotaRefused
	}
	if d.tr != nil {
		if ts, err := d.tr.Stats(); err == nil {
			s.Counters["ring_lost"] = ts.Lost
			s.Counters["inherit_failures"] = ts.InheritFailures
		}
	} else if pc, ok := d.src.(*procconn.Conn); ok {
		st := pc.Stats()
		s.Counters["connector_overflows"] = st.Overflows
		s.Counters["connector_seq_gaps"] = st.SeqGaps
		s.Counters["connector_malformed"] = st.Malformed
	}
	ls := d.hl.Stats()
	s.Counters["log_dropped"] = ls.Dropped.Total()
	d.auditStatus(&s)
	// Full disk (SPEC §8): over the host log and, with kernel audit, the
	// JSON and container logs.
	full, queued, dropped, werrs := ls.DiskFull, uint64(ls.Queued), ls.Dropped.DiskFull, ls.WriteErrors
	if st := d.audit.stats.Load(); st != nil {
		full = full || st.out.DiskFull
		queued += uint64(st.out.Queued)
		dropped += st.out.DroppedDiskFull
		werrs += st.out.WriteErrors
	}
	s.Counters["log_disk_full"] = 0
	if full {
		s.Counters["log_disk_full"] = 1
	}
	s.Counters["log_queued"] = queued
	s.Counters["log_dropped_disk_full"] = dropped
	s.Counters["log_write_errors"] = werrs
	return s
}

func (d *Daemon) updateOffset() { d.offset = time.Now().UnixNano() - int64(monotonic()) }

func boottime() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return uint64(ts.Nano())
}

func monotonic() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// kernel is the engine's Kernel: task storage through the tracker, and
// container objects in a pinned map.
type kernel struct{ d *Daemon }

func (k kernel) Tag(target engine.TaskRef, id contid.ID) error {
	tgid := target.PID
	err := k.d.tr.SetGroup(int(tgid), target.Start, id)
	k.d.tagged = monotonic()
	if err == nil {
		// Exec into the container later joins it through its cgroups.
		if _, berr := k.d.bindCgroups(tgid, id); berr != nil {
			k.d.log.Warn("binding the container's cgroups failed: exec into it will not join it", "contid", id, "err", berr)
		}
	}
	return err
}

func (k kernel) Keep(c engine.ContainerInfo) error { return k.d.pins.Keep(c) }

func (k kernel) Forget(id contid.ID) error {
	return errors.Join(k.d.pins.Forget(id), k.d.tr.UnbindContid(id))
}
