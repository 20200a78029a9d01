package tracker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/contid/contid/internal/source/procfs"
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
// contid map with every contid in it, and the pinned container objects,
// are freed. Missing pins are not an error.
func Unpin(dir string) error {
	if dir == "" {
		dir = DefaultPinDir
	}
	var errs []error
	for _, name := range []string{pinInherit, pinInherit + "_new", pinKeep, pinKeep + "_new", pinTaskMap, pinStatsMap, pinCgroupMap, pinConts} {
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
