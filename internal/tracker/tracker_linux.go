package tracker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/procfs"
	"github.com/contid/contid/internal/taskevent"
)

// DefaultPinDir is where Open pins its state when Config.PinDir is empty.
const DefaultPinDir = "/sys/fs/bpf/contid"

// DefaultRingSize is the ring buffer size when Config.RingSize is 0: room
// for about 16,000 events (they are 248–256 bytes, plus an 8-byte header).
const DefaultRingSize = 4 << 20

const (
	bpffsRoot   = "/sys/fs/bpf"
	tracefsRoot = "/sys/kernel/tracing"

	// Pin names under Config.PinDir. The maps are pinned by name
	// (LIBBPF_PIN_BY_NAME in bpf/tracker.c).
	pinTaskMap   = "contid_task"
	pinStatsMap  = "contid_stats"
	pinCgroupMap = "contid_cgroups"
	pinInherit   = "inherit"
	pinKeep      = "keep_on_exec"

	valSet   = 1 // task_val.flags: contid holds a registered value
	valGroup = 2 // leader only: tagged for its whole group (informational)

	cntRingbufFull  = 0
	cntInheritFail  = 1
	exitGroupDeadTP = "btf_trace_sched_process_exit"
	prepareExecTP   = "btf_trace_sched_prepare_exec"
)

// Config configures Open. The zero value means the defaults.
type Config struct {
	// PinDir is a directory on a bpf filesystem for the pinned state
	// (default DefaultPinDir). It must not be shared by two trackers.
	PinDir string
	// RingSize is the ring buffer size in bytes: a power of two and a
	// multiple of the page size (default DefaultRingSize).
	RingSize int
	// OnlyTagged makes the kernel report only events of tasks that have a
	// contid (for a fork: whose child inherits one).
	OnlyTagged bool
	// Batch bounds how long an event may wait in the ring buffer before
	// Read sees it, in exchange for fewer wakeups of the reader: an event
	// wakes the reader only if the last wakeup is at least Batch old (or a
	// quarter of the ring is full); Read collects the rest every Batch
	// while events flow. So a lone event is seen at once, and a burst
	// costs one wakeup per Batch. Each wakeup costs the task that caused
	// it several microseconds (measured in a VM: 3–8 µs per fork), which
	// is most of what the tracker costs a fork when every event wakes the
	// reader. Zero means DefaultBatch; negative means a wakeup for every
	// event.
	Batch time.Duration
	// NSScan is how often the kernel side compares every task's namespaces
	// with what was last reported for it and reports changes (KindNS,
	// Op NSScan). Zero means DefaultNSScan, or off with NSSyscalls;
	// negative means off (call ScanNS yourself). Fork, exec and exit
	// events carry the namespaces regardless.
	NSScan time.Duration
	// NSSyscalls reports setns and unshare exactly as they return, from
	// the syscall tracepoints. This costs every syscall of every task on
	// the machine (~+50 ns measured, whichever syscall is traced: the
	// kernel then routes all syscalls through its tracing slow path), so
	// it is off by default. It needs tracefs, which Open mounts.
	NSSyscalls bool
}

// DefaultNSScan is the namespace scan interval when Config.NSScan is 0.
const DefaultNSScan = time.Second

// DefaultBatch is the wakeup batching period when Config.Batch is 0.
const DefaultBatch = 5 * time.Millisecond

// Stats are the kernel side's loss counters, cumulative since the pinned
// stats map was created (they survive Close and Open).
type Stats struct {
	// Lost counts events dropped because the ring buffer was full.
	Lost uint64
	// InheritFailures counts new tasks whose parent had a contid but whose
	// task storage could not be created (out of memory): such a task runs
	// without a contid. It should always be 0.
	InheritFailures uint64
}

