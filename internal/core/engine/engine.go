// Package engine is contid's pure core: the state of spec §2–§4 (tasks,
// container objects, capcontid flags, namespaces) and the records of spec
// §5.1 that follow from events applied to it.
//
// The engine does no I/O, reads no clock and starts no goroutines: every
// input carries its own time, and the same inputs always give byte-identical
// records. It is not safe for concurrent use; its owner serialises inputs.
//
// Records go to the Sink synchronously, one record per audit event, stamped
// with the input's time and serial 0 (the writer assigns serials). Nothing
// is dropped: inputs the engine cannot place (an exit of an unknown task, a
// fork whose parent it never saw) are counted in Stats.
package engine

import (
	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/records"
)

// Sink receives the engine's records. Emit is called synchronously; the
// record and its Fields belong to the sink afterwards.
type Sink interface {
	Emit(r records.Record)
}

// Kernel applies registrations where the kernel keeps them. The daemon
// implements it with the eBPF tracker; replay has none. The engine calls it
// after a request has passed every check and before it changes any state,
// so a registration the kernel refuses leaves the engine as it was.
type Kernel interface {
	// Tag stores id in the task storage of every thread of process
	// target, and of every task it creates meanwhile, before it returns.
	// A process under target.PID that did not start at target.Start (the
	// pid was reused after the engine's checks) is refused with ESRCH.
	Tag(target TaskRef, id contid.ID) error
	// Keep stores a new container object so that a restarted daemon can
	// seed it; Forget removes it once the container is dropped.
	Keep(c ContainerInfo) error
	Forget(id contid.ID) error
}

// Config configures an Engine. The zero value is usable: records are
// discarded and registrations touch no kernel.
type Config struct {
	Sink   Sink
	Kernel Kernel
	// History is how many exited processes are remembered for attributing
	// records that arrive after their subject exited; 0 means 65536.
	History int
	// MaxPerOwner bounds the live containers one orchestrator process owns
	// when it registers on the strength of capcontid: a registration that
	// would create one more is refused with EDQUOT (and written, like
	// every attempt). Callers with CAP_AUDIT_CONTROL are not bounded; they
	// could switch audit off altogether. 0 means no bound.
	MaxPerOwner int
	// Requests, when set, is called after each registration request
	// (SetContid, SetCapcontid) with the request, so a recording of the
	// engine's inputs holds the requests the API made (package trace).
	Requests func(in Input)
}

// Stats counts what the engine saw and could not place. Nothing is dropped
// silently: every anomaly has a counter.
type Stats struct {
	Inputs        uint64
	Forks         uint64
	Exits         uint64
	Records       uint64
	UnknownParent uint64 // forks whose parent the engine never saw
	UnknownExit   uint64 // exits of tasks the engine never saw
	UnknownJoin   uint64 // joins of a process or into a container the engine does not know
	Evicted       uint64 // tasks replaced by a fork reusing their tid (a missed exit)
	Mismatch      uint64 // forks where the kernel's copied contid differs from the engine's
	KernelErrors  uint64 // Keep/Forget failures (registrations the kernel refused are records)
	StaleNS       uint64 // creators whose namespace change was seen first through a child
	QuotaRefused  uint64 // registrations refused because the owner had MaxPerOwner live containers
}

// Engine holds the state. Create it with New.
type Engine struct {
	sink     Sink
	kernel   Kernel
	requests func(Input) // Config.Requests

	idx   map[int32]uint32 // tid → index into tasks
	tasks []task
	free  []uint32

	sets     []nsSet
	setIdx   map[ns.Set]int32
	freeSets []int32
	nsRefs   map[nsKey]nsRef // each namespace a live set holds

	conts map[contid.ID]*container
	owned map[TaskRef]int32 // live containers per owner
	max   int32             // Config.MaxPerOwner
	nets  map[ns.ID]*netInfo
	hist  history
	attr  AttributionStats

	stats Stats
}

