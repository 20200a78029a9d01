package search

import (
	"encoding/binary"
	"fmt"
	"os"
	"testing"
)

// BenchmarkIndexDesigns measures, over the logs of -search.dir, the size
// the two alternatives to the sidecar would take, for docs/search.md:
//
//   - an inverted index, as an embedded key-value store would hold it: per
//     term (container, key, type) the list of events holding it, as
//     delta-coded varints of the event's ordinal, plus the offsets of
//     every event's lines (so that a hit reads only its lines); a B-tree
//     store adds its page overhead to this lower bound;
//   - a columnar file: per event its time, serial, first offset, types,
//     chains and keys as varints (uncompressed).
func BenchmarkIndexDesigns(b *testing.B) {
	files, err := Files(*benchDir)
	if *benchDir == "" || err != nil {
		b.Skip("needs -search.dir with logs")
	}
	var logBytes, events, postings, inverted, columnar, lineOffsets int64
	last := map[string]int64{}
	var buf [binary.MaxVarintLen64]byte
	uv := func(v uint64) int64 { return int64(binary.PutUvarint(buf[:], v)) }
	var prevSec, prevSer uint64
	var prevOff int64
	for i := 0; i < b.N; i++ {
		for _, f := range files {
			fi, _ := os.Stat(f)
			logBytes += fi.Size()
		}
		_, err := Search(files, &Query{}, Options{NoIndex: true}, func(ev *Event) error {
			events++
			off := ev.First
			for _, l := range ev.Lines {
				lineOffsets += uv(uint64(len(l)))
			}
			for _, t := range eventTerms(ev) {
				postings++
				inverted += uv(uint64(events - last[t]))
				last[t] = events
			}
			columnar += uv(uint64(ev.Stamp.Sec)-prevSec) + uv(ev.Stamp.Serial-prevSer) + uv(uint64(off-prevOff))
			prevSec, prevSer, prevOff = uint64(ev.Stamp.Sec), ev.Stamp.Serial, off
			for i := range ev.Records {
				columnar += uv(uint64(ev.Records[i].Type))
			}
			for _, c := range Chains(ev) {
				for _, id := range c {
					columnar += uv(uint64(id))
				}
			}
			columnar += int64(len(Keys(ev)))
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for t := range last {
		inverted += int64(len(t)) + 8
	}
	inverted += lineOffsets + events*4 // event ordinal → offset
	pct := func(n int64) float64 { return 100 * float64(n) / float64(logBytes) }
	fmt.Printf("logs %d MiB, %d events, %d postings\n", logBytes>>20, events, postings)
	fmt.Printf("  inverted index (lower bound)  %8d KiB  %.2f%% of the logs\n", inverted>>10, pct(inverted))
	fmt.Printf("  columnar file (uncompressed)  %8d KiB  %.2f%% of the logs\n", columnar>>10, pct(columnar))
}