// Tracker is the loaded and attached kernel side. Read must be called from
// one goroutine at a time; every other method is safe for concurrent use,
// also with Read. Close must not race with the other methods except Read,
// which it interrupts.
type Tracker struct {
	log    *slog.Logger
	pinDir string
	nsDev  uint32
	batch  time.Duration

	objs  trackerObjects
	links []link.Link // event programs; inherit and keep_on_exec live on in their pins
	// The kernel has sched_prepare_exec: new threads share their leader's
	// value (bpf/tracker.c, threads_share).
	threadsShare bool
	rd           *ringbuf.Reader

	scan     *link.Iter
	scanMu   sync.Mutex
	stopScan chan struct{} // nil without a scan loop
	scanDone chan struct{}

	readMu  sync.Mutex
	rec     ringbuf.Record
	quiet   bool // batching: a whole period passed without events
	gotData bool // batching: records returned since the last deadline

	watcher // Wait

	closeOnce sync.Once
	closeErr  error
}

// Open loads the BPF objects, reuses or creates the pinned contid map,
// attaches the programs, runs a first namespace scan and starts the ring
// buffer. It mounts bpffs at /sys/fs/bpf (and, with Config.NSSyscalls,
// tracefs at /sys/kernel/tracing) when not mounted. It needs root (CAP_BPF,
// CAP_PERFMON, CAP_SYS_ADMIN for the mounts). Logging is optional (nil).
//
// Contids written by an earlier Open with the same PinDir are kept: the map
// is reused, and the inheritance program, pinned beside it, kept copying
// contids to new tasks while no tracker was open. A pin left by an
// incompatible version is an error wrapping ebpf.ErrMapIncompatible; remove
// the directory (which drops every contid) to start afresh.
func Open(cfg Config, log *slog.Logger) (*Tracker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.PinDir == "" {
		cfg.PinDir = DefaultPinDir
	}
	if cfg.RingSize == 0 {
		cfg.RingSize = DefaultRingSize
	}
	if cfg.RingSize < os.Getpagesize() || cfg.RingSize&(cfg.RingSize-1) != 0 {
		return nil, fmt.Errorf("tracker: ring size %d is not a power of two of at least a page", cfg.RingSize)
	}
	switch {
	case cfg.Batch == 0:
		cfg.Batch = DefaultBatch
	case cfg.Batch < 0:
		cfg.Batch = 0
	}

	if err := ensureBPFFS(cfg.PinDir); err != nil {
		return nil, err
	}
	if cfg.NSSyscalls {
		if err := ensureTracefs(); err != nil {
			return nil, err
		}
	}
	if cfg.NSScan == 0 && !cfg.NSSyscalls {
		cfg.NSScan = DefaultNSScan
	}
	nsDev, err := procfs.NSDev()
	if err != nil {
		return nil, err
	}

	spec, share, err := specFor(cfg)
	if err != nil {
		return nil, err
	}
	t := &Tracker{log: log, pinDir: cfg.PinDir, nsDev: nsDev, batch: cfg.Batch, threadsShare: share}
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: cfg.PinDir}}
	if err := spec.LoadAndAssign(&t.objs, opts); err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("tracker: pinned maps in %s come from an incompatible version; "+
				"removing the directory drops every contid: %w", cfg.PinDir, err)
		}
		return nil, fmt.Errorf("tracker: load: %w", err)
	}

	if err := t.attach(cfg.NSSyscalls); err != nil {
		t.objs.Close()
		return nil, err
	}
	// One scan now records every task's namespaces, so that the next
	// scans report changes from this point on.
	if err := t.ScanNS(); err != nil {
		t.closeLinks()
		t.objs.Close()
		return nil, err
	}
	t.rd, err = ringbuf.NewReader(t.objs.Events)
	if err != nil {
		t.closeLinks()
		t.objs.Close()
		return nil, fmt.Errorf("tracker: ring buffer reader: %w", err)
	}
	if cfg.NSScan > 0 {
		t.stopScan = make(chan struct{})
		t.scanDone = make(chan struct{})
		go t.scanLoop(cfg.NSScan)
	}
	log.Debug("tracker attached", "pin_dir", cfg.PinDir, "ring_size", cfg.RingSize,
		"only_tagged", cfg.OnlyTagged, "batch", cfg.Batch, "ns_scan", cfg.NSScan, "ns_syscalls", cfg.NSSyscalls,
		"threads_share", share)
	return t, nil
}