type task struct {
	tid, tgid int32
	ppid      int32  // parent process (leader entries only)
	start     uint64 // this task's start time
	pstart    uint64 // the parent process's start time
	born      int64  // unix ns of the fork (0: before the engine started)
	cont      *container
	set       int32 // namespace set, -1 once the task has exited
	children  int32 // live child processes (leader entries only)
	threads   int32 // live threads of the group, leader included (leader only)
	gone      bool  // the leader has exited; the group lives on in threads
	capcontid bool
	// crossed: this uncontained task, or the task it was forked from,
	// entered a container's namespace; its namespace changes are then
	// written even where only the namespace it leaves is a container's.
	crossed bool
	subj    Subject
}

type container struct {
	id       contid.ID
	owner    TaskRef
	parent   *container
	chain    contid.Chain // this ID then its ancestors'; fixed at creation
	name     string
	tasks    int32 // live member tasks
	children int32 // live nested containers
	created  int64
}

type nsSet struct {
	ids    ns.Set
	refs   int32
	marked bool // every namespace in ids is marked as a container's
}

// nsRef is one live namespace: how many live sets hold it, and whether a
// contained task has used it (a container's namespace, spec §5.1). The
// mark lasts while the namespace is held, so the state is bounded by the
// live tasks' namespaces, whoever made them.
type nsRef struct {
	refs int32
	cont bool
}

type nsKey struct {
	typ ns.Type
	id  ns.ID
}

// netInfo lists the containers with a task in one network namespace,
// newest first, each with its number of tasks there.
type netInfo struct {
	uses []netUse
}

type netUse struct {
	c *container
	n int32
}

// New returns an empty engine.
func New(cfg Config) *Engine {
	return &Engine{
		sink:     cfg.Sink,
		kernel:   cfg.Kernel,
		requests: cfg.Requests,
		idx:      make(map[int32]uint32),
		setIdx:   make(map[ns.Set]int32),
		nsRefs:   make(map[nsKey]nsRef),
		conts:    make(map[contid.ID]*container),
		owned:    make(map[TaskRef]int32),
		max:      int32(min(max(cfg.MaxPerOwner, 0), 1<<30)),
		nets:     make(map[ns.ID]*netInfo),
		hist:     newHistory(cfg.History),
	}
}

// Stats returns the counters.
func (e *Engine) Stats() Stats { return e.stats }

// Apply dispatches one input. It returns the refusal of a SetContid or
// SetCapcontid request, or an error for an invalid seed; other inputs
// always apply.
func (e *Engine) Apply(in Input) error {
	switch ev := in.(type) {
	case Fork:
		e.Fork(ev)
	case Exec:
		e.Exec(ev)
	case Exit:
		e.Exit(ev)
	case NSChange:
		e.NSChange(ev)
	case Join:
		return e.Join(ev)
	case SetContid:
		_, err := e.SetContid(ev)
		return err
	case SetCapcontid:
		return e.SetCapcontid(ev)
	case SeedContainer:
		return e.SeedContainer(ev)
	case SeedTask:
		return e.SeedTask(ev)
	}
	return nil
}

func (e *Engine) emit(r records.Record) {
	e.stats.Records++
	if e.sink != nil {
		e.sink.Emit(r)
	}
}

// lookup returns the task with tid, or nil.
func (e *Engine) lookup(tid int32) *task {
	i, ok := e.idx[tid]
	if !ok {
		return nil
	}
	return &e.tasks[i]
}

// leader returns the leader entry of a task's thread group, or nil.
func (e *Engine) leader(t *task) *task {
	if t.tid == t.tgid {
		return t
	}
	return e.lookup(t.tgid)
}

// process returns the leader of the process named by ref, checking its
// start time when ref has one, so a reused pid never matches.
func (e *Engine) process(ref TaskRef) *task {
	t := e.lookup(ref.PID)
	if t == nil || t.tid != t.tgid || (ref.Start != 0 && t.start != ref.Start) {
		return nil
	}
	return t
}

// parent returns the live parent process of a leader, or nil when it has
// exited (its children are then orphans: descendants of nobody).
func (e *Engine) parent(l *task) *task {
	if l.ppid == 0 {
		return nil
	}
	return e.process(TaskRef{PID: l.ppid, Start: l.pstart})
}

