package search

import (
	"container/heap"
	"strings"

	"github.com/contid/contid/internal/records"
)

// Grouping limits (see the package doc). They are part of what an index
// records: changing them changes events, so the index format version
// changes with them.
const (
	// WindowSec ends an event when a line more than this many seconds
	// younger arrives, as ausearch's MAX_EVENT_DELTA_SECS.
	WindowSec = 2
	// MaxSpan ends an event whose first line lies this many bytes behind
	// the line being read. It bounds the memory a scan holds.
	MaxSpan = 1 << 20
)

// Event is the records of one event, as read.
type Event struct {
	Node  string
	Stamp records.Stamp
	// First is the offset of the event's first line in its file.
	First int64
	// Lines are the event's lines as read, each with its line ending, and
	// Offs their offsets.
	Lines []string
	Offs  []int64
	types []records.Type // of each line, from its header
	// Records are the parsed lines, Raw set (without the line ending),
	// once Parse has run; a line whose fields do not parse has none.
	Records []records.Record
	parsed  bool
	bad     int // lines Parse could not read

	// Kept instead of Lines by a Grouper that does not keep lines (an
	// index kept while writing): the lines' lengths, and the index terms
	// given for them (noted: th holds them all).
	lens    []int32
	th      []uint64
	noted   bool
	lastSeg uint64 // the id of the noted terms last added to th

	terminal bool // holds a record that ends an event
	closed   bool
	phantom  bool // restored from a checkpoint: its lines are not kept
	heapIdx  int
	sameHash *Event // the next open event with the same keyHash
}

type evKey struct {
	node string
	st   records.Stamp
}

// Phantom is an event open at an index checkpoint: what the grouper needs
// to go on exactly as a scan from the start of the file would.
type Phantom struct {
	Node     string
	Stamp    records.Stamp
	First    int64
	Terminal bool
}

// GroupStats counts what a Grouper skipped.
type GroupStats struct {
	Lines     uint64 // lines given to Add
	Malformed uint64 // lines that did not parse or were too long (skipped)
}

// Grouper groups lines into events. It is not safe for concurrent use.
type Grouper struct {
	queue []*Event          // open and finished events in first-line order
	byKey map[uint64]*Event // open events by keyHash, chained by sameHash
	open  int               // open events
	bySec secHeap
	term  *Event // the open terminal event, at most one after each line
	stats GroupStats
	// noLines: events keep their lines' lengths, not the lines (which
	// may be views of a buffer the caller reuses).
	noLines bool
	names   typeNames
	free    []*Event // events given back (Recycle), for reuse
}

// recycle gives back an event its caller is done with, for a Grouper that
// keeps no lines (whose events hold nothing of the caller's).
func (g *Grouper) recycle(ev *Event) {
	if g.noLines && len(g.free) < 256 {
		*ev = Event{Offs: ev.Offs[:0], types: ev.types[:0], lens: ev.lens[:0], th: ev.th[:0]}
		g.free = append(g.free, ev)
	}
}

// typeNames caches the record type of each type name seen: a map lookup
// instead of records.ParseType's search of the name table.
type typeNames map[string]records.Type

func (c *typeNames) parse(s string) (records.Type, bool) {
	if t, ok := (*c)[s]; ok {
		return t, true
	}
	t, err := records.ParseType(s)
	if err != nil {
		return 0, false
	}
	if *c == nil {
		*c = typeNames{}
	}
	if len(*c) < 1024 { // names come from the log: bounded
		(*c)[strings.Clone(s)] = t
	}
	return t, true
}

// NewGrouper returns a Grouper that starts with the given open events
// (none for the start of a file).
func NewGrouper(open []Phantom) *Grouper {
	g := &Grouper{byKey: make(map[uint64]*Event)}
	for _, p := range open {
		ev := &Event{Node: p.Node, Stamp: p.Stamp, First: p.First, terminal: p.Terminal, phantom: true}
		g.start(ev)
	}
	return g
}

func (g *Grouper) start(ev *Event) {
	g.queue = append(g.queue, ev)
	h := keyHash(ev.Node, ev.Stamp)
	ev.sameHash = g.byKey[h]
	g.byKey[h] = ev
	g.open++
	heap.Push(&g.bySec, ev)
	if ev.terminal {
		g.term = ev
	}
}

// Skip counts a line the reader could not give (longer than
// records.MaxLineLen).
func (g *Grouper) Skip() {
	g.stats.Lines++
	g.stats.Malformed++
}

