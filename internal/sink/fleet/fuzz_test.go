package fleet

import (
	"fmt"
	"strings"
	"testing"

	"github.com/contid/contid/internal/contid"
)

// FuzzEventOfMsg: a message's data comes from the stream, where any host
// (a compromised one too) may have written it under its own name: any
// bytes give an event or false, never a panic, and a well-formed
// message gives back its lines.
func FuzzEventOfMsg(f *testing.F) {
	f.Add([]byte("type=SYSCALL msg=audit(1.000:1): pid=1\ntype=EOE msg=audit(1.000:1):\n"))
	f.Add([]byte("{\"contid\":[]}\ntype=SYSCALL msg=audit(1.000:1): pid=1\n"))
	f.Add([]byte("{"))
	f.Add([]byte("type=SYSCALL msg=audit(1.000:1): pid=1\ntype=SYSCALL msg=audit(2.000:2): pid=1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, ok := EventOfMsg(data)
		if !ok {
			return
		}
		body := string(data)
		if strings.HasPrefix(body, "{") {
			body = body[strings.IndexByte(body, '\n')+1:]
		}
		for _, l := range ev.Lines {
			if !strings.Contains(body, l) {
				t.Fatalf("line %q not in the message", l)
			}
		}
		ev.Parse()
	})
}

// FuzzParseBatch: a message's data comes from the stream, where any host
// may have written it: any bytes give frames inside the data or false,
// never a panic; frames written by AppendBatchHead and the encoder's
// form read back.
func FuzzParseBatch(f *testing.F) {
	f.Add([]byte("contid-batch 1 h:b:1.000:1+2 2\n0 h:b:1.000:1 4\nabc\n1 h:b:1.000:2 0\n"))
	f.Add([]byte("contid-batch 1 x 1\n0 y 99999999999\n"))
	f.Add([]byte("contid-batch 1 x 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		batch, frames, ok := ParseBatch(data, nil)
		if !ok {
			return
		}
		if batch == "" || uint64(len(frames)) != batchEvents(data) {
			t.Fatalf("batch %q, %d frames, head says %d", batch, len(frames), batchEvents(data))
		}
		// Written again, the frames give the same data.
		b := AppendBatchHead(nil, batch, uint64(len(frames)))
		for _, fr := range frames {
			b = fmt.Appendf(b, "%d %s %d\n%s", fr.Index, fr.ID, len(fr.Body), fr.Body)
		}
		if _, again, ok := ParseBatch(b, nil); !ok || len(again) != len(frames) {
			t.Fatalf("%q does not read back", b)
		}
	})
}

// FuzzParseSubject: subjects round-trip, and no string panics.
func FuzzParseSubject(f *testing.F) {
	f.Add("contid.h.c.1.2.e")
	f.Add("contid.h.h")
	f.Add("contid.h.c.more.e")
	f.Fuzz(func(t *testing.T, s string) {
		host, c, err := ParseSubject(s)
		if err != nil {
			return
		}
		if got := string(AppendSubject(nil, host, c)); got != s && len(c) <= MaxDepth {
			// Only a canonical subject round-trips (no leading zeros).
			if _, c2, err := ParseSubject(got); err != nil || !contid.Chain(c2).Equal(c) {
				t.Fatalf("%q → %q %v → %q", s, host, c, got)
			}
		}
	})
}