func (t *task) ref() TaskRef { return TaskRef{PID: t.tgid, Start: t.start} }

// insert adds t, whose set reference and container are already decided,
// and accounts its container use.
func (e *Engine) insert(t task) *task {
	var i uint32
	if n := len(e.free); n > 0 {
		i = e.free[n-1]
		e.free = e.free[:n-1]
		e.tasks[i] = t
	} else {
		i = uint32(len(e.tasks))
		e.tasks = append(e.tasks, t)
	}
	e.idx[t.tid] = i
	p := &e.tasks[i]
	if p.cont != nil {
		e.use(p.cont, p.set)
	}
	return p
}

func (e *Engine) remove(tid int32) {
	i := e.idx[tid]
	delete(e.idx, tid)
	e.tasks[i] = task{}
	e.free = append(e.free, i)
}

// Fork applies a new task. Children inherit the creating task's contid,
// namespaces and subject; a namespace the engine has not seen is NS_CREATE.
func (e *Engine) Fork(ev Fork) {
	e.stats.Inputs++
	e.stats.Forks++
	if e.lookup(ev.Child) != nil {
		// The kernel never reuses a live tid: we missed an exit.
		e.stats.Evicted++
		e.exit(ev.Time, ev.Child)
	}
	thread := ev.Child != ev.ChildTGID
	t := task{tid: ev.Child, tgid: ev.ChildTGID, start: ev.Start, born: ev.Time, set: -1}
	p := e.lookup(ev.Parent)
	var l *task // the new task's leader, for a thread
	if thread {
		l = e.lookup(ev.ChildTGID)
		if l == nil || l.gone {
			p = nil // cannot attach a thread to an unknown group
		}
	}
	if p == nil || p.set < 0 {
		e.stats.UnknownParent++
		if ev.HasContid && ev.Contid != contid.Unset {
			t.cont = e.orphanContainer(ev.Contid, ev.Time)
		}
		t.set = e.acquire(ev.NS, nil)
		if ev.Subject != nil {
			t.subj = *ev.Subject
		}
		if !thread {
			t.threads = 1
		} else if l != nil && !l.gone {
			l.threads++
		} else {
			// A thread of a group we never saw: track it as its own group
			// so its exit balances.
			t.tgid = t.tid
			t.threads = 1
		}
		e.insert(t)
		return
	}
	t.cont = p.cont
	t.crossed = p.crossed
	t.subj = p.subj
	if ev.Subject != nil {
		t.subj = *ev.Subject
	}
	if ev.HasContid && ev.Contid != p.cont.idOrUnset() {
		e.stats.Mismatch++
	}
	if ev.HasCloneFlags {
		e.catchUp(ev.Time, p, &ev)
	}
	old := e.sets[p.set].ids
	next := merge(old, &ev.NS)
	if next == old {
		t.set = p.set
		e.sets[p.set].refs++
	} else {
		var fresh [ns.NumTypes]bool
		t.set = e.acquire(next, &fresh)
		e.nsCreated(ev.Time, p, &old, &next, &fresh)
	}
	if thread {
		l.threads++
	} else {
		pl := e.leader(p)
		if pl != nil && ev.CloneParent {
			pl = e.parent(pl)
		}
		if pl != nil {
			t.ppid = pl.tgid
			t.pstart = pl.start
			pl.children++
		}
		t.threads = 1
	}
	e.insert(t)
}

// cloneNew maps namespace types to their clone flag; pid and time are
// absent because a child may legitimately be in the creator's
// pid_for_children or time_for_children namespace.
var cloneNew = [ns.NumTypes]uint64{
	ns.Cgroup: unix.CLONE_NEWCGROUP, ns.IPC: unix.CLONE_NEWIPC, ns.Mnt: unix.CLONE_NEWNS,
	ns.Net: unix.CLONE_NEWNET, ns.User: unix.CLONE_NEWUSER, ns.UTS: unix.CLONE_NEWUTS,
}

