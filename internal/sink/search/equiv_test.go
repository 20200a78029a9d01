package search

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contid/contid/internal/contid"
)

// fuzzQueries returns a few queries around one contid.
func fuzzQueries(id uint64) []Query {
	return []Query{{}, {Contids: []contid.ID{contid.ID(id)}}, {Contids: []contid.ID{contid.ID(id)}, Exact: true}, {Keys: []string{"k"}}}
}

// checkEquivalent searches log with each query, scanning and through
// the index, and fails when they differ.
func checkEquivalent(t *testing.T, log []byte, qs []Query) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, log, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range qs {
		want := collect(t, []string{path}, &qs[i], Options{NoIndex: true})
		for pass := 0; pass < 2; pass++ {
			got := collect(t, []string{path}, &qs[i], Options{BlockSize: 64})
			if got != want {
				t.Fatalf("query %+v pass %d: indexed\n%s\nscan\n%s", qs[i], pass, got, want)
			}
		}
	}
}

func collect(t *testing.T, files []string, q *Query, opt Options) string {
	t.Helper()
	out, _ := collectStats(t, files, q, opt)
	return out
}

// collectStats is collect with the search's Stats.
func collectStats(t *testing.T, files []string, q *Query, opt Options) (string, Stats) {
	t.Helper()
	var out []byte
	st, err := Search(files, q, opt, func(ev *Event) error {
		for _, l := range ev.Lines {
			out = append(out, l...)
		}
		out = append(out, "--\n"...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(out), st
}

// TestLongAndTornLines: a line over records.MaxLineLen is skipped without
// being held whole, a last line without its newline is skipped, both are
// counted, and the events around them are found, indexed or not.
func TestLongAndTornLines(t *testing.T) {
	long := "type=SYSCALL msg=audit(1.000:2): a0=" + strings.Repeat("A", 200<<10) + "\n"
	log := line("SYSCALL", 1, 1, "pid=1") + line("EOE", 1, 1, "") + long +
		line("SYSCALL", 1, 3, "pid=3") + line("EOE", 1, 3, "") + "type=SYSCALL msg=audit(1.000:4): pi"
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, opt := range []Options{{NoIndex: true}, {}, {}} {
		var serials []uint64
		st, err := Search([]string{path}, &Query{}, opt, func(ev *Event) error {
			serials = append(serials, ev.Stamp.Serial)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(serials) != "[1 3]" || st.Malformed != 1 || st.Torn != 1 {
			t.Errorf("%+v: events %v, stats %+v; want [1 3], 1 malformed, 1 torn", opt, serials, st)
		}
	}
}
