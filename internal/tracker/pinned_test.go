package tracker

import (
	"testing"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/engine"
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