// specFor returns the collection spec configured for this kernel and cfg,
// and whether new threads share their leader's value.
func specFor(cfg Config) (*ebpf.CollectionSpec, bool, error) {
	spec, err := loadTracker()
	if err != nil {
		return nil, false, fmt.Errorf("tracker: %w", err)
	}
	if cfg.RingSize != 0 {
		spec.Maps[trackerMapEvents].MaxEntries = uint32(cfg.RingSize)
	}
	kspec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, false, fmt.Errorf("tracker: kernel BTF: %w", err)
	}
	gd, err := exitHasGroupDead(kspec)
	if err != nil {
		return nil, false, err
	}
	// Without sched_prepare_exec (before Linux 6.10) keep_on_exec cannot
	// run, so every thread gets storage of its own, as it must then; the
	// program is aimed at a tracepoint that exists, to load, and is never
	// attached.
	_, err = kspec.AnyTypeByName(prepareExecTP)
	share := err == nil
	if !share {
		spec.Programs[trackerProgKeepOnExec].AttachTo = "sched_process_exec"
	}
	for name, v := range map[string]any{
		trackerVarExitHasGroupDead: gd,
		trackerVarOnlyTagged:       cfg.OnlyTagged,
		trackerVarThreadsShare:     share,
		// cfg.Batch is final here: > 0 batches, 0 wakes for every event.
		trackerVarBatchNs:     uint64(max(cfg.Batch, 0)),
		trackerVarWakeupBytes: uint64(cfg.RingSize / 4),
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, false, fmt.Errorf("tracker: %s: %w", name, err)
		}
	}
	return spec, share, nil
}

// exitHasGroupDead reports whether sched_process_exit passes group_dead
// (Linux 6.16+), read from the kernel's BTF.
func exitHasGroupDead(kspec *btf.Spec) (bool, error) {
	typ, err := kspec.AnyTypeByName(exitGroupDeadTP)
	if err != nil {
		return false, fmt.Errorf("tracker: kernel BTF: %s: %w", exitGroupDeadTP, err)
	}
	td, ok := typ.(*btf.Typedef)
	if !ok {
		return false, fmt.Errorf("tracker: kernel BTF: %s is a %T", exitGroupDeadTP, typ)
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return false, fmt.Errorf("tracker: kernel BTF: %s is not a function pointer", exitGroupDeadTP)
	}
	fp, ok := ptr.Target.(*btf.FuncProto)
	if !ok {
		return false, fmt.Errorf("tracker: kernel BTF: %s is not a function pointer", exitGroupDeadTP)
	}
	// (void *data, struct task_struct *p[, bool group_dead])
	return len(fp.Params) >= 3, nil
}

