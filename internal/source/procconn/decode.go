package procconn

import (
	"encoding/binary"
	"fmt"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/source/procfs"
	"github.com/contid/contid/internal/source/taskevent"
)

// Wire layout (linux/netlink.h, linux/connector.h, linux/cn_proc.h). All
// fields are in host byte order.
const (
	nlmsgHdrLen = 16 // struct nlmsghdr
	nlmsgNoop   = 1  // NLMSG_NOOP
	nlmsgDone   = 3  // NLMSG_DONE: every connector message has this type

	cnMsgLen  = 20 // struct cn_msg without data
	cnIdxProc = 1  // CN_IDX_PROC, also the multicast group
	cnValProc = 1  // CN_VAL_PROC

	// struct proc_event: what, cpu, timestamp_ns (8-aligned), then a
	// union of at most 24 bytes.
	evHdrLen = 16
	evLen    = 40

	// PROC_CN_MCAST_* (enum proc_cn_mcast_op).
	mcastListen = 1
	mcastIgnore = 2
)

// proc_event.what (enum proc_cn_event). Bits, so that the 6.6+
// per-listener filter takes a set of them.
const (
	whatNone        uint32 = 0x00000000 // an acknowledgement
	whatFork        uint32 = 0x00000001
	whatExec        uint32 = 0x00000002
	whatUID         uint32 = 0x00000004
	whatGID         uint32 = 0x00000040
	whatSID         uint32 = 0x00000080
	whatPtrace      uint32 = 0x00000100
	whatComm        uint32 = 0x00000200
	whatNonzeroExit uint32 = 0x20000000 // a filter flag; never sent
	whatCoredump    uint32 = 0x40000000
	whatExit        uint32 = 0x80000000

	// whatWanted is the filter Open asks for.
	whatWanted = whatFork | whatExec | whatExit
	// whatAll is PROC_EVENT_ALL: the filter that passes everything,
	// acknowledgements included.
	whatAll = whatFork | whatExec | whatUID | whatGID | whatSID | whatPtrace |
		whatComm | whatNonzeroExit | whatCoredump | whatExit
)

// noCPU is proc_event.cpu of an acknowledgement on kernels that send it
// outside the per-CPU numbering (before 6.6); it takes part in no sequence.
const noCPU = ^uint32(0)

// unknownID is what UID, AUID and Ses hold when they were not read: the
// kernel's invalid id, which is also how an unset loginuid reads.
const unknownID = ^uint32(0)

var ne = binary.NativeEndian

// message is one connector message: the cn_msg header and the proc_event.
type message struct {
	what uint32
	cpu  uint32
	seq  uint32 // cn_msg.seq: per CPU, one for every message the kernel sends
	ack  uint32 // cn_msg.ack: of an acknowledgement, the request's ack + 1
	time uint64 // timestamp_ns, ktime_get_ns: CLOCK_MONOTONIC

	ackErr uint32 // whatNone: the request's error (a positive errno)

	// kparent is a fork's parent_pid and parent_tgid as the kernel sent
	// them (its real_parent, see decodeCN); ev has what contid makes of it.
	kparent [2]int32

	// ev is the event for whatFork, whatExec and whatExit. The fields the
	// connector does not carry are left for the reader to fill from /proc:
	// StartBoottime 0, Comm "", UID, AUID and Ses unknownID.
	ev taskevent.Event
}

