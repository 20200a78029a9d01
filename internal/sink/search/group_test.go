package search

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func line(typ string, sec int64, serial int, rest string) string {
	return fmt.Sprintf("type=%s msg=audit(%d.000:%d): %s\n", typ, sec, serial, rest)
}

// group feeds lines to a Grouper and returns each event as its serials.
func group(lines []string) []string {
	g := NewGrouper(nil)
	var out []string
	var off int64
	take := func() {
		for ev, ok := g.Next(); ok; ev, ok = g.Next() {
			out = append(out, fmt.Sprintf("%d:%d", ev.Stamp.Serial, len(ev.Lines)))
		}
	}
	for _, l := range lines {
		g.Add(off, l)
		off += int64(len(l))
		take()
	}
	g.Flush()
	take()
	return out
}

func TestGrouper(t *testing.T) {
	big := strings.Repeat("x", 1000)
	var span []string
	span = append(span, line("SYSCALL", 10, 1, "pid=1"))
	for i := 0; i < MaxSpan/1000+1; i++ {
		span = append(span, line("SYSCALL", 10, 100+i, "a0="+big), line("EOE", 10, 100+i, ""))
	}
	span = append(span, line("PATH", 10, 1, "item=0"))
	tests := []struct {
		name  string
		lines []string
		want  string // serial:lines per event, in order
	}{
		{"eoe ends", []string{line("SYSCALL", 1, 1, "pid=1"), line("EOE", 1, 1, ""), line("SYSCALL", 1, 1, "pid=1")}, "1:2 1:1"},
		{"interleaved, first-line order", []string{
			line("SYSCALL", 1, 1, "pid=1"), line("SYSCALL", 1, 2, "pid=2"), line("EOE", 1, 2, ""),
			line("PATH", 1, 1, "item=0"), line("EOE", 1, 1, "")}, "1:3 2:2"},
		{"user record and its CONTAINER_ID", []string{
			line("USER", 1, 5, "pid=1 msg='a=b'"), line("UNKNOWN[2901]", 1, 5, "pid=1 record=1 contid=4"),
			line("UNKNOWN[2900]", 1, 6, "op=set contid=4"), line("SYSCALL", 1, 7, "pid=1"), line("UNKNOWN[2900]", 1, 6, "late")}, "5:2 6:1 7:1 6:1"},
		{"window of 2 s", []string{line("AVC", 1, 1, "pid=1"), line("AVC", 3, 2, "pid=2"), line("AVC", 1, 1, "x=1"),
			line("AVC", 4, 3, "pid=3"), line("AVC", 1, 1, "x=2")}, "1:2 2:1 3:1 1:1"},
		{"span", span, "1:1 " + spanWant((len(span)-2)/2) + " 1:1"},
		{"malformed skipped", []string{"garbage\n", line("SYSCALL", 1, 1, "pid=1"), line("EOE", 1, 1, "")}, "1:2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(group(tt.lines), " ")
			if got != strings.Join(strings.Fields(tt.want), " ") {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func spanWant(n int) string {
	var b []string
	for i := 0; i < n; i++ {
		b = append(b, fmt.Sprintf("%d:2", 100+i))
	}
	return strings.Join(b, " ")
}

// TestGrouperCheckpoint: a grouper restored from the open events at any
// line gives the events a grouper from the start gives from there on.
func TestGrouperCheckpoint(t *testing.T) {
	lines := []string{
		line("SYSCALL", 1, 1, "pid=1"), line("AVC", 1, 2, "pid=2"), line("USER", 1, 3, "pid=3 msg='a=b'"),
		line("UNKNOWN[2901]", 1, 3, "pid=3 record=1 contid=4"), line("PATH", 1, 1, "item=0"), line("AVC", 2, 4, "x"),
		line("EOE", 1, 1, ""), line("AVC", 1, 2, "more"), line("AVC", 5, 5, "x"), line("AVC", 1, 2, "new"),
	}
	offs := make([]int64, len(lines)+1)
	for i, l := range lines {
		offs[i+1] = offs[i] + int64(len(l))
	}
	events := func(g *Grouper, from int) []string {
		var out []string
		take := func() {
			for ev, ok := g.Next(); ok; ev, ok = g.Next() {
				if ev.First >= offs[from] {
					out = append(out, fmt.Sprintf("%d@%d:%d", ev.Stamp.Serial, ev.First, len(ev.Lines)))
				}
			}
		}
		for i := from; i < len(lines); i++ {
			g.Add(offs[i], lines[i])
			take()
		}
		g.Flush()
		take()
		return out
	}
	for cut := 0; cut <= len(lines); cut++ {
		full := NewGrouper(nil)
		for i := 0; i < cut; i++ {
			full.Add(offs[i], lines[i])
			for _, ok := full.Next(); ok; _, ok = full.Next() {
			}
		}
		state := full.Open()
		want := events(full, cut)
		got := events(NewGrouper(state), cut)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("cut %d (%d open): restored %v, full %v", cut, len(state), got, want)
		}
	}
}

func TestParseTime(t *testing.T) {
	loc := time.FixedZone("X", 3600)
	now := time.Date(2026, 12, 4, 15, 30, 45, 0, loc) // a Friday
	clk := Clock{Now: now, Boot: now.Add(-time.Hour), Loc: loc}
	at := func(y int, m time.Month, d, h, mi, s int) int64 { return time.Date(y, m, d, h, mi, s, 0, loc).Unix() }
	tests := []struct {
		spec string
		end  bool
		want int64
		err  bool
	}{
		{"12/04/26 14:00:00", false, at(2026, 12, 4, 14, 0, 0), false},
		{"12/04/2026 14:00", false, at(2026, 12, 4, 14, 0, 0), false},
		{"12/04/26", false, at(2026, 12, 4, 0, 0, 0), false},
		{"12/03/26", true, at(2026, 12, 3, 15, 30, 45), false}, // ausearch: now's time of day
		{"14:00", false, at(2026, 12, 4, 14, 0, 0), false},
		{"now", true, now.Unix(), false},
		{"recent", false, now.Add(-10 * time.Minute).Unix(), false},
		{"boot", false, now.Add(-time.Hour).Unix(), false},
		{"today", false, at(2026, 12, 4, 0, 0, 0), false},
		{"today", true, now.Unix(), false},
		{"yesterday", false, at(2026, 12, 3, 0, 0, 0), false},
		{"yesterday 23:59:59", true, at(2026, 12, 3, 23, 59, 59), false},
		{"this-week", false, at(2026, 11, 29, 0, 0, 0), false},
		{"week-ago", false, at(2026, 11, 27, 0, 0, 0), false},
		{"this-month", false, at(2026, 12, 1, 0, 0, 0), false},
		{"this-year", false, at(2026, 1, 1, 0, 0, 0), false},
		{"02/30/26", false, 0, true},
		{"12/04/03", false, 0, true},
		{"2026-12-04", false, 0, true},
		{"12/04/26 25:00", false, 0, true},
		{"", false, 0, true},
		{"a b c", false, 0, true},
	}
	for _, tt := range tests {
		got, err := ParseTime(tt.spec, tt.end, clk)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseTime(%q, end=%v) = %d, %v; want %d (error %v)", tt.spec, tt.end, got, err, tt.want, tt.err)
		}
	}
}

// FuzzSearch feeds arbitrary bytes as a log: the search must not fail or
// panic, and the index must give what the scan gives.
func FuzzSearch(f *testing.F) {
	f.Add([]byte(line("SYSCALL", 1, 1, "pid=1 key=\"k\"")+line("UNKNOWN[2901]", 1, 1, "pid=1 record=1 contid=4,^2")+line("EOE", 1, 1, "")), uint8(4))
	f.Add([]byte("type=USER msg=audit(1.000:2): pid=1 msg='contid=9'\ntorn"), uint8(9))
	f.Fuzz(func(t *testing.T, log []byte, id uint8) {
		checkEquivalent(t, log, fuzzQueries(uint64(id)))
	})
}