// attach attaches and pins keep_on_exec (where threads share their
// leader's value), then the inheritance program, which relies on it for
// threads, then the event programs, after inherit so that fork events see
// the copied value.
func (t *Tracker) attach(nsSyscalls bool) error {
	if t.threadsShare {
		if err := t.attachPinned(t.objs.KeepOnExec, pinKeep); err != nil {
			return err
		}
	}
	if err := t.attachPinned(t.objs.Inherit, pinInherit); err != nil {
		return err
	}

	for _, tp := range []struct {
		name string
		prog *ebpf.Program
	}{
		{"on_fork", t.objs.OnFork},
		{"on_exec", t.objs.OnExec},
		{"on_exit", t.objs.OnExit},
		{"on_cgroup_attach", t.objs.OnCgroupAttach},
	} {
		l, err := link.AttachTracing(link.TracingOptions{Program: tp.prog, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			t.closeLinks()
			return fmt.Errorf("tracker: attach %s: %w", tp.name, err)
		}
		t.links = append(t.links, l)
	}
	it, err := link.AttachIter(link.IterOptions{Program: t.objs.ScanNs})
	if err != nil {
		t.closeLinks()
		return fmt.Errorf("tracker: attach scan_ns: %w", err)
	}
	t.scan = it
	t.links = append(t.links, it)
	if !nsSyscalls {
		return nil
	}
	for _, tp := range []struct {
		name string
		prog *ebpf.Program
	}{
		{"sys_exit_setns", t.objs.OnSetns},
		{"sys_exit_unshare", t.objs.OnUnshare},
	} {
		l, err := link.Tracepoint("syscalls", tp.name, tp.prog, nil)
		if err != nil {
			t.closeLinks()
			return fmt.Errorf("tracker: attach syscalls/%s: %w", tp.name, err)
		}
		t.links = append(t.links, l)
	}
	return nil
}

// attachPinned attaches prog, which must keep running while no tracker is
// open, and pins its link under name. It pins under a temporary name, then
// renames over the old pin: the new program is attached before the old one
// goes, so no task is created or exec'd without one of them running.
func (t *Tracker) attachPinned(prog *ebpf.Program, name string) error {
	l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		return fmt.Errorf("tracker: attach %s: %w", name, err)
	}
	defer l.Close() // the pin keeps it attached
	final := filepath.Join(t.pinDir, name)
	tmp := final + "_new" // bpffs refuses names with a dot
	_ = os.Remove(tmp)
	if err := l.Pin(tmp); err != nil {
		return fmt.Errorf("tracker: pin %s link: %w", name, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("tracker: replace %s link pin: %w", name, err)
	}
	return nil
}

func (t *Tracker) closeLinks() error {
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	t.links = nil
	return errors.Join(errs...)
}

// Close detaches the event programs and frees the ring buffer. The pinned
// contid map and the pinned inheritance program stay: contids keep being
// inherited, and the next Open with the same PinDir carries on. Use Unpin
// to remove them. Close interrupts a blocked Read.
func (t *Tracker) Close() error {
	t.closeOnce.Do(func() {
		var errs []error
		if t.stopScan != nil {
			close(t.stopScan)
			<-t.scanDone
		}
		// Read, TryRead and Wait see closed; the flush wakes a blocked
		// Read, which then returns os.ErrClosed and releases readMu.
		t.closed.Store(true)
		if t.rd != nil {
			errs = append(errs, t.rd.Flush())
		}
		t.watchOnce.Do(func() { t.watchErr = fmt.Errorf("tracker: wait: %w", os.ErrClosed) })
		if t.watch != nil {
			errs = append(errs, t.watch.Close()) // interrupts Wait
		}
		// Read and TryRead hold readMu while they use the ring: close it
		// and the objects only once neither runs (the ring reader's
		// AvailableBytes is not safe against its Close).
		t.readMu.Lock()
		if t.rd != nil {
			errs = append(errs, t.rd.Close())
		}
		errs = append(errs, t.closeLinks(), t.objs.Close())
		t.readMu.Unlock()
		if err := errors.Join(errs...); err != nil {
			t.closeErr = fmt.Errorf("tracker: close: %w", err)
		}
	})
	return t.closeErr
}

// Unpin removes the pinned state in dir ("" means DefaultPinDir): the
// inheritance program is detached and, once no tracker holds it open, the
// contid map with every contid in it is freed. Missing pins are not an
// error.
func Unpin(dir string) error {
	if dir == "" {
		dir = DefaultPinDir
	}
	var errs []error
	for _, name := range []string{pinInherit, pinInherit + "_new", pinKeep, pinKeep + "_new", pinTaskMap, pinStatsMap, pinCgroupMap} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tracker: unpin: %w", err)
	}
	return nil
}

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

// NSDev is the device number of the nsfs entries (stat -L -c %d
// /proc/self/ns/net), which Read writes into every ns.ID.
func (t *Tracker) NSDev() uint32 { return t.nsDev }

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