// Stats returns the counters.
func (g *Grouper) Stats() GroupStats { return g.stats }

// Add reads the line at offset off of its file. line holds its line ending
// (a line without one must not be given: it may be half written).
func (g *Grouper) Add(off int64, line string) { g.add(off, line) }

// add is Add, returning the event the line joined (nil for a malformed
// line).
func (g *Grouper) add(off int64, line string) *Event {
	g.stats.Lines++
	r, ok := parseHeader(line, &g.names)
	if !ok {
		g.stats.Malformed++
		return nil
	}
	k := evKey{r.Node, r.Stamp}
	// Lines arriving end older events first.
	if t := g.term; t != nil && !t.closed && (evKey{t.Node, t.Stamp}) != k {
		g.close(t)
	}
	for len(g.bySec) > 0 && g.bySec[0].Stamp.Sec+WindowSec < r.Stamp.Sec {
		g.close(g.bySec[0])
	}
	for _, ev := range g.queue {
		if off-ev.First < MaxSpan {
			break
		}
		if !ev.closed {
			g.close(ev)
		}
	}
	ev := g.lookup(k)
	if ev == nil {
		if g.noLines && r.Node != "" {
			r.Node = strings.Clone(r.Node) // line is a view of the caller's buffer
		}
		if n := len(g.free); n > 0 {
			ev = g.free[n-1]
			g.free = g.free[:n-1]
			ev.Node, ev.Stamp, ev.First = r.Node, r.Stamp, off
		} else {
			ev = &Event{Node: r.Node, Stamp: r.Stamp, First: off}
			// Room for a usual event's lines: one allocation each, not three.
			ev.Offs, ev.types = make([]int64, 0, 8), make([]records.Type, 0, 8)
			if g.noLines {
				ev.lens = make([]int32, 0, 8)
			}
		}
		g.start(ev)
	}
	if !ev.phantom {
		if g.noLines {
			ev.lens = append(ev.lens, int32(len(line)))
		} else {
			ev.Lines = append(ev.Lines, line)
		}
		ev.Offs = append(ev.Offs, off)
		ev.types = append(ev.types, r.Type)
	}
	switch {
	case r.Type == records.EOE:
		g.close(ev)
	case endsEvent(r.Type):
		ev.terminal = true
		g.term = ev
	}
	return ev
}

// lineLen returns the length of the event's line k.
func (ev *Event) lineLen(k int) int32 {
	if ev.lens != nil {
		return ev.lens[k]
	}
	return int32(len(ev.Lines[k]))
}

func (g *Grouper) close(ev *Event) {
	if ev.closed {
		return
	}
	ev.closed = true
	g.unlink(ev)
	heap.Remove(&g.bySec, ev.heapIdx)
	if g.term == ev {
		g.term = nil
	}
}

// Flush ends every open event (the end of the input).
func (g *Grouper) Flush() {
	for _, ev := range g.queue {
		g.close(ev)
	}
}

// Next returns the next finished event in first-line order, if every
// event before it has finished too.
func (g *Grouper) Next() (*Event, bool) {
	for len(g.queue) > 0 && g.queue[0].closed {
		ev := g.queue[0]
		g.queue[0] = nil
		g.queue = g.queue[1:]
		if !ev.phantom {
			return ev, true
		}
	}
	return nil, false
}

// Open returns the events still open, in first-line order: the state an
// index checkpoint saves.
func (g *Grouper) Open() []Phantom {
	var out []Phantom
	for _, ev := range g.queue {
		if !ev.closed {
			out = append(out, Phantom{Node: ev.Node, Stamp: ev.Stamp, First: ev.First, Terminal: ev.terminal})
		}
	}
	return out
}

// OpenCount returns how many events are open.
func (g *Grouper) OpenCount() int { return g.open }

// keyHash mixes an event's key into a map key: hashing the string and
// stamp on every line cost a third of keeping an index.
func keyHash(node string, st records.Stamp) uint64 {
	h := st.Serial*0x9e3779b97f4a7c15 ^ uint64(st.Sec)*0xc2b2ae3d27d4eb4f ^ uint64(st.Msec)
	if node != "" {
		h ^= termHash(node)
	}
	return h
}

// lookup returns the open event of key k, if any.
func (g *Grouper) lookup(k evKey) *Event {
	for ev := g.byKey[keyHash(k.node, k.st)]; ev != nil; ev = ev.sameHash {
		if ev.Stamp == k.st && ev.Node == k.node {
			return ev
		}
	}
	return nil
}

