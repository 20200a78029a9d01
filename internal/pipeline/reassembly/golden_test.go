package reassembly

import (
	"bufio"
	"bytes"
	"fmt"
	"github.com/contid/contid/internal/testing/golden"
	"strings"
	"testing"

	"github.com/contid/contid/internal/records"
)

// recorder is a Sink that writes every call as a line, prefixed with where
// it came from, and checks the Sink contract on the way.
type recorder struct {
	b     strings.Builder
	where string
	seen  map[string]int // raw line → deliveries
}

func (r *recorder) Event(e Event) {
	fmt.Fprintf(&r.b, "%s event %s", r.where, stampString(e.Stamp))
	if n := e.Records[0].Node; n != "" {
		fmt.Fprintf(&r.b, " node=%s", n)
	}
	r.b.WriteString(" ")
	for i, rec := range e.Records {
		if i > 0 {
			r.b.WriteString(",")
		}
		r.b.WriteString(rec.Type.String())
		if r.seen != nil {
			r.seen[rec.Raw]++
		}
	}
	if e.Incomplete {
		r.b.WriteString(" incomplete")
	}
	if e.Late {
		r.b.WriteString(" late")
	}
	r.b.WriteString("\n")
}

func (r *recorder) Lost(n uint64, why Loss) {
	fmt.Fprintf(&r.b, "%s lost %s %d\n", r.where, why, n)
}

func stampString(s records.Stamp) string {
	return fmt.Sprintf("%d.%03d:%d", s.Sec, s.Msec, s.Serial)
}

// TestGolden replays every testdata/*.log (hand-written, see
// testdata/README.md) with the default Config, then Flush, and compares
// the Sink calls with testdata/<name>.golden.
func TestGolden(t *testing.T) {
	golden.Each(t, "testdata/*.log", func(t *testing.T, name string, data []byte) {
		rec := &recorder{seen: map[string]int{}}
		ra := New(Config{}, rec)
		var lines []string
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, records.MaxLineLen+2)
		for n := 1; sc.Scan(); n++ {
			r, err := records.ParseLine(sc.Text())
			if err != nil {
				t.Fatalf("testdata/%s.log:%d: %v", name, n, err)
			}
			lines = append(lines, r.Raw)
			rec.where = fmt.Sprintf("L%d", n)
			ra.Push(r)
			if got := ra.Stats().InFlight; got > DefaultMaxInFlight {
				t.Fatalf("%d events in flight", got)
			}
		}
		rec.where = "flush"
		ra.Flush()
		for _, l := range lines {
			if rec.seen[l] != 1 {
				t.Errorf("line delivered %d times: %s", rec.seen[l], l)
			}
		}
		st := ra.Stats()
		fmt.Fprintf(&rec.b, "stats records=%d events=%d gap=%d incomplete=%d late=%d discontinuities=%d\n",
			st.Records, st.Events, st.Gap, st.Incomplete, st.Late, st.Discontinuities)
		golden.Check(t, "testdata/"+name+".golden", []byte(rec.b.String()))
	})
}
