// Package tasksource opens the daemon's source of task events and the
// core that applies them: the eBPF tracker where the kernel allows it
// (contids in kernel task storage, inherited at fork inside the kernel,
// container objects pinned beside them), else the process-events
// connector, where inheritance is best effort. It seeds the core from
// /proc and the pinned state, so the core starts knowing every task.
//
// Neither source depends on the other: both implement taskevent.Source,
// and this package alone chooses between them.
package tasksource

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/contid/contid/internal/config"
	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core"
	"github.com/contid/contid/internal/sink/trace"
	"github.com/contid/contid/internal/source/procconn"
	"github.com/contid/contid/internal/source/procfs"
	"github.com/contid/contid/internal/source/tracker"
)

// ringBatch is how often at most the tracker's kernel side wakes the
// daemon while events flow (tracker.Config.Batch): in effect only once a
// quarter of the ring is full. Nothing needs an event sooner: the core
// drains the ring before each audit batch and request (its barrier), and
// on its tick (once a second while events flow), so the engine's state is
// at most a second old between those; the wakeup keeps the ring from
// filling in between. So a host that forks all the time costs the daemon
// no wakeup of its own, where one per event, or one per 5 ms, cost more
// than the events. While the core's tick has backed off (an idle host) it
// asks the ring to wake it at the next event (tracker.WakeNext).
const ringBatch = time.Hour

// Tasks is the open task-event source.
type Tasks struct {
	log  *slog.Logger
	cfg  config.Config
	kind string           // ebpf or proc-connector
	tr   *tracker.Tracker // nil on the proc connector
	pins *tracker.Pinned  // nil on the proc connector
	pc   *procconn.Conn   // nil on the tracker
	rec  *trace.Recorder  // nil: no recording
}

// Open checks that the daemon runs in the initial user namespace
// (capability checks need it) and opens the configured source:
// cfg.Source auto tries eBPF and falls back to the proc connector.
func Open(cfg config.Config, log *slog.Logger) (*Tasks, error) {
	if ok, err := procfs.Host.InitialUserNS(); err != nil || !ok {
		return nil, fmt.Errorf("daemon: must run in the initial user namespace (capability checks need it): %v", err)
	}
	t := &Tasks{log: log, cfg: cfg}
	want := cfg.Source
	if want == "auto" || want == "ebpf" {
		err := tracker.Available()
		if err == nil {
			// The namespace scan runs on the core's tick (NewCore), not
			// on a timer of its own.
			t.tr, err = tracker.Open(tracker.Config{PinDir: cfg.PinDir, NSSyscalls: cfg.NSSyscalls, Batch: ringBatch, NSScan: -1}, log)
		}
		if err == nil {
			t.kind = "ebpf"
			log.Info("task events from eBPF: contids in kernel task storage, inherited at fork inside the kernel",
				"pin_dir", cfg.PinDir, "ns_syscalls", cfg.NSSyscalls)
			if t.pins, err = tracker.OpenPinned(cfg.PinDir); err != nil {
				t.tr.Close()
				return nil, err
			}
			return t, nil
		}
		if want == "ebpf" {
			return nil, fmt.Errorf("daemon: eBPF tracker: %w", err)
		}
		log.Warn("eBPF tracker unavailable, falling back to the process-events connector", "err", err)
	}
	pc, err := procconn.Open(procconn.Config{}, log)
	if err != nil {
		return nil, fmt.Errorf("daemon: process-events connector: %w", err)
	}
	t.pc, t.kind = pc, "proc-connector"
	log.Warn("task events from the process-events connector: inheritance is BEST EFFORT " +
		"(no kernel state: attribution follows the order of fork events, registrations do not survive a restart, " +
		"namespaces are not tracked, and overload loses events, counted in status)")
	return t, nil
}

// Kind says which source runs: ebpf or proc-connector.
func (t *Tasks) Kind() string { return t.kind }

// NewCore makes the core on this source, writing its own records to
// hostLog and, when record is a path, a trace of every input of its engine
// there (completed at Close); and seeds it: container objects from the
// pinned map, and every running task from /proc with the contid the kernel
// holds for it.
func (t *Tasks) NewCore(hostLog core.LineWriter, record string) (*core.Core, error) {
	cc := core.Config{HostLog: hostLog, MaxPerOwner: t.cfg.MaxContainersPerOwner, Exe: procfs.Host.ExeOf, Log: t.log}
	if record != "" {
		rec, err := trace.Create(record)
		if err != nil {
			return nil, fmt.Errorf("daemon: record: %w", err)
		}
		t.rec, cc.Record = rec, rec
	}
	var seed core.Seed
	if t.tr != nil {
		cc.Source, cc.Kernel = t.tr, tracker.Kernel{T: t.tr, Pins: t.pins}
		if !t.cfg.NSSyscalls {
			// Without the namespace syscall hooks, a task's setns or
			// unshare shows only in the scan, which compares every task's
			// namespaces with what the tracker last reported. On the
			// core's tick: one timer wakes the daemon, not one per job,
			// and no goroutine hand-off. A BPF iterator over every task,
			// in the kernel: tens of microseconds for hundreds of tasks.
			cc.Scan = t.tr.ScanNS
		}
		conts, err := t.pins.List()
		if err != nil {
			return nil, err
		}
		seed.Containers = conts
		seed.Contid = func(tid int32) (contid.ID, bool) {
			id, ok, err := t.tr.Contid(int(tid))
			return id, err == nil && ok
		}
	} else {
		cc.Source = t.pc
	}
	c := core.New(cc)
	tasks, st, err := procfs.Host.Scan()
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	seed.Tasks, seed.ScanEnd = tasks, core.Monotonic()
	c.Seed(seed)
	t.log.Info("seeded from /proc and pinned state", "tasks", st.Tasks, "vanished", st.Vanished, "containers", len(seed.Containers))
	return c, nil
}

// KernelContid reads the contid the kernel holds for a thread; nil on the
// proc connector, which keeps none.
func (t *Tasks) KernelContid() func(tid int32) (contid.ID, bool, error) {
	if t.tr == nil {
		return nil
	}
	return func(tid int32) (contid.ID, bool, error) { return t.tr.Contid(int(tid)) }
}

// Counters adds the source's loss counters to c; safe from any goroutine.
func (t *Tasks) Counters(c map[string]uint64) {
	if t.tr != nil {
		if ts, err := t.tr.Stats(); err == nil {
			c["ring_lost"] = ts.Lost
			c["inherit_failures"] = ts.InheritFailures
		}
		return
	}
	st := t.pc.Stats()
	c["connector_overflows"] = st.Overflows
	c["connector_seq_gaps"] = st.SeqGaps
	c["connector_malformed"] = st.Malformed
}

// Close closes the source and the pinned map (the pins stay), and
// completes the trace.
func (t *Tasks) Close() error {
	var err error
	if t.rec != nil {
		err = t.rec.Close()
	}
	if t.tr != nil {
		t.pins.Close()
		return errors.Join(err, t.tr.Close())
	}
	return errors.Join(err, t.pc.Close())
}
