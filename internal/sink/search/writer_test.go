package search

import (
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/contid/contid/internal/contid"
)

// TestIndexWriter writes a generated log in pieces of random sizes (lines
// split across writes), feeding an IndexWriter as a log writer would and
// syncing at random points; searches using only that sidecar (read-only)
// must equal the scan, and read little of the file.
func TestIndexWriter(t *testing.T) {
	src := t.TempDir()
	info := mustGenLogs(t, genConfig{Dir: src, Containers: 30, Bytes: 200 << 10, Start: 1795687200, Span: 3600, Seed: 3, Interleave: 0.1})
	data, err := os.ReadFile(info.Files[0])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	half := len(data) / 3
	if err := os.WriteFile(path, data[:half], 0o600); err != nil { // a log that exists before
		t.Fatal(err)
	}
	w, err := NewIndexWriter(path, 1024)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	rest := data[half:]
	for len(rest) > 0 {
		n := min(len(rest), 1+rng.Intn(3000))
		if _, err := f.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		w.Write(rest[:n])
		rest = rest[n:]
		if rng.Intn(20) == 0 {
			if err := w.Sync(); err != nil {
				t.Fatal(err)
			}
			checkIndexed(t, rng, info, path)
		}
	}
	f.Close()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkIndexed(t, rng, info, path)
	q := Query{Contids: []contid.ID{5}, Exact: true}
	st, err := Search([]string{path}, &q, Options{ReadOnly: true}, func(*Event) error { return nil })
	if err != nil || st.Indexed != 1 || st.BytesRead > st.Bytes/2 {
		t.Fatalf("the writer's sidecar was not used: %+v, %v", st, err)
	}
}

func checkIndexed(t *testing.T, rng *rand.Rand, info genInfo, path string) Stats {
	t.Helper()
	var last Stats
	for i := 0; i < 50; i++ {
		q := randomQuery(rng, info, 1795687200, 3600)
		want := collect(t, []string{path}, &q, Options{NoIndex: true})
		got, st := collectStats(t, []string{path}, &q, Options{ReadOnly: true})
		if got != want {
			t.Fatalf("query %+v: indexed %d bytes, scan %d", q, len(got), len(want))
		}
		last = st
	}
	return last
}