// catchUp applies to creator p the namespace changes a fork reveals.
func (e *Engine) catchUp(now int64, p *task, ev *Fork) {
	var change ns.Set
	stale := false
	cur := &e.sets[p.set].ids
	for typ, flag := range cloneNew {
		id := ev.NS[typ]
		if flag == 0 || id.IsZero() || id == cur[typ] || ev.CloneFlags&flag != 0 {
			continue
		}
		change[typ] = id
		stale = true
	}
	if !stale {
		return
	}
	e.stats.StaleNS++
	e.observe(now, p, &change)
}

// observe applies namespaces seen on task t after the fact.
func (e *Engine) observe(now int64, t *task, seen *ns.Set) {
	if t.set < 0 || merge(e.sets[t.set].ids, seen) == e.sets[t.set].ids {
		return
	}
	e.NSChange(NSChange{Time: now, PID: t.tid, Op: Observed, NS: *seen})
	e.stats.Inputs--
}

// merge returns base with every non-zero entry of over applied.
func merge(base ns.Set, over *ns.Set) ns.Set {
	for i, id := range over {
		if !id.IsZero() {
			base[i] = id
		}
	}
	return base
}

// Exec records the new program of a process; its contid is kept.
func (e *Engine) Exec(ev Exec) {
	e.stats.Inputs++
	if ev.OldTID != 0 && ev.OldTID != ev.PID {
		e.takeOver(ev.OldTID, ev.PID)
	}
	t := e.lookup(ev.PID)
	if t == nil {
		e.stats.UnknownExit++
		return
	}
	e.observe(ev.Time, t, &ev.NS)
	t.subj.Comm, t.subj.Exe = ev.Comm, ev.Exe
	if ev.HasCreds {
		t.subj.UID, t.subj.AUID, t.subj.Ses = ev.UID, ev.AUID, ev.Ses
	}
}

// takeOver moves thread old into the leader entry of its group, as the
// kernel's de_thread does when a non-leader thread execs: the exited
// leader's entry lives again with the thread's namespaces and container use.
func (e *Engine) takeOver(old, leader int32) {
	t, l := e.lookup(old), e.lookup(leader)
	if t == nil || l == nil || t.tgid != leader || l.tid != l.tgid || t.set < 0 {
		return
	}
	if l.set >= 0 { // the leader's exit was missed: release it first
		e.release(0, l)
		l.threads--
	}
	l.set, l.cont, l.gone, l.crossed = t.set, t.cont, false, t.crossed
	l.subj = t.subj
	e.remove(old) // its set reference and container use moved to l
}

// Exit applies the exit of one task.
func (e *Engine) Exit(ev Exit) {
	e.stats.Inputs++
	e.stats.Exits++
	t := e.lookup(ev.PID)
	if t == nil {
		e.stats.UnknownExit++
		return
	}
	e.observe(ev.Time, t, &ev.NS)
	e.exit(ev.Time, ev.PID)
}

func (e *Engine) exit(now int64, tid int32) {
	t := e.lookup(tid)
	if t.set < 0 {
		return // a leader that already exited; its group is still alive
	}
	c := t.cont
	e.release(now, t)
	if t.tid == t.tgid {
		t.threads--
		if t.threads > 0 {
			t.gone = true
			return
		}
		e.removeProcess(now, t, c)
		return
	}
	l := e.lookup(t.tgid)
	e.remove(tid)
	if l != nil {
		l.threads--
		if l.gone && l.threads <= 0 {
			e.removeProcess(now, l, c)
		}
	}
}

func (e *Engine) removeProcess(now int64, l *task, c *container) {
	if p := e.parent(l); p != nil {
		p.children--
	}
	e.hist.add(tomb{pid: l.tgid, ppid: l.ppid, born: l.born, died: now, cont: c})
	e.remove(l.tid)
}

// release ends t's use of its namespaces and container, writing
// NS_DESTROY and op=drop records for what is no longer used.
func (e *Engine) release(now int64, t *task) {
	// t keeps its container pointer: an exited leader still answers for
	// its group, and set < 0 keeps it out of every count.
	set, c := t.set, t.cont
	t.set = -1
	e.releaseSet(now, set, t, c)
	if c != nil {
		e.maybeDrop(now, c, t)
	}
}

