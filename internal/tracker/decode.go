package tracker

import (
	"bytes"
	"encoding/binary"
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
	// (BindCgroup). The event's task is the moved process, with its contid
	// after the move.
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
	// NSScan: found by the periodic namespace scan (Config.NSScan); the
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

// Event is one decoded ring-buffer sample. The header fields describe the
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
	// thread still sharing its leader's nsproxy (see doc.go).
	NS ns.Set
	// The namespaces the task's future children get
	// (/proc/PID/ns/{pid,time}_for_children); unshare(CLONE_NEWPID) and
	// unshare(CLONE_NEWTIME) change only these.
	PIDForChildren  ns.ID
	TimeForChildren ns.ID
}

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("tracker: malformed event")

// Wire layout, shared with bpf/tracker.c (struct event_hdr and friends);
// TestLayout checks these offsets against the object's BTF.
const (
	eventVersion = 1

	hdrSize     = 80
	nsRecSize   = 16
	nsAllSize   = nsRecSize * 10 // ns.NumTypes records, pid and time for children
	forkSize    = hdrSize + 16 + nsAllSize
	execSize    = hdrSize + 8 + nsAllSize
	exitSize    = hdrSize + 8 + nsAllSize
	nsEventSize = hdrSize + 8 + nsAllSize
	joinSize    = hdrSize + 32

	offKind          = 0
	offVersion       = 1
	offSize          = 2
	offFlags         = 4
	offTime          = 8
	offStartTime     = 16
	offStartBoottime = 24
	offContid        = 32
	offTID           = 40
	offTGID          = 44
	offUID           = 48
	offAUID          = 52
	offSes           = 56
	offComm          = 64

	flagContid        = 1
	flagThread        = 2
	flagGroupDead     = 4
	flagGroupDeadKnow = 8
	flagJoined        = 16
)

var ne = binary.NativeEndian

// Decode parses one ring-buffer sample. nsDev is the device of the nsfs
// entries (all namespaces share one), written into every ns.ID: the kernel
// side sees only inode numbers and unique ids. Decode never panics; input
// that does not fit the layout yields an error wrapping ErrMalformed. Bytes
// beyond the size the header declares are ignored, so that a newer kernel
// side may append fields.
func Decode(raw []byte, nsDev uint32) (Event, error) {
	var e Event
	if len(raw) < hdrSize {
		return e, fmt.Errorf("%w: %d bytes, header needs %d", ErrMalformed, len(raw), hdrSize)
	}
	if v := raw[offVersion]; v != eventVersion {
		return e, fmt.Errorf("%w: version %d, want %d", ErrMalformed, v, eventVersion)
	}
	e.Kind = Kind(raw[offKind])
	var want int
	switch e.Kind {
	case KindFork:
		want = forkSize
	case KindExec:
		want = execSize
	case KindExit:
		want = exitSize
	case KindNS:
		want = nsEventSize
	case KindJoin:
		want = joinSize
	default:
		return Event{}, fmt.Errorf("%w: unknown kind %d", ErrMalformed, raw[offKind])
	}
	size := int(ne.Uint16(raw[offSize:]))
	if size < want || size > len(raw) {
		return Event{}, fmt.Errorf("%w: %s event declares %d bytes, has %d, needs %d", ErrMalformed, e.Kind, size, len(raw), want)
	}
	raw = raw[:size]

	flags := ne.Uint32(raw[offFlags:])
	e.Time = ne.Uint64(raw[offTime:])
	e.StartTime = ne.Uint64(raw[offStartTime:])
	e.StartBoottime = ne.Uint64(raw[offStartBoottime:])
	e.Contid = contid.Unset
	if flags&flagContid != 0 {
		e.HasContid = true
		e.Contid = contid.ID(ne.Uint64(raw[offContid:]))
	}
	e.TID = int32(ne.Uint32(raw[offTID:]))
	e.TGID = int32(ne.Uint32(raw[offTGID:]))
	e.UID = ne.Uint32(raw[offUID:])
	e.AUID = ne.Uint32(raw[offAUID:])
	e.Ses = ne.Uint32(raw[offSes:])
	comm := raw[offComm : offComm+16]
	if i := bytes.IndexByte(comm, 0); i >= 0 {
		comm = comm[:i]
	}
	e.Comm = string(comm)

	body := raw[hdrSize:]
	switch e.Kind {
	case KindFork:
		e.ParentTID = int32(ne.Uint32(body[0:]))
		e.ParentTGID = int32(ne.Uint32(body[4:]))
		e.CloneFlags = ne.Uint64(body[8:])
		e.Thread = flags&flagThread != 0
		e.JoinedCgroup = flags&flagJoined != 0
		e.decodeNS(body[16:], nsDev)
	case KindExec:
		e.OldTID = int32(ne.Uint32(body[0:]))
		e.decodeNS(body[8:], nsDev)
	case KindExit:
		e.ExitCode = int32(ne.Uint32(body[0:]))
		e.GroupDead = flags&flagGroupDead != 0
		e.GroupDeadExact = flags&flagGroupDeadKnow != 0
		e.decodeNS(body[8:], nsDev)
	case KindNS:
		e.Op = NSOp(ne.Uint32(body[0:]))
		if e.Op < NSUnshare || e.Op > NSScan {
			return Event{}, fmt.Errorf("%w: unknown namespace operation %d", ErrMalformed, e.Op)
		}
		e.decodeNS(body[8:], nsDev)
	case KindJoin:
		e.CgroupContid = contid.ID(ne.Uint64(body[0:]))
		e.CgroupID = ne.Uint64(body[8:])
		e.MoverTID = int32(ne.Uint32(body[16:]))
		e.MoverTGID = int32(ne.Uint32(body[20:]))
		e.CgroupHier = ne.Uint32(body[24:])
		e.Tagged = ne.Uint32(body[28:]) != 0
	}
	return e, nil
}

// decodeNS reads struct ns_rec[10]: the set indexed like ns.Type, then pid
// and time for children.
func (e *Event) decodeNS(b []byte, dev uint32) {
	for i := range e.NS {
		e.NS[i] = decodeNS(b[i*nsRecSize:], dev)
	}
	e.PIDForChildren = decodeNS(b[8*nsRecSize:], dev)
	e.TimeForChildren = decodeNS(b[9*nsRecSize:], dev)
}

// decodeNS reads struct ns_rec {u64 id; u32 inum; u32 pad}. A zero inode
// (the task had no such namespace, e.g. an exiting task) gives the zero ID.
func decodeNS(b []byte, dev uint32) ns.ID {
	ino := ne.Uint32(b[8:])
	if ino == 0 {
		return ns.ID{}
	}
	return ns.ID{Dev: dev, Ino: ino, Unique: ne.Uint64(b[0:])}
}