// SetContidFD sets the contid of the task a pidfd refers to (a process
// pidfd names its leader thread, a PIDFD_THREAD pidfd one thread). Only
// that task's storage changes; tasks it creates afterwards inherit. Use
// SetGroup for a whole thread group. The unset value is refused (EINVAL).
func (t *Tracker) SetContidFD(pidfd int, id contid.ID) error {
	return t.store(pidfd, id, valSet)
}

// SetContid is SetContidFD for a tid. A bare tid can name a different task
// by the time it is used; callers that must be race-free hold a pidfd.
func (t *Tracker) SetContid(tid int, id contid.ID) error {
	fd, err := procfs.OpenThread(tid)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return t.SetContidFD(fd, id)
}

func (t *Tracker) store(pidfd int, id contid.ID, flags uint32) error {
	if id == contid.Unset {
		return fmt.Errorf("tracker: set contid: %v is the unset value: %w", uint64(id), unix.EINVAL)
	}
	v := trackerTaskVal{Contid: uint64(id), Flags: flags}
	var err error
	// The kernel occasionally answers EAGAIN (about 1 in 20,000 updates
	// measured on 6.18, with or without concurrent BPF use of the task's
	// storage): a transient failure to get the storage element; retry.
	for try := 0; try < storeTries; try++ {
		err = t.objs.ContidTask.Update(uint32(pidfd), &v, ebpf.UpdateAny)
		if !errors.Is(err, unix.EAGAIN) {
			break
		}
		time.Sleep(time.Duration(try+1) * 50 * time.Microsecond)
	}
	if err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			// The kernel's answer for a pidfd whose task is gone.
			err = unix.ESRCH
		}
		return fmt.Errorf("tracker: set contid through pidfd %d: %w", pidfd, err)
	}
	return nil
}

// ContidFD returns the contid of the task a pidfd refers to; ok is false
// when the task has none.
func (t *Tracker) ContidFD(pidfd int) (id contid.ID, ok bool, err error) {
	if id, ok, err = t.ownContidFD(pidfd); err != nil || ok {
		return id, ok, err
	}
	// A thread without a value of its own has its leader's (task_contid
	// in bpf/tracker.c).
	tid, tgid, err := procfs.PidfdIDs(pidfd)
	if err != nil {
		return contid.Unset, false, fmt.Errorf("tracker: read contid through pidfd %d: %w", pidfd, err)
	}
	if tid == tgid {
		return contid.Unset, false, nil
	}
	leader, err := procfs.OpenThread(tgid)
	if err != nil {
		return contid.Unset, false, err
	}
	defer unix.Close(leader)
	// The thread is still alive and in tgid, so tgid was not reused
	// between PidfdIDs and OpenThread.
	if _, again, err := procfs.PidfdIDs(pidfd); err != nil || again != tgid {
		return contid.Unset, false, fmt.Errorf("tracker: thread group %d changed while reading it: %w", tgid, unix.ESRCH)
	}
	// A zombie leader (it exited first) still answers for its storage.
	return t.ownContidFD(leader)
}

// ownContidFD returns the value that the task pidfd refers to holds itself,
// not its leader's.
func (t *Tracker) ownContidFD(pidfd int) (id contid.ID, ok bool, err error) {
	var v trackerTaskVal
	if err := t.objs.ContidTask.Lookup(uint32(pidfd), &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			// No storage, or no task: the kernel says ENOENT for both.
			if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); errors.Is(err, unix.ESRCH) {
				return contid.Unset, false, fmt.Errorf("tracker: read contid through pidfd %d: %w", pidfd, err)
			}
			return contid.Unset, false, nil
		}
		return contid.Unset, false, fmt.Errorf("tracker: read contid through pidfd %d: %w", pidfd, err)
	}
	if v.Flags&valSet == 0 {
		return contid.Unset, false, nil
	}
	return contid.ID(v.Contid), true, nil
}

