package tracker

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/source/taskevent"
)

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
// that does not fit the layout yields an error wrapping
// taskevent.ErrMalformed. Bytes beyond the size the header declares are
// ignored, so that a newer kernel side may append fields.
func Decode(raw []byte, nsDev uint32) (taskevent.Event, error) {
	var e taskevent.Event
	if len(raw) < hdrSize {
		return e, fmt.Errorf("tracker: %w: %d bytes, header needs %d", taskevent.ErrMalformed, len(raw), hdrSize)
	}
	if v := raw[offVersion]; v != eventVersion {
		return e, fmt.Errorf("tracker: %w: version %d, want %d", taskevent.ErrMalformed, v, eventVersion)
	}
	e.Kind = taskevent.Kind(raw[offKind])
	var want int
	switch e.Kind {
	case taskevent.KindFork:
		want = forkSize
	case taskevent.KindExec:
		want = execSize
	case taskevent.KindExit:
		want = exitSize
	case taskevent.KindNS:
		want = nsEventSize
	case taskevent.KindJoin:
		want = joinSize
	default:
		return taskevent.Event{}, fmt.Errorf("tracker: %w: unknown kind %d", taskevent.ErrMalformed, raw[offKind])
	}
	size := int(ne.Uint16(raw[offSize:]))
	if size < want || size > len(raw) {
		return taskevent.Event{}, fmt.Errorf("tracker: %w: %s event declares %d bytes, has %d, needs %d", taskevent.ErrMalformed, e.Kind, size, len(raw), want)
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
	case taskevent.KindFork:
		e.ParentTID = int32(ne.Uint32(body[0:]))
		e.ParentTGID = int32(ne.Uint32(body[4:]))
		e.CloneFlags = ne.Uint64(body[8:])
		e.Thread = flags&flagThread != 0
		e.JoinedCgroup = flags&flagJoined != 0
		decodeNSAll(&e, body[16:], nsDev)
	case taskevent.KindExec:
		e.OldTID = int32(ne.Uint32(body[0:]))
		decodeNSAll(&e, body[8:], nsDev)
	case taskevent.KindExit:
		e.ExitCode = int32(ne.Uint32(body[0:]))
		e.GroupDead = flags&flagGroupDead != 0
		e.GroupDeadExact = flags&flagGroupDeadKnow != 0
		decodeNSAll(&e, body[8:], nsDev)
	case taskevent.KindNS:
		e.Op = taskevent.NSOp(ne.Uint32(body[0:]))
		if e.Op < taskevent.NSUnshare || e.Op > taskevent.NSScan {
			return taskevent.Event{}, fmt.Errorf("tracker: %w: unknown namespace operation %d", taskevent.ErrMalformed, e.Op)
		}
		decodeNSAll(&e, body[8:], nsDev)
	case taskevent.KindJoin:
		e.CgroupContid = contid.ID(ne.Uint64(body[0:]))
		e.CgroupID = ne.Uint64(body[8:])
		e.MoverTID = int32(ne.Uint32(body[16:]))
		e.MoverTGID = int32(ne.Uint32(body[20:]))
		e.CgroupHier = ne.Uint32(body[24:])
		e.Tagged = ne.Uint32(body[28:]) != 0
	}
	return e, nil
}

// decodeNSAll reads struct ns_rec[10]: the set indexed like ns.Type, then pid
// and time for children.
func decodeNSAll(e *taskevent.Event, b []byte, dev uint32) {
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