// unlink removes an open event from byKey.
func (g *Grouper) unlink(ev *Event) {
	h := keyHash(ev.Node, ev.Stamp)
	if g.byKey[h] == ev {
		if ev.sameHash == nil {
			delete(g.byKey, h)
		} else {
			g.byKey[h] = ev.sameHash
		}
	} else {
		for p := g.byKey[h]; p != nil; p = p.sameHash {
			if p.sameHash == ev {
				p.sameHash = ev.sameHash
				break
			}
		}
	}
	ev.sameHash = nil
	g.open--
}

// OldestOpen returns the first offset of the oldest unfinished or
// unreturned event, or -1 when there is none.
func (g *Grouper) OldestOpen() int64 {
	if len(g.queue) == 0 {
		return -1
	}
	return g.queue[0].First
}

// endsEvent reports whether a record of type t is the last of its event
// but for the CONTAINER_ID records contid writes after it: libauparse's
// list of terminal records (PROCTITLE, EOE, the user-space and daemon
// records, USER, KERNEL, the anomaly records) and the user-space range
// 2100–2999 (contid's own records among them), CONTAINER_ID excepted.
func endsEvent(t records.Type) bool {
	switch {
	case t == records.ContainerID:
		return false
	case t == 1327, t == records.EOE, t == 1005, t == 2000:
		return true
	case t > 1006 && t < 1300:
		return true
	case t >= 1700 && t <= 1799:
		return true
	case t >= 2100 && t <= 2999:
		return true
	}
	return false
}

// secHeap orders open events by their stamp's seconds.
type secHeap []*Event

func (h secHeap) Len() int           { return len(h) }
func (h secHeap) Less(i, j int) bool { return h[i].Stamp.Sec < h[j].Stamp.Sec }
func (h secHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *secHeap) Push(x any) {
	ev := x.(*Event)
	ev.heapIdx = len(*h)
	*h = append(*h, ev)
}
func (h *secHeap) Pop() any {
	old := *h
	ev := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return ev
}

// Parse parses the event's lines into Records (once). Grouping reads only
// each line's header; most events of a search are ruled out before their
// fields are read.
func (ev *Event) Parse() {
	if ev.parsed {
		return
	}
	ev.parsed = true
	ev.Records = make([]records.Record, 0, len(ev.Lines))
	for _, l := range ev.Lines {
		r, err := records.ParseLine(l)
		if err != nil {
			ev.bad++
			continue
		}
		ev.Records = append(ev.Records, r)
	}
}

// parseHeader reads "[node=NODE ]type=TYPE msg=audit(SEC.MSEC:SERIAL):",
// as records.ParseLine does, without the fields.
func parseHeader(line string, names *typeNames) (records.Record, bool) {
	var r records.Record
	s := line
	if strings.HasPrefix(s, "node=") {
		sp := strings.IndexByte(s, ' ')
		if sp < 0 {
			return r, false
		}
		r.Node = s[len("node="):sp]
		s = s[sp+1:]
	}
	s, ok := strings.CutPrefix(s, "type=")
	sp := strings.IndexByte(s, ' ')
	if !ok || sp < 0 {
		return r, false
	}
	t, ok := names.parse(s[:sp])
	if !ok {
		return r, false
	}
	r.Type = t
	s, ok = strings.CutPrefix(s[sp+1:], "msg=audit(")
	if !ok {
		return r, false
	}
	num := func(max int) (uint64, bool) {
		i := 0
		for i < len(s) && i < max && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i == len(s) {
			return 0, false
		}
		if i == 20 && s[:i] > "18446744073709551615" {
			return 0, false // as strconv.ParseUint: out of range
		}
		var v uint64
		for j := 0; j < i; j++ {
			v = v*10 + uint64(s[j]-'0')
		}
		s = s[i:]
		return v, true
	}
	sec, ok := num(19)
	if !ok || s[0] != '.' || sec > 1<<63-1 {
		return r, false
	}
	s = s[1:]
	ms, ok := num(3)
	if !ok || s[0] != ':' {
		return r, false
	}
	s = s[1:]
	ser, ok := num(20)
	if !ok || !strings.HasPrefix(s, "):") {
		return r, false
	}
	r.Stamp = records.Stamp{Sec: int64(sec), Msec: uint32(ms), Serial: ser}
	return r, true
}
