package search

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/contid/contid/internal/contid"
)

// TestSidecarChecksums flips one bit in each part of a sidecar: the
// header, the table, the variable area of a block. A search never returns
// another answer than the scan; a damaged header or table makes the file a
// scan, and a damaged block does when the search needs that block, and
// only then.
func TestSidecarChecksums(t *testing.T) {
	src := t.TempDir()
	info := mustGenLogs(t, genConfig{Dir: src, Containers: 30, Bytes: 200 << 10, Start: 1795687200, Span: 3600, Seed: 9, Interleave: 0.1})
	path := info.Files[0]
	if _, err := Rebuild([]string{path}, 1024); err != nil {
		t.Fatal(err)
	}
	side := sidecarFor(t, path)
	good, err := os.ReadFile(side)
	if err != nil {
		t.Fatal(err)
	}
	n := int(binary.LittleEndian.Uint32(good[8+11*8:]))
	entry := func(i int) []byte { return good[hdrSize+i*entrySize:] }
	varOff := func(i int) int {
		return hdrSize + n*entrySize + int(binary.LittleEndian.Uint64(entry(i)[44:]))
	}
	first := Query{} // every block
	// A query for the events of the first hour's first minutes only: the
	// blocks after them are not read.
	early := Query{Start: 1795687200, End: 1795687200 + 60, HasStart: true, HasEnd: true, Contids: []contid.ID{1}}
	for _, c := range []struct {
		name      string
		at        int
		q         *Query
		wantIndex bool
	}{
		{"header", 20, &first, false},
		{"table", hdrSize + 3*entrySize + 10, &first, false},
		{"block used", varOff(n-3) + 1, &first, false},
		{"block not used", varOff(n-3) + 1, &early, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := append([]byte(nil), good...)
			b[c.at] ^= 0x10
			if err := os.WriteFile(side, b, 0o600); err != nil {
				t.Fatal(err)
			}
			want := collect(t, []string{path}, c.q, Options{NoIndex: true})
			var got []byte
			st, err := Search([]string{path}, c.q, Options{ReadOnly: true}, func(ev *Event) error {
				for _, l := range ev.Lines {
					got = append(got, l...)
				}
				got = append(got, "--\n"...)
				return nil
			})
			if err != nil || string(got) != want {
				t.Fatalf("indexed search differs from the scan (%v)", err)
			}
			if (st.Indexed == 1) != c.wantIndex {
				t.Fatalf("sidecar used: %v, want %v", st.Indexed == 1, c.wantIndex)
			}
		})
	}
}
