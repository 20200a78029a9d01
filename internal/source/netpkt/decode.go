package netpkt

import (
	"encoding/binary"
	"fmt"
)

// Pair says where one packet record was logged.
type Pair struct {
	Serial uint32
	Sec    int64
	Msec   uint32
	// Known: the record was logged inside the hook traversal of the
	// namespace below. When false, Why says why not.
	Known bool
	// NetnsID is the kernel's unique namespace id (ioctl NS_GET_ID),
	// NetnsIno its nsfs inode number.
	NetnsID  uint64
	NetnsIno uint32
	Why      string
}

// Reasons a pair has no namespace.
const (
	WhyNoTraversal = "no-traversal" // no watched traversal open on that CPU
	WhyForeignTask = "foreign-task" // the open traversal is another task's
	WhyStale       = "stale"        // the open entry's traversal has ended
)

// pairSize is sizeof(struct pair_event).
const pairSize = 40

const (
	flagNetns   = 1
	flagNoTop   = 2
	flagForeign = 4
	flagStale   = 8
)

// decode turns a ring buffer sample (struct pair_event, host byte order)
// into a Pair.
func decode(b []byte) (Pair, error) {
	if len(b) < pairSize {
		return Pair{}, fmt.Errorf("netpkt: sample of %d bytes, want %d", len(b), pairSize)
	}
	le := binary.NativeEndian
	nsec := le.Uint64(b[8:])
	p := Pair{
		Sec:      int64(le.Uint64(b[0:])),
		Msec:     uint32(nsec / 1e6),
		NetnsID:  le.Uint64(b[16:]),
		NetnsIno: le.Uint32(b[24:]),
		Serial:   le.Uint32(b[28:]),
	}
	switch flags := le.Uint32(b[32:]); flags {
	case flagNetns:
		p.Known = true
	case flagNoTop:
		p.NetnsID, p.NetnsIno, p.Why = 0, 0, WhyNoTraversal
	case flagForeign:
		p.NetnsID, p.NetnsIno, p.Why = 0, 0, WhyForeignTask
	case flagStale:
		p.NetnsID, p.NetnsIno, p.Why = 0, 0, WhyStale
	default:
		return Pair{}, fmt.Errorf("netpkt: sample flags %#x", flags)
	}
	return p, nil
}
