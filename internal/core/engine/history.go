package engine

import (
	"github.com/contid/contid/internal/contid"
)

// Attribution finds which process a kernel audit record describes. Records
// arrive after the events of their subject, often after it exited, and
// pids are reused; so the engine remembers exited processes (tombstones,
// a fixed ring: no allocation per exit) and picks the process whose
// lifetime covers the record's time.

// Tolerances of lifetime checks. The kernel stamps audit records with its
// coarse clock (ktime_get_coarse_real_ts64), truncated to milliseconds,
// while fork/exit times come from the tracker's monotonic clock mapped to
// wall time. The coarse clock only moves at a timer tick, and on a loaded
// VM ticks come late: under bench/storm.sh on a 2-vCPU VM (HZ=250) records
// were stamped up to 34 ms before their subject's fork, with several
// processes born 5 ms apart sharing one stamp. It never runs ahead, so a
// record may precede its subject's fork by as much as ticks can be late
// (bornSlack is generous: widening it only matters when a pid is reused
// within it, and then two candidates make the engine decide by ppid or
// refuse, never guess), and may follow its exit only by the error of the
// clock mapping.
const (
	bornSlack = 250e6 // ns a record may precede its subject's fork
	diedSlack = 5e6   // ns a record may follow its subject's exit
)

type tomb struct {
	seq        uint64 // position in the stream of exits; 0: empty slot
	pid, ppid  int32
	born, died int64
	cont       *container
	prev       uint64 // seq of the previous tomb of the same pid, 0: none
}

type history struct {
	ring   []tomb
	seq    uint64
	latest map[int32]uint64 // pid → seq of its newest tomb
}

func newHistory(n int) history {
	if n <= 0 {
		n = 65536
	}
	return history{ring: make([]tomb, n), latest: make(map[int32]uint64)}
}

func (h *history) add(t tomb) {
	h.seq++
	t.seq = h.seq
	slot := &h.ring[t.seq%uint64(len(h.ring))]
	if slot.seq != 0 && h.latest[slot.pid] == slot.seq {
		delete(h.latest, slot.pid) // its newest tomb is being overwritten
	}
	t.prev = h.latest[t.pid]
	h.latest[t.pid] = t.seq
	*slot = t
}

func (h *history) get(seq uint64) *tomb {
	if seq == 0 {
		return nil
	}
	t := &h.ring[seq%uint64(len(h.ring))]
	if t.seq != seq {
		return nil // overwritten
	}
	return t
}

// AttributionStats counts attributions that could not be decided.
type AttributionStats struct {
	Unknown   uint64 // no process with that pid lived at that time (or it is out of history)
	Ambiguous uint64 // a pid reused within the clocks' slack, and the hints did not decide
}

// Attribute returns the chain of process pid (a tgid) at unix time at (ns),
// as a kernel audit record with that subject and time should carry it.
// ppid, when not 0, is the record's ppid= field and decides between two
// processes that used the pid within the clocks' slack. ok is false when
// the engine cannot say: never a guess, so a reused pid never gets the old
// process's chain.
func (e *Engine) Attribute(pid int32, at int64, ppid int32) (chain contid.Chain, ok bool) {
	var cands [4]candidate
	n := 0
	if l := e.lookup(pid); l != nil && l.tid == l.tgid && (l.born == 0 || at >= l.born-bornSlack) {
		cands[n] = candidate{ppid: l.ppid, cont: l.cont}
		n++
	}
	for t := e.hist.get(e.hist.latest[pid]); t != nil && n < len(cands); t = e.hist.get(t.prev) {
		if at > t.died+diedSlack {
			break // older tombs died earlier still
		}
		if t.born == 0 || at >= t.born-bornSlack {
			cands[n] = candidate{ppid: t.ppid, cont: t.cont}
			n++
		}
	}
	return e.decide(cands[:n], ppid)
}

type candidate struct {
	ppid int32
	cont *container
}

func (e *Engine) decide(cands []candidate, ppid int32) (contid.Chain, bool) {
	if len(cands) == 0 {
		e.attr.Unknown++
		return nil, false
	}
	if len(cands) > 1 && ppid != 0 {
		k := 0
		for _, c := range cands {
			if c.ppid == ppid {
				cands[k] = c
				k++
			}
		}
		if k > 0 {
			cands = cands[:k]
		}
	}
	for _, c := range cands[1:] {
		if !c.cont.chainOrNil().Equal(cands[0].cont.chainOrNil()) {
			e.attr.Ambiguous++
			return nil, false
		}
	}
	return cands[0].cont.chainOrNil(), true
}

// AttributionStats returns the attribution counters.
func (e *Engine) AttributionStats() AttributionStats { return e.attr }
