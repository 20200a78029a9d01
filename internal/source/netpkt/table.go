package netpkt

import (
	"sync"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/pipeline/provenance"
	"github.com/contid/contid/internal/records"
)

// Table keeps the pairs read from the kernel until the records they pair
// arrive. It is safe for concurrent use: the pairs come from the ring
// buffer's reader, the records from the audit pipeline.
type Table struct {
	mu    sync.Mutex
	max   int
	by    map[uint32]Pair
	order []uint32 // serials, oldest first, for eviction
	stats TableStats
}

// TableStats counts what the table saw.
type TableStats struct {
	Added    uint64
	Taken    uint64 // records that found their pair
	Missing  uint64 // records without a pair (not yet read, or none)
	Mismatch uint64 // a pair with the serial but another stamp: not used
	Evicted  uint64 // pairs whose record never asked for them
	NotLocal uint64 // records not provably this host's: no pair looked up
}

// NewTable returns a Table holding at most max pairs (the oldest goes
// first); max ≤ 0 means 4096.
func NewTable(max int) *Table {
	if max <= 0 {
		max = 4096
	}
	return &Table{max: max, by: make(map[uint32]Pair)}
}

// Add keeps a pair.
func (t *Table) Add(p Pair) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stats.Added++
	if _, dup := t.by[p.Serial]; !dup {
		t.order = append(t.order, p.Serial)
	}
	t.by[p.Serial] = p
	for len(t.by) > t.max && len(t.order) > 0 {
		s := t.order[0]
		t.order = t.order[1:]
		if _, ok := t.by[s]; ok {
			delete(t.by, s)
			t.stats.Evicted++
		}
	}
	if len(t.order) > 2*t.max { // serials already taken
		t.compact()
	}
}

func (t *Table) compact() {
	kept := t.order[:0]
	for _, s := range t.order {
		if _, ok := t.by[s]; ok {
			kept = append(kept, s)
		}
	}
	t.order = kept
}

// Take returns and forgets the pair of the record with this stamp. A pair
// is only returned when its serial, seconds and milliseconds all match.
func (t *Table) Take(s records.Stamp) (Pair, bool) { return t.take(s, true) }

// take is Take; countMiss false leaves a miss uncounted (a retry follows).
func (t *Table) take(s records.Stamp, countMiss bool) (Pair, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.by[uint32(s.Serial)]
	if !ok || s.Serial > 0xffffffff {
		if countMiss {
			t.stats.Missing++
		}
		return Pair{}, false
	}
	delete(t.by, uint32(s.Serial))
	if p.Sec != s.Sec || p.Msec != s.Msec {
		t.stats.Mismatch++
		return Pair{}, false
	}
	t.stats.Taken++
	return p, true
}

func (t *Table) notLocal() {
	t.mu.Lock()
	t.stats.NotLocal++
	t.mu.Unlock()
}

// Stats returns the counters.
func (t *Table) Stats() TableStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// Netns gives the containers of a network namespace (engine.Engine).
type Netns interface {
	NetnsChains(net ns.ID) []contid.Chain
}

// Attributor adds packet records to a provenance.Attributor: a packet
// record is placed when its pair names a namespace, and gets the chains of
// the containers using that namespace.
type Attributor struct {
	provenance.Attributor
	Pairs *Table
	Nets  Netns
	// NsDev is the st_dev of nsfs, which namespace IDs carry.
	NsDev uint32
	// Local tells whether a record of this node (as its line names it) is
	// provably this host's, so that this kernel's pair may stand for it;
	// nil means only records without a node, read from this kernel.
	Local func(node string) bool
	// Refresh, when set, moves the pairs waiting in the kernel into Pairs;
	// it is called once when a record finds no pair, since the kernel
	// writes a pair just after it queues the record.
	Refresh func()
}

// PacketChains implements provenance.PacketAttributor. A record that may
// be another host's (forwarded by auditd) is never placed: a pair of this
// kernel with its serial and stamp would be a coincidence, not its own.
func (a Attributor) PacketChains(node string, s records.Stamp) ([]contid.Chain, bool) {
	if a.Local == nil && node != "" || a.Local != nil && !a.Local(node) {
		a.Pairs.notLocal()
		return nil, false
	}
	p, ok := a.Pairs.take(s, a.Refresh == nil)
	if !ok && a.Refresh != nil {
		a.Refresh()
		p, ok = a.Pairs.Take(s)
	}
	if !ok || !p.Known {
		return nil, false
	}
	return a.Nets.NetnsChains(ns.ID{Dev: a.NsDev, Ino: p.NetnsIno, Unique: p.NetnsID}), true
}
