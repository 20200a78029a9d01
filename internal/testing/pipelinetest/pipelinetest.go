// Package pipelinetest holds what the tests of the record pipeline share:
// a log read as whole events, and an attribution table. It is for tests
// only; a failure fails the test.
package pipelinetest

import (
	"bufio"
	"os"
	"testing"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
)

// Events reads the log at path and groups adjacent lines with one stamp
// and node into an event. It stands in for the reassembler, so the log must hold
// whole events in order; a line that does not parse fails t.
func Events(t testing.TB, path string) [][]records.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs [][]records.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		r, err := records.ParseLine(sc.Text())
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if n := len(evs); n > 0 && evs[n-1][0].Stamp == r.Stamp && evs[n-1][0].Node == r.Node {
			evs[n-1] = append(evs[n-1], r)
			continue
		}
		evs = append(evs, []records.Record{r})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return evs
}

// Table attributes each pid to its chain in the table; a pid not in it has
// no container, and Unknown cannot be placed at all (ok false).
type Table map[int32]contid.Chain

// Unknown is the pid a Table cannot place.
const Unknown = 999

// Attribute implements provenance.Attributor.
func (tb Table) Attribute(pid int32, at int64, ppid int32) (contid.Chain, bool) {
	if pid == Unknown {
		return nil, false
	}
	return tb[pid], true
}
