package output

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/pipeline/rules"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/sink/auditlog"
)

func open(t *testing.T, path string) *auditlog.Writer {
	t.Helper()
	w, err := auditlog.Open(auditlog.Config{Path: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func event(t *testing.T, id contid.ID, dest rules.Route, serial int) *pipeline.Event {
	t.Helper()
	line := "type=SYSCALL msg=audit(1795687201.100:" + strconv.Itoa(serial) + "): arch=c000003e syscall=59 pid=201 exe=\"/usr/bin/true\""
	r, err := records.ParseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	ev := &pipeline.Event{Records: []records.Record{r}, Container: id, Routes: rules.Routes{Dest: dest}}
	if id != contid.Unset {
		ev.Chains = []contid.Chain{{id, 1}}
	}
	return ev
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRoutes: each destination gets exactly the events routed to it,
// kernel lines byte for byte; container logs beyond MaxOpen are closed and
// reopened for appending, losing nothing.
func TestRoutes(t *testing.T) {
	dir := t.TempDir()
	cpath := func(id contid.ID) string { return filepath.Join(dir, "containers", id.String(), "audit.log") }
	o := New(Config{
		Host: open(t, filepath.Join(dir, "audit.log")), JSON: open(t, filepath.Join(dir, "audit.json")),
		Container: func(id contid.ID) auditlog.Config { return auditlog.Config{Path: cpath(id)} },
		MaxOpen:   2,
	})
	both := rules.Host | rules.Container
	packet := event(t, 8, rules.Container, 7) // a packet's event: containers 8 and 9
	packet.Also = []contid.ID{9}
	for _, ev := range []*pipeline.Event{
		event(t, 7, both, 1), event(t, 8, both, 2), event(t, 9, rules.Container, 3),
		event(t, 7, rules.Host, 4), event(t, contid.Unset, both, 5), event(t, 7, both, 6), packet,
	} {
		o.Write(ev)
	}
	st := o.Stats()
	o.Close()
	if st.HostEvents != 5 || st.ContainerEvents != 6 || st.OpenLogs != 2 || st.LineErrors+st.OpenErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, tt := range []struct {
		path    string
		serials []string
	}{
		{filepath.Join(dir, "audit.log"), []string{"1", "2", "4", "5", "6"}},
		{cpath(7), []string{"1", "6"}}, // closed after 9 opened, reopened for 6
		{cpath(8), []string{"2", "7"}},
		{cpath(9), []string{"3", "7"}},
	} {
		got := read(t, tt.path)
		var want strings.Builder
		for _, s := range tt.serials {
			want.WriteString("type=SYSCALL msg=audit(1795687201.100:" + s + "): arch=c000003e syscall=59 pid=201 exe=\"/usr/bin/true\"\n")
		}
		if got != want.String() {
			t.Errorf("%s:\n%s\nwant:\n%s", tt.path, got, want.String())
		}
	}
	j := read(t, filepath.Join(dir, "audit.json"))
	if n := strings.Count(j, "\n"); n != 5 {
		t.Errorf("audit.json has %d lines, want 5 (the host's events)", n)
	}
	if !strings.HasPrefix(j, `{"contid":[[7,1]],"container":7,"records":[{"type":"SYSCALL","type_num":1300,`) {
		t.Errorf("audit.json starts %.120s", j)
	}
	if !strings.Contains(j, `{"contid":[],"records":[`) {
		t.Error("audit.json: the uncontained event lacks an empty contid list")
	}
}

// noter records what Output notes and the block it then hands over, and
// checks, as the host log's observer, that the block written is that very
// buffer.
type noter struct {
	t       *testing.T
	noted   int // lines noted since the last Block
	block   []byte
	matched int // blocks written as handed over
}

func (n *noter) Note(recs []records.Record) { n.noted += len(recs) }

func (n *noter) Block(buf []byte) {
	if c := strings.Count(string(buf), "\n"); c != n.noted {
		n.t.Errorf("a block of %d lines after %d were noted", c, n.noted)
	}
	n.noted, n.block = 0, buf
}

func (n *noter) Appended(f *os.File, off int64, data []byte) {
	if len(data) == len(n.block) && &data[0] == &n.block[0] {
		n.matched++
	}
}

func (n *noter) Retiring(*os.File) {}

// TestHostIndexNotes: every host line is noted before its block is
// handed over, and the log writes that very buffer, so an index can take
// the noted records instead of parsing the lines; container and JSON
// lines are not noted.
func TestHostIndexNotes(t *testing.T) {
	dir := t.TempDir()
	host := open(t, filepath.Join(dir, "audit.log"))
	n := &noter{t: t}
	host.Observe(n)
	o := New(Config{Host: host, JSON: open(t, filepath.Join(dir, "audit.json")), HostIndex: n,
		Container: func(id contid.ID) auditlog.Config {
			return auditlog.Config{Path: filepath.Join(dir, "containers", id.String(), "audit.log")}
		}, MaxOpen: 4})
	for i := 0; i < 3000; i++ { // more than one spill of 256 KiB
		dest := rules.Host
		if i%3 == 0 {
			dest |= rules.Container
		}
		o.Write(event(t, contid.ID(1+i%5), dest, i))
		if i%100 == 0 {
			o.Commit()
		}
	}
	o.Commit()
	if n.matched < 30 || n.noted != 0 {
		t.Fatalf("%d blocks written as noted, %d lines noted left over", n.matched, n.noted)
	}
}

// placer records the host blocks it is told of.
type placer struct{ blocks map[uint64]string }

func (p *placer) Block(n uint64, buf []byte) { p.blocks[n] = string(buf) }

// TestLinesAndSpan: Lines and Span tell another writer of the event (the
// stream route) the event's lines and where they sit in the host log's
// blocks, which the placer is told of as they are written; an event that
// went to no log has no lines (nil, not empty: the route then formats
// them itself) and no span.
func TestLinesAndSpan(t *testing.T) {
	dir := t.TempDir()
	pl := &placer{blocks: map[uint64]string{}}
	o := New(Config{Host: open(t, filepath.Join(dir, "audit.log")), HostPlacer: pl})
	type seen struct {
		lines string
		span  HostSpan
	}
	var got []seen
	for i, dest := range []rules.Route{rules.Host, 0, rules.Host, rules.Host} {
		o.Write(event(t, contid.Unset, dest, 100+i))
		if dest == 0 && o.Lines() != nil {
			t.Fatalf("an event routed to no log has lines %q", o.Lines())
		}
		got = append(got, seen{string(o.Lines()), o.Span()})
		if i == 2 {
			o.Commit() // block 0 ends here
		}
	}
	o.Commit()
	for i, s := range got {
		if s.span.Len == 0 {
			if i != 1 || s.lines != "" {
				t.Errorf("event %d: no span, lines %q", i, s.lines)
			}
			continue
		}
		block := pl.blocks[s.span.Block]
		if s.span.Off+s.span.Len > len(block) || block[s.span.Off:s.span.Off+s.span.Len] != s.lines {
			t.Errorf("event %d: span %+v of block %q is not its lines %q", i, s.span, block, s.lines)
		}
	}
	if len(pl.blocks) != 2 || got[3].span.Block != 1 || got[3].span.Off != 0 {
		t.Errorf("blocks %d, last span %+v: want 2 blocks, the last event first in the second", len(pl.blocks), got[3].span)
	}
	if host := read(t, filepath.Join(dir, "audit.log")); host != pl.blocks[0]+pl.blocks[1] {
		t.Errorf("host log %q is not the blocks told", host)
	}
}