// Contid returns the contid of thread tid; ok is false when it has none.
// A tid that does not exist is an error wrapping unix.ESRCH.
func (t *Tracker) Contid(tid int) (id contid.ID, ok bool, err error) {
	fd, err := procfs.OpenThread(tid)
	if err != nil {
		return contid.Unset, false, err
	}
	defer unix.Close(fd)
	return t.ContidFD(fd)
}

// storeTries bounds the retries of a storage update answered with EAGAIN.
const storeTries = 10

// maxGroupPasses bounds SetGroup's re-listing; a group that keeps changing
// its threads for this long is reported, not chased forever.
const maxGroupPasses = 64

// SetGroup gives every thread of the thread group pid belongs to (any tid
// names its group, SPEC §3) the contid id. See SetGroupFD.
//
// start, when not 0, is the start time of the group's leader that the
// caller checked (clock ticks since boot, /proc/PID/stat field 22): the
// pid is opened as a pidfd first and the process behind it must have that
// start time, so a pid reused since the caller's checks is ESRCH and never
// tagged. The pidfd then pins the process until it is tagged.
func (t *Tracker) SetGroup(pid int, start uint64, id contid.ID) error {
	fd, err := procfs.OpenThread(pid)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if start != 0 {
		if err := procfs.CheckStart(fd, start); err != nil {
			return err
		}
	}
	return t.SetGroupFD(fd, id)
}

// SetGroupFD gives every thread of the thread group of the task pidfd
// refers to the contid id, including threads and child processes created
// while it runs. It is race-free because of the order of its steps:
//
//  1. The group leader's storage gets id with the group flag. From then on
//     the kernel's inheritance program gives id to every task any thread of
//     the group creates, tagged or not yet (it falls back to the leader's
//     value when the creating thread has none).
//  2. Every thread in /proc/TGID/task gets id through its own pidfd. A
//     thread created after step 1 already inherited id; one created before
//     step 1 is in the listing, because threads are listed from the moment
//     they exist until they are reaped.
//  3. The listing is repeated until a pass finds every thread tagged:
//     this catches a non-leader thread that exec'd and took the leader's
//     tid (the leader's value moves with neither).
//
// Each listed tid is checked to belong to the group (PIDFD_GET_INFO, or
// /proc when that ioctl is missing) after its pidfd is open, so a tid reused
// by another process during the walk is never tagged. The leader's flag
// stays; it only matters while some thread of the group has no contid.
func (t *Tracker) SetGroupFD(pidfd int, id contid.ID) error {
	if id == contid.Unset {
		return fmt.Errorf("tracker: set group contid: %v is the unset value: %w", uint64(id), unix.EINVAL)
	}
	tgid, err := procfs.PidfdTgid(pidfd)
	if err != nil {
		return err
	}
	leader, err := unix.PidfdOpen(tgid, 0)
	if err != nil {
		return fmt.Errorf("tracker: pidfd of thread group %d: %w", tgid, err)
	}
	defer unix.Close(leader)
	// The thread behind pidfd is alive and in group tgid, so tgid was not
	// reused between pidfdTgid and PidfdOpen.
	if again, err := procfs.PidfdTgid(pidfd); err != nil || again != tgid {
		return fmt.Errorf("tracker: thread group %d changed while opening it: %w", tgid, unix.ESRCH)
	}
	if err := t.store(leader, id, valSet|valGroup); err != nil {
		return err
	}
	for pass := 0; pass < maxGroupPasses; pass++ {
		changed, err := t.tagThreads(tgid, id)
		if err != nil {
			return err
		}
		// Still alive: the listing was of this group's tgid.
		if err := unix.PidfdSendSignal(leader, 0, nil, 0); err != nil {
			return fmt.Errorf("tracker: thread group %d: %w", tgid, err)
		}
		if !changed {
			return nil
		}
	}
	return fmt.Errorf("tracker: thread group %d kept changing its threads: %w", tgid, unix.EAGAIN)
}

