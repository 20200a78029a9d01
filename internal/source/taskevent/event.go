// Package taskevent is the contract between contid's sources of task
// events and the core that applies them: the Event type, its kinds,
// ErrMalformed, and the Source interface. The eBPF tracker (package
// tracker) and the proc connector (package procconn) both implement
// Source, so the core drives either one the same way and neither source
// depends on the other; package sourcetest checks both the same way.
//
// What each field holds, and which ones a source leaves zero, is written
// on the field; the proc connector's omissions are in its package doc.
// The package is pure: types only.
package taskevent

import (
	"errors"
	"fmt"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/ns"
)

// Kind says what an Event reports.
type Kind uint8

const (
	// KindFork: a new task (process or thread). The event's task is the child.
	KindFork Kind = 1
	// KindExec: a successful execve; the task keeps its contid.
	KindExec Kind = 2
	// KindExit: a task (thread) exits.
	KindExit Kind = 3
	// KindNS: a successful setns or unshare changed the task's namespaces.
	KindNS Kind = 4
	// KindJoin: a process was moved into a cgroup bound to a container
	// (tracker.BindCgroup). The event's task is the moved process, with
	// its contid after the move.
	KindJoin Kind = 5
)

func (k Kind) String() string {
	switch k {
	case KindFork:
		return "fork"
	case KindExec:
		return "exec"
	case KindExit:
		return "exit"
	case KindNS:
		return "ns"
	case KindJoin:
		return "join"
	}
	return fmt.Sprintf("kind%d", uint8(k))
}

// NSOp is the syscall of a KindNS event.
type NSOp uint8

const (
	NSUnshare NSOp = 1
	NSSetns   NSOp = 2
	// NSScan: found by the tracker's periodic namespace scan; the
	// change happened at most one scan interval before Time, by setns or
	// unshare.
	NSScan NSOp = 3
)

func (o NSOp) String() string {
	switch o {
	case NSUnshare:
		return "unshare"
	case NSSetns:
		return "setns"
	case NSScan:
		return "scan"
	}
	return fmt.Sprintf("nsop%d", uint8(o))
}

// Event is one task event, decoded. The header fields describe the
// event's task (for KindFork, the child) as the kernel saw it when the event
// happened; the other fields are set for the kinds their comments name.
type Event struct {
	Kind Kind
	// Time is when the event happened, CLOCK_MONOTONIC nanoseconds.
	Time uint64
	TID  int32
	TGID int32
	// StartTime is the task's task->start_time (CLOCK_MONOTONIC ns):
	// together with TID it names the task race-free.
	StartTime uint64
	// StartBoottime is task->start_boottime (CLOCK_BOOTTIME ns), the
	// clock of /proc/PID/stat's starttime field.
	StartBoottime uint64
	// HasContid reports whether the task had a contid in task storage
	// when the event happened; Contid is contid.Unset otherwise.
	HasContid bool
	Contid    contid.ID
	UID       uint32 // real uid (initial user namespace)
	AUID      uint32 // loginuid; 4294967295 when unset
	Ses       uint32 // sessionid; 4294967295 when unset
	Comm      string

	// KindFork: the creating task, the clone flags, and whether the child
	// is a thread of the creator's process (CLONE_THREAD).
	ParentTID  int32
	ParentTGID int32
	CloneFlags uint64
	Thread     bool
	// KindFork: the child's contid came from the bound cgroup it was
	// created in (clone3 CLONE_INTO_CGROUP), not from its creator.
	JoinedCgroup bool

	// KindJoin: the container the cgroup is bound to, the cgroup, who
	// moved the process, and whether the kernel gave it the contid (false:
	// it had one already and kept it).
	CgroupContid contid.ID
	CgroupID     uint64
	CgroupHier   uint32
	MoverTID     int32
	MoverTGID    int32
	Tagged       bool

	// KindExec: the tid before exec. It differs from TID when a non-leader
	// thread exec'd and took over the leader's tid (the old leader's exit
	// event comes first).
	OldTID int32

	// KindExit: the exit code, and whether this was the last thread of the
	// group (NS holds the namespaces the task died in). GroupDeadExact is false on kernels before 6.16, where
	// GroupDead may be true for two threads exiting at the same time.
	ExitCode       int32
	GroupDead      bool
	GroupDeadExact bool

	// KindNS: how the change was seen.
	Op NSOp

	// NS is the task's namespace set (every kind): the active pid and
	// time namespaces, as /proc/PID/ns/{pid,time} show. Zero IDs where the
	// task had none (an exiting kernel thread), and all zero where they are
	// unchanged: the fork of a thread (its creator's) and the exit of a
	// thread still sharing its leader's nsproxy (see the tracker's doc).
	NS ns.Set
	// The namespaces the task's future children get
	// (/proc/PID/ns/{pid,time}_for_children); unshare(CLONE_NEWPID) and
	// unshare(CLONE_NEWTIME) change only these.
	PIDForChildren  ns.ID
	TimeForChildren ns.ID
}

// ErrMalformed is wrapped by every decoding error of every source. It
// concerns one event: reading may go on after it.
var ErrMalformed = errors.New("malformed task event")
