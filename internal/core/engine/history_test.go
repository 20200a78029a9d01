package engine

import (
	"testing"
)

func TestAttribute(t *testing.T) {
	const ms = int64(1e6)
	w := newWorld(t)
	t0 := w.now
	at := func(d int64) int64 { return t0 + d*ms }
	fork := func(parent, pid int32, when int64) {
		w.e.Fork(Fork{Time: when, Parent: parent, Child: pid, ChildTGID: pid, Start: uint64(when)})
	}
	// 5000 is contained (7), runs from 10 ms to 100 ms; then the uncontained
	// 5000 (child of 100 too) runs from 400 ms.
	orch := int32(4000)
	fork(100, orch, at(1))
	fork(orch, 5000, at(10))
	if _, err := w.e.SetContid(SetContid{Time: at(11), Caller: w.ref(orch), CallerCap: true, Target: 5000, Value: "7"}); err != nil {
		t.Fatal(err)
	}
	w.e.Exit(Exit{Time: at(100), PID: 5000})
	fork(100, 5000, at(400))

	tests := []struct {
		name  string
		pid   int32
		at    int64
		ppid  int32
		chain string
		ok    bool
	}{
		{"record of a process that exited before the record was read", 5000, at(50), 0, "7", true},
		{"its exit_group, stamped just before the exit", 5000, at(100), 0, "7", true},
		{"the new process that reused the pid", 5000, at(450), 0, "-1", true},
		{"stamped a little before the new fork (coarse clock)", 5000, at(390), 0, "-1", true},
		{"stamped 200 ms before the new fork (timer ticks late)", 5000, at(200), 0, "-1", true},
		{"after the old life, earlier than any late tick explains", 5000, at(120), 0, "", false},
		{"unknown pid", 31111, at(50), 0, "", false},
		{"a seeded process", 100, at(50), 0, "-1", true},
	}
	for _, tt := range tests {
		chain, ok := w.e.Attribute(tt.pid, tt.at, tt.ppid)
		if ok != tt.ok || ok && chain.String() != tt.chain {
			t.Errorf("%s: got %q %v, want %q %v", tt.name, chain.String(), ok, tt.chain, tt.ok)
		}
	}

	// The pid reused within the clocks' slack: the ppid decides; without
	// it, the engine refuses to guess.
	fork(orch, 6000, at(400))
	w.e.SetContid(SetContid{Time: at(401), Caller: w.ref(orch), CallerCap: true, Target: 6000, Value: "8"})
	w.e.Exit(Exit{Time: at(500), PID: 6000})
	fork(100, 6000, at(501))
	if chain, ok := w.e.Attribute(6000, at(500), orch); !ok || chain.String() != "8" {
		t.Errorf("ppid hint, old process: %q %v", chain, ok)
	}
	if chain, ok := w.e.Attribute(6000, at(500), 100); !ok || chain.String() != "-1" {
		t.Errorf("ppid hint, new process: %q %v", chain, ok)
	}
	if _, ok := w.e.Attribute(6000, at(500), 0); ok {
		t.Error("ambiguous reuse attributed without a hint")
	}
	if st := w.e.AttributionStats(); st.Ambiguous != 1 || st.Unknown != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestHistoryRing(t *testing.T) {
	h := newHistory(4)
	for i := 0; i < 10; i++ {
		h.add(tomb{pid: int32(i % 3), born: int64(i), died: int64(i) + 1})
	}
	// Only the last 4 exits remain, each reachable from its pid's chain.
	seen := 0
	for pid := int32(0); pid < 3; pid++ {
		for tb := h.get(h.latest[pid]); tb != nil; tb = h.get(tb.prev) {
			if tb.pid != pid || tb.born < 6 {
				t.Fatalf("pid %d reached %+v", pid, *tb)
			}
			seen++
		}
	}
	if seen != 4 {
		t.Fatalf("reached %d tombs, want 4", seen)
	}
}