// tagThreads tags every listed thread of tgid that does not carry id yet and
// reports whether it tagged any.
func (t *Tracker) tagThreads(tgid int, id contid.ID) (bool, error) {
	tids, err := procfs.Host.Threads(int32(tgid))
	if err != nil {
		return false, fmt.Errorf("tracker: list threads: %w", err)
	}
	changed := false
	for _, tid := range tids {
		ok, err := t.tagThread(tgid, int(tid), id)
		if err != nil {
			return false, err
		}
		changed = changed || ok
	}
	return changed, nil
}

func (t *Tracker) tagThread(tgid, tid int, id contid.ID) (bool, error) {
	fd, err := unix.PidfdOpen(tid, unix.PIDFD_THREAD)
	if errors.Is(err, unix.ESRCH) {
		return false, nil // exited since the listing
	}
	if err != nil {
		return false, fmt.Errorf("tracker: pidfd of thread %d: %w", tid, err)
	}
	defer unix.Close(fd)
	g, err := procfs.PidfdTgid(fd)
	if errors.Is(err, unix.ESRCH) || (err == nil && g != tgid) {
		return false, nil // exited, or the tid now names another process's thread
	}
	if err != nil {
		return false, err
	}
	cur, ok, err := t.ownContidFD(fd)
	if err != nil {
		return false, err
	}
	if ok && cur == id {
		return false, nil
	}
	if err := t.store(fd, id, valSet); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// ensureBPFFS mounts bpffs at /sys/fs/bpf when nothing is mounted there and
// creates dir, which must be on a bpf filesystem.
func ensureBPFFS(dir string) error {
	if !isFS(bpffsRoot, unix.BPF_FS_MAGIC) {
		if err := unix.Mount("bpf", bpffsRoot, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("tracker: mount bpffs at %s: %w", bpffsRoot, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("tracker: pin dir: %w", err)
	}
	if !isFS(dir, unix.BPF_FS_MAGIC) {
		return fmt.Errorf("tracker: pin dir %s is not on a bpf filesystem: %w", dir, unix.EINVAL)
	}
	return nil
}

// ensureTracefs mounts tracefs when it is not mounted; the syscall
// tracepoints need it. It must run before the first link.Tracepoint of the
// process, which remembers where tracefs was.
func ensureTracefs() error {
	if isFS(tracefsRoot, unix.TRACEFS_MAGIC) || isFS("/sys/kernel/debug/tracing", unix.TRACEFS_MAGIC) {
		return nil
	}
	if err := unix.Mount("nodev", tracefsRoot, "tracefs", 0, ""); err != nil {
		return fmt.Errorf("tracker: mount tracefs at %s: %w", tracefsRoot, err)
	}
	return nil
}

func isFS(path string, magic int64) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && int64(st.Type) == magic
}

// BindCgroup binds a cgroup (its hierarchy id, 0 for the unified one, and
// the inode number of its directory) to container id: from then on a
// process without a contid that is moved into it, or created in it with
// clone3(CLONE_INTO_CGROUP), gets id in the kernel, and a KindJoin event
// (for a move) or a fork event with JoinedCgroup reports it. The binding is
// pinned with the contid map.
func (t *Tracker) BindCgroup(hierarchy uint32, ino uint64, id contid.ID) error {
	k := trackerCgKey{Hierarchy: hierarchy, Id: ino}
	v := uint64(id)
	if err := t.objs.ContidCgroups.Update(&k, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("tracker: bind cgroup %d:%d to %d: %w", hierarchy, ino, uint64(id), err)
	}
	return nil
}

// UnbindContid removes every cgroup binding of container id.
func (t *Tracker) UnbindContid(id contid.ID) error {
	var (
		k    trackerCgKey
		v    uint64
		dead []trackerCgKey
	)
	it := t.objs.ContidCgroups.Iterate()
	for it.Next(&k, &v) {
		if v == uint64(id) {
			dead = append(dead, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("tracker: list cgroup bindings: %w", err)
	}
	for i := range dead {
		if err := t.objs.ContidCgroups.Delete(&dead[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("tracker: unbind cgroup of %d: %w", uint64(id), err)
		}
	}
	return nil
}
