package engine

import (
	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/ns"
)

// TaskRef names a process race-free: its pid (tgid) and start time (ns since
// boot, as the kernel's task->start_time). A bare pid is never an identity.
type TaskRef struct {
	PID   int32
	Start uint64
}

// Subject describes a process in records: pid= uid= auid= ses= comm= exe=.
type Subject struct {
	UID, AUID, Ses uint32
	Comm, Exe      string
}

// UnsetID is how the kernel writes an unset auid or ses (4294967295).
const UnsetID = ^uint32(0)

// Input is one event the engine applies. Every input carries its own time
// (unix nanoseconds); the engine has no clock.
type Input interface{ at() int64 }

// Fork is a new task: a process (Child == ChildTGID) or a thread of the
// parent's process (ChildTGID == the parent's tgid).
type Fork struct {
	Time      int64
	Parent    int32 // tid of the creating task
	Child     int32 // tid of the new task
	ChildTGID int32
	Start     uint64 // the child's start time
	// NS holds the child's namespaces as the kernel saw them at fork; a zero
	// entry means "as the parent". A namespace not yet known is NS_CREATE.
	NS ns.Set
	// HasContid says Contid holds the contid the kernel copied into the
	// child's task storage (contid.Unset: none). It is used only when the
	// parent is unknown to the engine; otherwise the engine's own inheritance
	// decides and a disagreement is counted in Stats.Mismatch.
	HasContid bool
	Contid    contid.ID
	// Subject of the child; zero means "as the parent".
	Subject *Subject
	// CloneFlags are clone's flags, when HasCloneFlags. A child whose
	// namespace (other than pid and time, whose *_for_children may differ)
	// differs from its creator's without the CLONE_NEW* flag for it shows
	// that the creator's namespaces changed by an event the engine has not
	// seen yet (lost, or reordered across CPUs): the engine applies that
	// change to the creator first, and counts it in Stats.StaleNS.
	HasCloneFlags bool
	CloneFlags    uint64
	// CloneParent is clone's CLONE_PARENT: the new process's parent is the
	// creator's parent, not the creator (runc's nsexec creates the
	// container's init so). Inheritance still comes from the creator.
	CloneParent bool
}

// Exec is a successful execve by a process; it keeps its contid (spec §4).
type Exec struct {
	Time int64
	PID  int32 // tgid after exec
	// OldTID is the tid before exec when a non-leader thread exec'd and
	// took over the leader's tid (the old leader's exit comes first); 0 or
	// PID otherwise.
	OldTID    int32
	Comm, Exe string
	UID, AUID uint32
	Ses       uint32
	HasCreds  bool // UID/AUID/Ses are set
	// NS, where not zero, is the task's namespaces at exec; a change the
	// engine has not seen yet is applied first (Observed).
	NS ns.Set
}

// Exit is the exit of one task (thread). The process is gone when its last
// thread has exited.
type Exit struct {
	Time int64
	PID  int32 // tid
	// NS, where not zero, is the task's namespaces at exit; a change the
	// engine has not seen yet is applied first (Observed).
	NS ns.Set
}

// NSOp says how a task's namespaces changed.
type NSOp uint8

const (
	Unshare NSOp = iota + 1
	Setns
	// Observed is a change seen after the fact (a periodic scan, or a
	// task's namespaces at exec, exit or its child's fork): a namespace new
	// to the engine is taken as created by the task (NS_CREATE), a known
	// one as entered. A setns into a namespace no tracked task used (a
	// bind-mounted one) is then logged as created: the one inexactness.
	Observed
)

func (o NSOp) String() string {
	switch o {
	case Unshare:
		return "unshare"
	case Setns:
		return "setns"
	case Observed:
		return "observed"
	}
	return "nsop?"
}

// NSChange is a task's namespaces after an unshare or setns. Zero entries are
// unchanged.
type NSChange struct {
	Time int64
	PID  int32 // tid
	Op   NSOp
	NS   ns.Set
}

// SetContid is a registration request (spec §3). The API layer fills the
// caller from the socket's peer credentials, never from the request body.
type SetContid struct {
	Time   int64
	Caller TaskRef
	// ForParent makes the caller act for its parent process, the
	// orchestrator (spec §3.1); otherwise the caller is the orchestrator.
	ForParent bool
	// CallerCap: the caller has CAP_AUDIT_CONTROL in the initial user namespace.
	CallerCap bool
	Target    int32  // a tid; it names its thread group
	Value     string // the requested contid, as the caller wrote it
	// Name is the runtime's container name, recorded with a new container.
	Name string
	// Subject, when set, describes the orchestrator in the record, as read
	// by the API layer at request time; otherwise the engine's view is used.
	Subject *Subject
}

// SetCapcontid grants (Value "1") or revokes ("0") the capcontid flag (spec §3.2).
type SetCapcontid struct {
	Time      int64
	Caller    TaskRef
	ForParent bool
	CallerCap bool
	Target    int32
	Value     string
	Subject   *Subject
}

// SeedContainer restores a container object known before the engine started
// (from pinned state), before the tasks that reference it are seeded.
type SeedContainer struct {
	Time   int64
	ID     contid.ID
	Owner  TaskRef
	Parent contid.ID // contid.Unset for a top-level container
	Name   string
}

// SeedTask is a task that existed when the engine started (from /proc and
// the pinned contid map). It produces no records.
type SeedTask struct {
	Time        int64
	PID, TGID   int32
	PPID        int32 // parent process, 0 if none
	Start       uint64
	ParentStart uint64 // 0: take it from the seeded parent
	Born        int64  // unix ns the task started, for attribution; 0: long ago
	NS          ns.Set
	Subject     Subject
	HasContid   bool // Contid is set (a zero ID is a valid contid)
	Contid      contid.ID
	Capcontid   bool
}

// Join is a process moved into a cgroup bound to a container (contid's
// extension of spec §3 for exec into a running container, documented in
// docs/registration.md). The kernel has already given it the contid if it
// had none (Tagged); a process in another container keeps its own.
type Join struct {
	Time   int64
	PID    int32 // the moved process (thread group leader)
	Contid contid.ID
	Mover  int32 // tid of the task that moved it (runc, crun, a shell)
	Tagged bool
}

func (e Join) at() int64 { return e.Time }

func (e Fork) at() int64          { return e.Time }
func (e Exec) at() int64          { return e.Time }
func (e Exit) at() int64          { return e.Time }
func (e NSChange) at() int64      { return e.Time }
func (e SetContid) at() int64     { return e.Time }
func (e SetCapcontid) at() int64  { return e.Time }
func (e SeedContainer) at() int64 { return e.Time }
func (e SeedTask) at() int64      { return e.Time }