// decode appends the messages of one datagram to msgs. A datagram may hold
// several netlink messages; NLMSG_NOOP ones are skipped. On error it returns
// the messages decoded before the bad one and an error wrapping
// taskevent.ErrMalformed. It never panics.
func decode(b []byte, msgs []message) ([]message, error) {
	if len(b) == 0 {
		return msgs, fmt.Errorf("procconn: %w: empty datagram", taskevent.ErrMalformed)
	}
	for off := 0; off < len(b); {
		rest := b[off:]
		if len(rest) < nlmsgHdrLen {
			return msgs, fmt.Errorf("procconn: %w: %d trailing bytes at offset %d, a netlink header needs %d", taskevent.ErrMalformed, len(rest), off, nlmsgHdrLen)
		}
		n := ne.Uint32(rest[0:])
		typ := ne.Uint16(rest[4:])
		if n < nlmsgHdrLen || uint64(n) > uint64(len(rest)) {
			return msgs, fmt.Errorf("procconn: %w: netlink message at offset %d declares %d bytes, %d left", taskevent.ErrMalformed, off, n, len(rest))
		}
		switch typ {
		case nlmsgNoop:
		case nlmsgDone:
			m, err := decodeCN(rest[nlmsgHdrLen:n])
			if err != nil {
				return msgs, fmt.Errorf("%w (netlink message at offset %d)", err, off)
			}
			msgs = append(msgs, m)
		default:
			return msgs, fmt.Errorf("procconn: %w: netlink message type %d at offset %d", taskevent.ErrMalformed, typ, off)
		}
		// NLMSG_ALIGN; the last message may end unpadded.
		off += min(int(n+3)&^3, len(rest))
	}
	return msgs, nil
}

// decodeCN decodes a cn_msg carrying a proc_event.
func decodeCN(b []byte) (message, error) {
	var m message
	if len(b) < cnMsgLen {
		return m, fmt.Errorf("procconn: %w: %d bytes, cn_msg needs %d", taskevent.ErrMalformed, len(b), cnMsgLen)
	}
	idx, val := ne.Uint32(b[0:]), ne.Uint32(b[4:])
	if idx != cnIdxProc || val != cnValProc {
		return m, fmt.Errorf("procconn: %w: connector id %d:%d, want %d:%d", taskevent.ErrMalformed, idx, val, cnIdxProc, cnValProc)
	}
	m.seq = ne.Uint32(b[8:])
	m.ack = ne.Uint32(b[12:])
	n := int(ne.Uint16(b[16:]))
	data := b[cnMsgLen:]
	if n > len(data) {
		return m, fmt.Errorf("procconn: %w: cn_msg declares %d bytes of data, has %d", taskevent.ErrMalformed, n, len(data))
	}
	data = data[:n]
	if n < evHdrLen {
		return m, fmt.Errorf("procconn: %w: proc_event of %d bytes, its header needs %d", taskevent.ErrMalformed, n, evHdrLen)
	}
	m.what = ne.Uint32(data[0:])
	m.cpu = ne.Uint32(data[4:])
	m.time = ne.Uint64(data[8:])
	u := data[evHdrLen:] // the union

	need := 0
	switch m.what {
	case whatNone:
		need = 4 // err
	case whatFork:
		need = 16 // parent_pid, parent_tgid, child_pid, child_tgid
	case whatExec:
		need = 8 // process_pid, process_tgid
	case whatExit:
		need = 12 // process_pid, process_tgid, exit_code; the rest is unused
	default:
		return m, nil // an event contid does not use: its header suffices
	}
	if len(u) < need {
		return m, fmt.Errorf("procconn: %w: %s event of %d bytes, needs %d", taskevent.ErrMalformed, whatName(m.what), n, evHdrLen+need)
	}
	pid := func(i int) int32 { return int32(ne.Uint32(u[4*i:])) }
	e := taskevent.Event{
		Time:   m.time,
		Contid: contid.Unset,
		UID:    unknownID,
		AUID:   unknownID,
		Ses:    unknownID,
	}
	switch m.what {
	case whatNone:
		m.ackErr = ne.Uint32(u)
		return m, nil
	case whatFork:
		// The kernel reports the child's real_parent, which is the creating
		// task only for a new process without CLONE_PARENT. A new thread
		// (CLONE_THREAD, the only way a task gets a tid other than its tgid)
		// shares its creator's real_parent, the parent of the whole process;
		// its creator is some thread of the child's own group, and the
		// group's leader is the best name for it we have.
		e.Kind = taskevent.KindFork
		m.kparent = [2]int32{pid(0), pid(1)}
		e.TID, e.TGID = pid(2), pid(3)
		e.Thread = e.TID != e.TGID
		if e.Thread {
			e.ParentTID, e.ParentTGID = e.TGID, e.TGID
		} else {
			e.ParentTID, e.ParentTGID = pid(0), pid(1)
		}
	case whatExec:
		e.Kind = taskevent.KindExec
		e.TID, e.TGID = pid(0), pid(1)
	case whatExit:
		e.Kind = taskevent.KindExit
		e.TID, e.TGID = pid(0), pid(1)
		e.ExitCode = pid(2)
	}
	if e.TID <= 0 || e.TGID <= 0 {
		return m, fmt.Errorf("procconn: %w: %s event with tid %d tgid %d", taskevent.ErrMalformed, whatName(m.what), e.TID, e.TGID)
	}
	m.ev = e
	return m, nil
}

