package search

import (
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
)

func randomQuery(rng *rand.Rand, info genInfo, start, span int64) Query {
	var q Query
	n := len(info.Parents)
	for len(q.Contids) == 0 || rng.Intn(4) == 0 {
		q.Contids = append(q.Contids, contid.ID(1+rng.Intn(n+2)))
		if rng.Intn(3) == 0 {
			break
		}
	}
	if rng.Intn(5) == 0 {
		q.Contids = nil
	}
	q.Exact = rng.Intn(4) == 0
	if rng.Intn(2) == 0 {
		q.Start, q.HasStart = start+rng.Int63n(span), true
		q.End, q.HasEnd = q.Start+rng.Int63n(span/4+1), true
	}
	if rng.Intn(4) == 0 {
		q.Keys = []string{[]string{"exec", "files", "net", "priv", "none"}[rng.Intn(5)]}
	}
	if rng.Intn(4) == 0 {
		q.Types = []records.Type{[]records.Type{1300, 1309, 2900, 2901, 2905, 1005, 1400, 1327}[rng.Intn(8)]}
	}
	if rng.Intn(8) == 0 {
		q.Success = []string{"yes", "no"}[rng.Intn(2)]
	}
	if rng.Intn(10) == 0 {
		q.Serials = []uint64{1000 + uint64(rng.Intn(3000))}
	}
	if rng.Intn(10) == 0 {
		q.UIDs = []string{"1000"}
	}
	return q
}

// TestIndexEquivalence is the index's contract: over generated logs
// (rotations, nested chains, interleaved events, a torn last line, forged
// and malformed lines) and thousands of random queries, the indexed
// search returns exactly the events of a scan, in the same order; also
// after the logs grow, rotate, and when sidecars are torn, corrupt, stale
// or of a file that replaced the indexed one.
func TestIndexEquivalence(t *testing.T) {
	queries := 1600
	if testing.Short() {
		queries = 200
	}
	rng := rand.New(rand.NewSource(1))
	dir := t.TempDir()
	const start, span = 1795687200, 7200
	info := mustGenLogs(t, genConfig{Dir: dir, Containers: 40, Bytes: 160 << 10, Rotations: 3, Start: start, Span: span, Seed: 7, Interleave: 0.1, Torn: true})
	opt := Options{BlockSize: 1024}
	check := func(phase string, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			q := randomQuery(rng, info, start, span)
			want := collect(t, info.Files, &q, Options{NoIndex: true})
			got := collect(t, info.Files, &q, opt)
			if got != want {
				t.Fatalf("%s: query %+v: indexed search gave %d bytes, the scan %d", phase, q, len(got), len(want))
			}
		}
	}
	// The first search builds the sidecars; the rest use them.
	st, err := Search(info.Files, &Query{}, opt, func(*Event) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if st.Rebuilt != len(info.Files) {
		t.Fatalf("first search wrote %d sidecars, want %d", st.Rebuilt, len(info.Files))
	}
	q := Query{Contids: []contid.ID{5}}
	if st, err = Search(info.Files, &q, opt, func(*Event) error { return nil }); err != nil || st.Indexed != len(info.Files) || st.BytesRead >= st.Bytes/2 {
		t.Fatalf("indexed search: %+v, %v: want every file indexed and under half the bytes read", st, err)
	}
	check("fresh", queries)

	// The log grows (completing the torn line): the tail is scanned and
	// indexed by the next search.
	cur := info.Files[len(info.Files)-1]
	f, err := os.OpenFile(cur, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("1795694400.500:99999): arch=c000003e syscall=59 success=yes exit=0 pid=1 key=\"exec\"\n")
	f.WriteString("type=UNKNOWN[2901] msg=audit(1795694400.500:99999): pid=1 uid=0 auid=0 ses=1 record=1 contid=5\n")
	f.Close()
	check("grown", 100)

	// Rotation by rename: sidecars follow their inode.
	for i := range info.Files {
		to := cur + ".1"
		if i < len(info.Files)-1 {
			to = rotName(info.Files[i])
		}
		if err := os.Rename(info.Files[i], to); err != nil {
			t.Fatal(err)
		}
		info.Files[i] = to
	}
	if err := os.WriteFile(cur, []byte("type=EOE msg=audit(1795694401.000:100000):\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	info.Files = append(info.Files, cur)
	check("rotated", 100)

	// Damaged sidecars are ignored (and rewritten).
	ents, _ := os.ReadDir(dir + "/" + IndexDirName)
	for i, e := range ents {
		p := dir + "/" + IndexDirName + "/" + e.Name()
		b, _ := os.ReadFile(p)
		switch i % 3 {
		case 0:
			b = b[:len(b)/2] // torn
		case 1:
			b[len(b)/3] ^= 0x40 // corrupt
		case 2:
			b = append(b, 0) // trailing garbage
		}
		os.WriteFile(p, b, 0o600)
	}
	check("damaged", 100)

	// A log replaced by another of the same size under the same name: its
	// inode differs, so the old sidecar is not used.
	b, _ := os.ReadFile(info.Files[0])
	os.Remove(info.Files[0])
	b2 := []byte(strings.ReplaceAll(string(b), "contid=1,", "contid=3,"))
	os.WriteFile(info.Files[0], b2, 0o600)
	check("replaced", 100)
}

func rotName(p string) string {
	i := strings.LastIndexByte(p, '.')
	n, _ := strconv.Atoi(p[i+1:])
	return p[:i+1] + strconv.Itoa(n+1)
}