// acquire returns a set index holding ids with one more reference. When
// fresh is non-nil it marks the namespaces that no live set held before.
func (e *Engine) acquire(ids ns.Set, fresh *[ns.NumTypes]bool) int32 {
	if i, ok := e.setIdx[ids]; ok {
		e.sets[i].refs++
		return i
	}
	var i int32
	if n := len(e.freeSets); n > 0 {
		i = e.freeSets[n-1]
		e.freeSets = e.freeSets[:n-1]
		e.sets[i] = nsSet{ids: ids, refs: 1}
	} else {
		i = int32(len(e.sets))
		e.sets = append(e.sets, nsSet{ids: ids, refs: 1})
	}
	e.setIdx[ids] = i
	for typ, id := range ids {
		if id.IsZero() {
			continue
		}
		k := nsKey{ns.Type(typ), id}
		r := e.nsRefs[k]
		r.refs++
		e.nsRefs[k] = r
		if r.refs == 1 && fresh != nil {
			fresh[typ] = true
		}
	}
	return i
}

func (e *Engine) dropSet(i int32) {
	delete(e.setIdx, e.sets[i].ids)
	e.sets[i] = nsSet{}
	e.freeSets = append(e.freeSets, i)
}

// use and unuse keep each network namespace's container list; use also
// marks the namespaces of the set a contained task is in as a container's.
func (e *Engine) use(c *container, set int32) {
	c.tasks++
	e.markSet(set)
	net := e.sets[set].ids[ns.Net]
	if net.IsZero() {
		return
	}
	ni := e.nets[net]
	if ni == nil {
		ni = &netInfo{}
		e.nets[net] = ni
	}
	for i := range ni.uses {
		if ni.uses[i].c == c {
			ni.uses[i].n++
			return
		}
	}
	ni.uses = append(ni.uses, netUse{})
	copy(ni.uses[1:], ni.uses)
	ni.uses[0] = netUse{c: c, n: 1}
}

func (e *Engine) unuse(c *container, net ns.ID) {
	c.tasks--
	if net.IsZero() {
		return
	}
	ni := e.nets[net]
	if ni == nil {
		return
	}
	for i := range ni.uses {
		if ni.uses[i].c != c {
			continue
		}
		if ni.uses[i].n--; ni.uses[i].n == 0 {
			ni.uses = append(ni.uses[:i], ni.uses[i+1:]...)
			if len(ni.uses) == 0 {
				delete(e.nets, net)
			}
		}
		return
	}
}

// markSet marks every namespace of a set as a container's. A set is marked
// once: contained forks share their parent's set and cost nothing more.
func (e *Engine) markSet(i int32) {
	s := &e.sets[i]
	if s.marked {
		return
	}
	s.marked = true
	for typ, id := range s.ids {
		e.mark(ns.Type(typ), id)
	}
}

func (e *Engine) mark(typ ns.Type, id ns.ID) {
	if id.IsZero() {
		return
	}
	k := nsKey{typ, id}
	if r, ok := e.nsRefs[k]; ok && !r.cont {
		r.cont = true
		e.nsRefs[k] = r
	}
}

// containers reports whether a live namespace is a container's.
func (e *Engine) containers(typ ns.Type, id ns.ID) bool {
	return !id.IsZero() && e.nsRefs[nsKey{typ, id}].cont
}

// involved reports whether a change of t's namespace of type typ, from old
// to id, concerns a container (spec §5.1): t is contained, or t enters a
// container's namespace, or t leaves one after it crossed into one.
//
// Leaving a container's namespace counts only for a task that crossed:
// the host's own namespaces are containers' too whenever a container shares
// them (most share the host's user and time namespaces), and an unprivileged
// `unshare -U` from there must not be written. Entering one needs
// CAP_SYS_ADMIN over it, which such a user does not have.
func (e *Engine) involved(t *task, typ ns.Type, id, old ns.ID) bool {
	return t.cont != nil || e.containers(typ, id) || t.crossed && e.containers(typ, old)
}
