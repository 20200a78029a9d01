package netpkt

import (
	"testing"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/pipeline/provenance"
	"github.com/contid/contid/internal/records"
)

func TestTable(t *testing.T) {
	tb := NewTable(2)
	tb.Add(Pair{Serial: 1, Sec: 10, Msec: 5, Known: true, NetnsIno: 7})
	tb.Add(Pair{Serial: 2, Sec: 10, Msec: 6, Known: true, NetnsIno: 8})
	tb.Add(Pair{Serial: 3, Sec: 10, Msec: 7, Known: true, NetnsIno: 9}) // evicts 1
	tests := []struct {
		name  string
		stamp records.Stamp
		ok    bool
		ino   uint32
	}{
		{"evicted", records.Stamp{Sec: 10, Msec: 5, Serial: 1}, false, 0},
		{"exact", records.Stamp{Sec: 10, Msec: 6, Serial: 2}, true, 8},
		{"taken once", records.Stamp{Sec: 10, Msec: 6, Serial: 2}, false, 0},
		{"same serial, other stamp", records.Stamp{Sec: 10, Msec: 8, Serial: 3}, false, 0},
		{"mismatch is forgotten", records.Stamp{Sec: 10, Msec: 7, Serial: 3}, false, 0},
		{"own serial space", records.Stamp{Sec: 10, Msec: 7, Serial: records.OwnSerialBase + 3}, false, 0},
	}
	for _, tc := range tests {
		p, ok := tb.Take(tc.stamp)
		if ok != tc.ok || p.NetnsIno != tc.ino {
			t.Errorf("%s: got %+v %v, want ok=%v ino=%d", tc.name, p, ok, tc.ok, tc.ino)
		}
	}
	want := TableStats{Added: 3, Taken: 1, Missing: 4, Mismatch: 1, Evicted: 1}
	if got := tb.Stats(); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

type nets map[ns.ID][]contid.Chain

func (n nets) NetnsChains(id ns.ID) []contid.Chain { return n[id] }

type noProcs struct{}

func (noProcs) Attribute(int32, int64, int32) (contid.Chain, bool) { return nil, false }

func TestAttributor(t *testing.T) {
	tb := NewTable(0)
	a := Attributor{Attributor: noProcs{}, Pairs: tb, NsDev: 4,
		Nets: nets{{Dev: 4, Ino: 100, Unique: 9}: {{5, 2}, {4, 2}}}}
	var _ provenance.PacketAttributor = a
	tb.Add(Pair{Serial: 1, Sec: 1, Known: true, NetnsIno: 100, NetnsID: 9})
	tb.Add(Pair{Serial: 2, Sec: 1, Known: true, NetnsIno: 101, NetnsID: 10})
	tb.Add(Pair{Serial: 3, Sec: 1, Why: WhyNoTraversal})
	tb.Add(Pair{Serial: 4, Sec: 1, Known: true, NetnsIno: 100, NetnsID: 9})
	tests := []struct {
		node   string
		serial uint64
		chains int
		known  bool
	}{
		{"", 1, 2, true},       // both containers of the namespace
		{"", 2, 0, true},       // a namespace without containers
		{"", 3, 0, false},      // logged outside any watched traversal
		{"", 5, 2, true},       // paired after the refresh
		{"", 6, 0, false},      // no pair, even after a refresh
		{"other", 4, 0, false}, // another host's record
	}
	// Serial 5's pair comes with the refresh that a miss triggers.
	refreshed := 0
	a.Refresh = func() {
		refreshed++
		tb.Add(Pair{Serial: 5, Sec: 1, Known: true, NetnsIno: 100, NetnsID: 9})
	}
	for _, tc := range tests {
		c, known := a.PacketChains(tc.node, records.Stamp{Sec: 1, Serial: tc.serial})
		if len(c) != tc.chains || known != tc.known {
			t.Errorf("node %q serial %d: %v %v, want %d chains, known %v", tc.node, tc.serial, c, known, tc.chains, tc.known)
		}
	}
	if refreshed != 2 {
		t.Errorf("%d refreshes, want 2 (serials 5 and 6 missed at first)", refreshed)
	}
	if st := tb.Stats(); st.Missing != 1 || st.NotLocal != 1 {
		t.Errorf("Missing %d, NotLocal %d, want 1 and 1: a miss counts once, after its refresh", st.Missing, st.NotLocal)
	}
}

// TestAttributorLocal: with a Local gate (a plugin's feed, whose lines may
// name a node), a record is placed only while the gate vouches for it,
// and a refused record leaves its pair alone.
func TestAttributorLocal(t *testing.T) {
	tb := NewTable(0)
	local := true
	a := Attributor{Attributor: noProcs{}, Pairs: tb, NsDev: 4,
		Nets:  nets{{Dev: 4, Ino: 100, Unique: 9}: {{5}}},
		Local: func(node string) bool { return local && (node == "" || node == "here") }}
	for s := uint32(1); s <= 4; s++ {
		tb.Add(Pair{Serial: s, Sec: 1, Known: true, NetnsIno: 100, NetnsID: 9})
	}
	tests := []struct {
		local  bool
		node   string
		serial uint64
		chains int
	}{
		{true, "here", 1, 1},  // a node the gate knows
		{true, "", 2, 1},      // no node (auditd's name_format none)
		{true, "there", 3, 0}, // refused
		{false, "here", 4, 0}, // the feed may hold other hosts' records: refused
		{true, "here", 4, 1},  // its pair was left alone
	}
	for _, tc := range tests {
		local = tc.local
		c, known := a.PacketChains(tc.node, records.Stamp{Sec: 1, Serial: tc.serial})
		if len(c) != tc.chains || known != (tc.chains > 0) {
			t.Errorf("local %v node %q serial %d: %v %v, want %d chains", tc.local, tc.node, tc.serial, c, known, tc.chains)
		}
	}
	if st := tb.Stats(); st.NotLocal != 2 || st.Taken != 3 {
		t.Errorf("stats %+v, want NotLocal 2, Taken 3", st)
	}
}
