package reassembly

import (
	"testing"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/testing/pipelinetest"
)

type nopSink struct{ events, lost uint64 }

func (s *nopSink) Event(e Event)           { s.events++ }
func (s *nopSink) Lost(n uint64, why Loss) { s.lost += n }

// BenchmarkPush replays the records of testdata/normal.log and
// interleaved.log again and again with fresh serials and times, two events
// interleaved at a time, and reports records/s; allocs/op is per record.
func BenchmarkPush(b *testing.B) {
	var evs [][]records.Record
	for _, path := range []string{"testdata/normal.log", "testdata/interleaved.log"} {
		evs = append(evs, pipelinetest.Events(b, path)...)
	}
	// Interleave pairs of events record by record, as two CPUs would.
	var stream []records.Record
	for i := 0; i+1 < len(evs); i += 2 {
		x, y := evs[i], evs[i+1]
		for j := 0; j < len(x) || j < len(y); j++ {
			if j < len(x) {
				stream = append(stream, x[j])
			}
			if j < len(y) {
				stream = append(stream, y[j])
			}
		}
	}
	sink := &nopSink{}
	ra := New(Config{}, sink)
	serials := map[records.Stamp]uint64{}
	next := uint64(1)
	ms := int64(1700000000000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := stream[i%len(stream)]
		if i%len(stream) == 0 {
			clear(serials)
			ms += 10
		}
		s, ok := serials[r.Stamp]
		if !ok {
			s = next
			next++
			serials[r.Stamp] = s
		}
		r.Stamp = records.Stamp{Sec: ms / 1000, Msec: uint32(ms % 1000), Serial: s}
		r.Node = ""
		ra.Push(r)
	}
	ra.Flush()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	// Only the events cut off by the end of the loop may be incomplete.
	if st := ra.Stats(); st.Gap != 0 || st.Late != 0 || st.Discontinuities != 0 {
		b.Fatalf("unexpected loss: %+v", st)
	}
}
