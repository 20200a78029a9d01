package pipelinetest

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/contid/contid/internal/contid"
)

// TestEvents: adjacent lines with one stamp and node make one event, in
// order.
func TestEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	log := `type=SYSCALL msg=audit(1.000:1): pid=1
type=EXECVE msg=audit(1.000:1): argc=1
type=USER msg=audit(1.000:2): pid=2
type=SYSCALL msg=audit(1.001:3): pid=3
type=PATH msg=audit(1.001:3): item=0
type=PROCTITLE msg=audit(1.001:3): proctitle=6C73
node=b type=PROCTITLE msg=audit(1.001:3): proctitle=6C73
`
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, ev := range Events(t, path) {
		sizes = append(sizes, len(ev))
	}
	if want := []int{2, 1, 3, 1}; !slices.Equal(sizes, want) {
		t.Fatalf("event sizes %v, want %v", sizes, want)
	}
}

// TestTable: a listed pid gets its chain, an unlisted one none, Unknown
// is not placed.
func TestTable(t *testing.T) {
	tb := Table{5: {4, 2}}
	for _, tt := range []struct {
		pid  int32
		want contid.Chain
		ok   bool
	}{{5, contid.Chain{4, 2}, true}, {6, nil, true}, {Unknown, nil, false}} {
		got, ok := tb.Attribute(tt.pid, 0, 1)
		if ok != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("pid %d: %v %v, want %v %v", tt.pid, got, ok, tt.want, tt.ok)
		}
	}
}
