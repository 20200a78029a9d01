package fleet

import (
	"fmt"
	"strings"
	"testing"

	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/records"
)

func event(t *testing.T, lines string) *pipeline.Event {
	t.Helper()
	var recs []records.Record
	for _, l := range strings.Split(strings.TrimSuffix(lines, "\n"), "\n") {
		r, err := records.ParseLine(l)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return &pipeline.Event{Records: recs}
}

// TestEncoder: a batch's events go to one message per subject, in the
// order the subjects first appear; an event naming two chains goes to
// both; each message gives back its events' lines, identities and places
// in the batch; ids name the first event, the chain's place and the
// count.
func TestEncoder(t *testing.T) {
	const (
		host   = "type=SYSCALL msg=audit(1700000000.005:42): pid=1 uid=0\n"
		nested = "type=SYSCALL msg=audit(1700000000.123:43): pid=7 uid=0\ntype=UNKNOWN[2901] msg=audit(1700000000.123:43): record=1 contid=7,^4\n"
		two    = "type=SYSCALL msg=audit(1700000001.000:44): pid=7 uid=0\ntype=UNKNOWN[2901] msg=audit(1700000001.000:44): record=1 contid=7,^4,9\n"
		op     = "type=UNKNOWN[2900] msg=audit(1700000002.000:45): op=set opid=5 contid=12 old-contid=2 res=success\n"
		late   = nested
		host2  = "type=SYSCALL msg=audit(1700000003.000:46): pid=1 uid=0\n"
	)
	type frame struct {
		index int
		id    string
		lines string
	}
	want := []struct {
		id, subject string
		frames      []frame
	}{
		{"h:b:1700000000.005:42/0+2", "contid.h.h", []frame{{0, "h:b:1700000000.005:42", host}, {5, "h:b:1700000003.000:46", host2}}},
		// A late part shares its event's stamp: its lines tell it apart.
		{"h:b:1700000000.123:43/0+3", "contid.h.c.4.7.e", []frame{{1, "h:b:1700000000.123:43", nested}, {2, "h:b:1700000001.000:44", two}, {4, "h:b:1700000000.123:43:", late}}},
		{"h:b:1700000001.000:44/1+1", "contid.h.c.9.e", []frame{{2, "h:b:1700000001.000:44", two}}},
		// contid's own record: the chain the local search reads (12 in 2).
		{"h:b:1700000002.000:45/0+1", "contid.h.c.2.12.e", []frame{{3, "h:b:1700000002.000:45", op}}},
	}
	for _, json := range []bool{false, true} {
		e := Encoder{Host: "h", Boot: "b", JSON: json}
		for i, l := range []string{host, nested, two, op, late, host2} {
			ev := event(t, l)
			ev.Late = i == 4
			e.Add(ev)
		}
		if e.Events() != 6 {
			t.Fatalf("%d events in the batch", e.Events())
		}
		msgs := e.Flush(nil, nil)
		if len(msgs) != len(want) || e.Events() != 0 {
			t.Fatalf("%d messages, %d events left", len(msgs), e.Events())
		}
		for i, m := range msgs {
			w := want[i]
			if m.Subject != w.subject || m.N != uint64(len(w.frames)) || m.ID != w.id {
				t.Errorf("message %d: %s %s %d, want %s %s", i, m.ID, m.Subject, m.N, w.id, w.subject)
			}
			batch, frames, ok := ParseBatch(m.Data, nil)
			if !ok || batch != "h:b:1700000000.005:42+6" || len(frames) != len(w.frames) || batchEvents(m.Data) != m.N {
				t.Fatalf("message %d: %v %q %d frames of %q", i, ok, batch, len(frames), m.Data)
			}
			for j, f := range frames {
				wf := w.frames[j]
				if f.Index != uint64(wf.index) || f.ID != wf.id && !(wf.index == 4 && strings.HasPrefix(f.ID, wf.id) && len(f.ID) > len(wf.id)) {
					t.Errorf("message %d frame %d: %d %q, want %d %q", i, j, f.Index, f.ID, wf.index, wf.id)
				}
				got, ok := EventOfMsg(f.Body)
				if !ok || strings.Join(got.Lines, "") != wf.lines {
					t.Errorf("message %d frame %d (json %v): gives back %v %+v", i, j, json, ok, got)
				}
				if json != strings.HasPrefix(string(f.Body), "{") {
					t.Errorf("json %v: %q", json, f.Body)
				}
			}
		}
		// The next batch starts anew.
		e.Add(event(t, host2))
		if msgs := e.Flush(nil, nil); len(msgs) != 1 || msgs[0].ID != "h:b:1700000003.000:46/0+1" {
			t.Fatalf("next batch: %+v", msgs)
		}
	}
}

// A subject's message that would outgrow MaxMsg is closed; the batch's
// next events of that subject go to a new one, with ids of their own.
func TestEncoderMaxMsg(t *testing.T) {
	e := Encoder{Host: "h", Boot: "b", MaxMsg: 1000}
	for i := range 30 {
		e.Add(event(t, fmt.Sprintf("type=SYSCALL msg=audit(1700000000.%03d:%d): pid=1 uid=0\n", i, i+1)))
	}
	msgs := e.Flush(nil, nil)
	if len(msgs) < 3 {
		t.Fatalf("%d messages", len(msgs))
	}
	var next uint64
	ids := map[string]bool{}
	for _, m := range msgs {
		if len(m.Data) > 1100 || ids[m.ID] {
			t.Fatalf("message %s of %d bytes", m.ID, len(m.Data))
		}
		ids[m.ID] = true
		_, frames, ok := ParseBatch(m.Data, nil)
		if !ok {
			t.Fatal("not a batch")
		}
		for _, f := range frames {
			if f.Index != next {
				t.Fatalf("event %d where %d was due", f.Index, next)
			}
			next++
		}
	}
	if next != 30 {
		t.Fatalf("%d events", next)
	}
}

func TestParseBatch(t *testing.T) {
	for _, tc := range []struct {
		data string
		ok   bool
	}{
		{"contid-batch 1 h:b:1.000:1+1 1\n0 h:b:1.000:1 4\nabc\n", true},
		{"contid-batch 1 h:b:1.000:1+1 1\n0 h:b:1.000:1 4\nabc\nx", false}, // trailing bytes
		{"contid-batch 1 h:b:1.000:1+1 2\n0 h:b:1.000:1 4\nabc\n", false},  // a frame missing
		{"contid-batch 1 h:b:1.000:1+1 1\n0 h:b:1.000:1 5\nabc\n", false},  // size beyond the end
		{"contid-batch 1 h:b:1.000:1+1 0\n", false},
		{"contid-batch 2 x 1\n0 a 0\n", false},
		{"type=SYSCALL msg=audit(1.000:1): pid=1\n", false}, // the form of one event per message
	} {
		if _, _, ok := ParseBatch([]byte(tc.data), nil); ok != tc.ok {
			t.Errorf("%q: %v", tc.data, ok)
		}
	}
}
