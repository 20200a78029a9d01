package fleet

import (
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

func TestEncoder(t *testing.T) {
	const (
		host   = "type=SYSCALL msg=audit(1700000000.005:42): pid=1 uid=0\n"
		nested = "type=SYSCALL msg=audit(1700000000.123:43): pid=7 uid=0\ntype=UNKNOWN[2901] msg=audit(1700000000.123:43): record=1 contid=7,^4\n"
		two    = "type=SYSCALL msg=audit(1700000001.000:44): pid=7 uid=0\ntype=UNKNOWN[2901] msg=audit(1700000001.000:44): record=1 contid=7,^4,9\n"
		op     = "type=UNKNOWN[2900] msg=audit(1700000002.000:45): op=set opid=5 contid=12 old-contid=2 res=success\n"
	)
	for _, tc := range []struct {
		lines string
		late  bool
		want  []string // id subject
	}{
		{host, false, []string{"h:b:1700000000.005:42 contid.h.h"}},
		{nested, false, []string{"h:b:1700000000.123:43 contid.h.c.4.7.e"}},
		{two, false, []string{"h:b:1700000001.000:44 contid.h.c.4.7.e", "h:b:1700000001.000:44/1 contid.h.c.9.e"}},
		// contid's own record: the chain the local search reads (12 in 2).
		{op, false, []string{"h:b:1700000002.000:45 contid.h.c.2.12.e"}},
		// A late part shares its event's stamp: its lines tell it apart.
		{nested, true, []string{"h:b:1700000000.123:43:"}},
	} {
		for _, json := range []bool{false, true} {
			e := Encoder{Host: "h", Boot: "b", JSON: json}
			ev := event(t, tc.lines)
			ev.Late = tc.late
			msgs := e.Append(nil, ev)
			if len(msgs) != len(tc.want) {
				t.Fatalf("%q: %d messages", tc.lines, len(msgs))
			}
			for i, m := range msgs {
				if got := m.ID + " " + m.Subject; !strings.HasPrefix(got, tc.want[i]) || tc.late == (got == tc.want[i]) {
					t.Errorf("%q: message %d is %q, want %q", tc.lines, i, got, tc.want[i])
				}
				if EventOf(m.ID) != EventOf(msgs[0].ID) {
					t.Errorf("copy %q is not of event %q", m.ID, msgs[0].ID)
				}
				got, ok := EventOfMsg(m.Data)
				if !ok || strings.Join(got.Lines, "") != tc.lines {
					t.Errorf("%q (json %v): the message gives back %v %+v", tc.lines, json, ok, got)
				}
				if json != strings.HasPrefix(string(m.Data), "{") {
					t.Errorf("json %v: %q", json, m.Data)
				}
			}
		}
	}
}
