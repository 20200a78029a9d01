package search

import (
	"os"
	"path/filepath"
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
	var out []byte
	_, err := Search(files, q, opt, func(ev *Event) error {
		for _, l := range ev.Lines {
			out = append(out, l...)
		}
		out = append(out, "--\n"...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