func whatName(w uint32) string {
	switch w {
	case whatNone:
		return "ack"
	case whatFork:
		return "fork"
	case whatExec:
		return "exec"
	case whatUID:
		return "uid"
	case whatGID:
		return "gid"
	case whatSID:
		return "sid"
	case whatPtrace:
		return "ptrace"
	case whatComm:
		return "comm"
	case whatNonzeroExit:
		return "nonzero_exit"
	case whatCoredump:
		return "coredump"
	case whatExit:
		return "exit"
	}
	return fmt.Sprintf("what%#x", w)
}

// appendRequest appends a netlink message to the connector carrying a
// multicast control operation: the 4-byte enum proc_cn_mcast_op every
// kernel understands, or, with filter != 0, the 6.6+ struct proc_input
// {mcast_op, event_type}. The acknowledgement echoes ack + 1.
func appendRequest(b []byte, op, filter, ack uint32) []byte {
	payload := 4
	if filter != 0 {
		payload = 8
	}
	b = ne.AppendUint32(b, uint32(nlmsgHdrLen+cnMsgLen+payload))
	b = ne.AppendUint16(b, nlmsgDone)
	b = ne.AppendUint16(b, 0) // flags
	b = ne.AppendUint32(b, 0) // seq
	b = ne.AppendUint32(b, 0) // port: the kernel fills in the sender's
	b = ne.AppendUint32(b, cnIdxProc)
	b = ne.AppendUint32(b, cnValProc)
	b = ne.AppendUint32(b, 0) // seq
	b = ne.AppendUint32(b, ack)
	b = ne.AppendUint16(b, uint16(payload))
	b = ne.AppendUint16(b, 0) // flags
	b = ne.AppendUint32(b, op)
	if filter != 0 {
		b = ne.AppendUint32(b, filter)
	}
	return b
}

// seqTracker finds gaps in the kernel's per-CPU message numbering: cn_proc
// numbers every message it sends with a counter of the CPU it runs on, and
// sends under a per-CPU lock, so a listener that is sent every message sees
// each CPU's numbers consecutively. A gap is messages lost: dropped for a
// full receive buffer, or never sent because the kernel could not allocate
// them. Under the kernel filter the numbering also skips every event the
// filter withheld, so the reader does not track it then.
type seqTracker struct {
	next map[uint32]uint32 // by CPU: the number expected next
}

// observe records message seq from cpu and returns how many numbers were
// skipped since that CPU's previous message (0 for the first one seen). A
// number that goes backwards (never seen on a real kernel) restarts the
// CPU's numbering and counts as one skipped.
func (s *seqTracker) observe(cpu, seq uint32) (skipped uint32) {
	if cpu == noCPU {
		return 0
	}
	if s.next == nil {
		s.next = make(map[uint32]uint32)
	}
	want, seen := s.next[cpu]
	s.next[cpu] = seq + 1
	if !seen || seq == want {
		return 0
	}
	if d := seq - want; d < 1<<31 {
		return d
	}
	return 1
}

// plausibleStart converts /proc's starttime (ticks since boot, truncated)
// to nanoseconds and checks it against the event: the task an event names
// started before the event, so a later start means its pid was reused by a
// new task before the reader looked. evTime is the event's CLOCK_MONOTONIC
// time and bootMinusMono is CLOCK_BOOTTIME minus CLOCK_MONOTONIC (the time
// spent suspended); the slack covers the skew of reading the two clocks.
func plausibleStart(ticks, evTime, bootMinusMono uint64) (startNS uint64, ok bool) {
	const tickNS = 1e9 / procfs.TicksPerSecond
	const slack = 1e6
	startNS = ticks * tickNS
	return startNS, startNS <= evTime+bootMinusMono+slack
}
