package tracker

import (
	"os"
	"reflect"
	"testing"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core/engine"
)

func TestParentsFirst(t *testing.T) {
	in := []engine.SeedContainer{
		{ID: 3, Parent: 2}, {ID: 1, Parent: contid.Unset}, {ID: 2, Parent: 1}, {ID: 9, Parent: 77},
	}
	out := parentsFirst(in)
	pos := map[contid.ID]int{}
	for i, c := range out {
		pos[c.ID] = i
	}
	if len(out) != 4 || pos[1] > pos[2] || pos[2] > pos[3] {
		t.Fatalf("order %+v", out)
	}
	if out[pos[9]].Parent != contid.Unset {
		t.Fatal("a container with a missing parent must become top-level")
	}
}

// TestPinned: container objects kept in the pinned map come back, parents
// first, from a map opened again (a restarted daemon); a forgotten one
// does not; Unpin removes the map with the rest.
func TestPinned(t *testing.T) {
	requireRoot(t)
	dir := testPinDir(t)
	if err := ensureBPFFS(dir); err != nil {
		t.Fatal(err)
	}
	p, err := OpenPinned(dir)
	if err != nil {
		t.Fatal(err)
	}
	owner := engine.TaskRef{PID: 10, Start: 77}
	for _, c := range []engine.ContainerInfo{
		{Chain: contid.Chain{5, 4}, Owner: owner, Name: "child"},
		{Chain: contid.Chain{4}, Owner: owner, Name: "parent"},
		{Chain: contid.Chain{6}, Name: "gone"},
	} {
		if err := p.Keep(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Forget(6); err != nil {
		t.Fatal(err)
	}
	if err := p.Forget(6); err != nil {
		t.Fatalf("forgetting a missing container: %v", err)
	}
	p.Close()
	if p, err = OpenPinned(dir); err != nil {
		t.Fatal(err)
	}
	got, err := p.List()
	p.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := []engine.SeedContainer{
		{ID: 4, Owner: owner, Parent: contid.Unset, Name: "parent"},
		{ID: 5, Owner: owner, Parent: 4, Name: "child"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("List: %+v, want %+v", got, want)
	}
	if err := Unpin(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Unpin left %s: %v", dir, err)
	}
}
