package reassembly

import (
	"math"
	"time"

	"github.com/contid/contid/internal/records"
)

// Defaults for the zero Config.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultMaxInFlight = 4096
)

// Config configures a Reassembler. The zero value means the defaults.
type Config struct {
	// Timeout is how long, in event time, an event may go without a new
	// record before it is delivered without its end: it ends when the
	// stream's time is Timeout past the arrival of its last record. Event
	// time is the newest stamp of the stream's own records or the newest
	// Advance, whichever is later. Zero means DefaultTimeout; the
	// resolution is a millisecond, as the stamps'.
	Timeout time.Duration
	// MaxInFlight bounds the events held at once. A record that would start
	// one more event first delivers the event that has waited longest for a
	// record. Zero means DefaultMaxInFlight.
	MaxInFlight int
	// Node is the node name (node= prefix) of the stream's own records, ""
	// for records without one: the netlink stream has none; auditd adds one
	// with name_format other than none. Only the stream's own records move
	// event time and count toward gap detection; records of other nodes
	// (another host's records that auditd forwards) are grouped alike,
	// keyed apart, and timed by this stream's clock.
	Node string
}

// Event is one audit event: the records that share a stamp, in the order
// they arrived, EOE included when it came.
type Event struct {
	Stamp   records.Stamp
	Records []records.Record
	// Incomplete marks an event that holds a record only a syscall event
	// has (SYSCALL, PATH, …) but was delivered before its EOE: by Timeout,
	// by MaxInFlight or by Flush. Each is also reported as Lost(1,
	// Incomplete).
	Incomplete bool
	// Late marks records whose event had already been delivered when they
	// came (see Late); they are delivered as an event of their own, with
	// the same stamp, and also reported as Lost(len(Records), Late).
	Late bool
}

// Sink receives what a Reassembler delivers. Its methods are called from
// within Push, Advance and Flush, on the caller's goroutine, and must not
// call back into the Reassembler.
type Sink interface {
	// Event receives an event. Records is only valid during the call: the
	// Reassembler reuses its memory, so a Sink that keeps records copies
	// the slice (the records themselves are values and may be kept).
	Event(e Event)
	// Lost reports n units of loss of one kind; see Loss for what n counts.
	Lost(n uint64, why Loss)
}

// Loss says what was lost or damaged.
type Loss uint8

const (
	// Gap: n kernel serials that were never received: they were missing
	// for Timeout of event time after a higher serial arrived, or still
	// missing at Flush or at a Discontinuity. Each is a whole event the
	// kernel numbered and we never got (dropped by the kernel under rate
	// or backlog limits, or a multicast reader's ENOBUFS). A serial counted
	// here that arrives afterwards is still delivered, as Late.
	Gap Loss = iota + 1
	// Incomplete: n (always 1) event delivered without its EOE although it
	// holds a record only a syscall event has; records of it may be
	// missing, or may still come (then as Late).
	Incomplete
	// Late: n records that arrived after their event was delivered (it had
	// timed out, been evicted by MaxInFlight or flushed, or its serial had
	// been counted as a Gap). They are delivered as an event of their own
	// flagged Late, so the event reaches the sink in more than one part.
	// Only kernel serials of the stream's own node are recognised as late;
	// other records that come after their event simply start a new one.
	Late
	// Discontinuity: n (always 1) jump of the kernel's serial counter that
	// is no ordinary gap: more than 2^24 serials forward, or backward with
	// a newer stamp (the counter starting again after a reboot in a
	// replayed log). How many events were lost across it is unknown; the
	// gap window starts again at the new serial, and serials still missing
	// before it are first reported as a Gap.
	Discontinuity
)

// String returns the loss kind's name.
func (l Loss) String() string {
	switch l {
	case Gap:
		return "gap"
	case Incomplete:
		return "incomplete"
	case Late:
		return "late"
	case Discontinuity:
		return "discontinuity"
	}
	return "unknown"
}

// Stats counts what a Reassembler has seen and delivered.
type Stats struct {
	Records         uint64 // pushed
	Events          uint64 // delivered (a Late part counts as an event)
	InFlight        int    // events held now
	Gap             uint64 // serials never received
	Incomplete      uint64 // events delivered without their EOE
	Late            uint64 // records delivered after their event
	Discontinuities uint64
}

type key struct {
	node   string
	sec    int64
	msec   uint32
	serial uint64
}

type inflight struct {
	key        key
	recs       []records.Record
	touch      int64 // event time when its last record came
	needEOE    bool  // holds an InSyscall record
	ended      bool  // its EOE came
	standalone bool  // opened by a Standalone record, no InSyscall since
	late       bool
	prev, next *inflight // oldest touch first
}

// Reassembler groups records into events. It is not safe for concurrent
// use; see the package documentation for its contract.
type Reassembler struct {
	sink    Sink
	node    string
	timeout int64 // ms
	limit   int   // MaxInFlight

	now    int64 // event time, unix ms
	byKey  map[key]*inflight
	oldest *inflight
	newest *inflight
	n      int
	free   *inflight
	last   *inflight // the event the previous record joined
	open   *inflight // the Standalone event the next other stamp ends
	serial tracker
	stats  Stats
}

// New returns a Reassembler delivering to sink.
func New(cfg Config, sink Sink) *Reassembler {
	to := cfg.Timeout
	if to <= 0 {
		to = DefaultTimeout
	}
	ms := to.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	limit := cfg.MaxInFlight
	if limit <= 0 {
		limit = DefaultMaxInFlight
	}
	return &Reassembler{
		sink:    sink,
		node:    cfg.Node,
		timeout: ms,
		limit:   limit,
		byKey:   make(map[key]*inflight, min(limit, 1024)),
	}
}

// maxTime bounds event time so that time arithmetic cannot overflow.
const maxTime = math.MaxInt64 / 4

// stampTime returns a stamp's unix time in ms, clamped to [0, maxTime].
func stampTime(s records.Stamp) int64 {
	if s.Sec < 0 {
		return 0
	}
	if s.Sec >= maxTime/1000 {
		return maxTime
	}
	return s.Sec*1000 + int64(min(s.Msec, 999))
}

// Push adds a record. It may deliver events and report losses, this
// record's event among them when the record completes it.
func (r *Reassembler) Push(rec records.Record) {
	r.stats.Records++
	own := rec.Node == r.node
	prev := r.now
	t := stampTime(rec.Stamp)
	if own && t > r.now {
		r.now = t
	}
	k := key{node: rec.Node, sec: rec.Stamp.Sec, msec: rec.Stamp.Msec, serial: rec.Stamp.Serial}
	if o := r.open; o != nil && o.key != k {
		r.deliver(o)
	}
	ev := r.last
	if ev == nil || ev.key != k {
		ev = r.byKey[k]
	}
	cls := Classify(rec.Type)
	if ev == nil {
		late := false
		if own && rec.Stamp.Serial < records.OwnSerialBase && !daemonType(rec.Type) {
			late = r.seeSerial(uint32(rec.Stamp.Serial), t, prev)
		}
		ev = r.add(k)
		ev.late = late
		if cls == Standalone {
			ev.standalone = true
			r.open = ev
		}
	} else {
		r.touch(ev)
	}
	ev.recs = append(ev.recs, rec)
	if cls == InSyscall {
		ev.needEOE = true
		if ev.standalone {
			ev.standalone = false
			r.open = nil
		}
	}
	r.last = ev
	if rec.Type == records.EOE {
		ev.ended = true
		r.deliver(ev)
	}
	r.expire()
}

// seeSerial runs gap detection for the first record of an event and
// reports whether the event is late.
func (r *Reassembler) seeSerial(s uint32, t, prev int64) bool {
	v, lost := r.serial.see(s, t, prev, r.now, r.timeout)
	r.lost(lost, Gap)
	switch v {
	case late:
		return true
	case restart:
		r.lost(r.serial.drain(), Gap)
		r.serial.reset(s)
		r.lost(1, Discontinuity)
	}
	return false
}

// EndRead ends the Standalone event still open, if any: the owner calls it
// after the last record of each read from the stream, so that a record
// that always stands alone (a NETFILTER_PKT, a user message) is delivered
// at once, in arrival order, rather than when the next record or the next
// Advance comes. Records of the same stamp that follow in the same read
// (a CONTAINER_ID in contid's own logs) still join it. It does not move
// event time.
func (r *Reassembler) EndRead() {
	if o := r.open; o != nil {
		r.deliver(o)
	}
}

// Advance moves event time forward to unixMilli (a smaller value changes
// nothing) and delivers what that times out. It also ends the Standalone
// event still open: Advance means no record is pending, so the owner calls
// it between reads, when the stream is idle (from its own timer), never
// between the records of one read.
func (r *Reassembler) Advance(unixMilli int64) {
	if o := r.open; o != nil {
		r.deliver(o)
	}
	if unixMilli > maxTime {
		unixMilli = maxTime
	}
	if unixMilli > r.now {
		r.now = unixMilli
	}
	r.expire()
}

// Flush delivers every event in flight, oldest first, and reports every
// serial still missing as a Gap: at shutdown, or at the end of a replayed
// log. The Reassembler stays usable and keeps its place in the serial
// sequence.
func (r *Reassembler) Flush() {
	for r.oldest != nil {
		r.deliver(r.oldest)
	}
	r.lost(r.serial.drain(), Gap)
}

// Stats returns the counters.
func (r *Reassembler) Stats() Stats {
	s := r.stats
	s.InFlight = r.n
	return s
}

func (r *Reassembler) expire() {
	for r.oldest != nil && r.now-r.oldest.touch >= r.timeout {
		r.deliver(r.oldest)
	}
	r.lost(r.serial.expire(r.now), Gap)
}

func (r *Reassembler) lost(n uint64, why Loss) {
	if n == 0 {
		return
	}
	switch why {
	case Gap:
		r.stats.Gap += n
	case Incomplete:
		r.stats.Incomplete += n
	case Late:
		r.stats.Late += n
	case Discontinuity:
		r.stats.Discontinuities += n
	}
	r.sink.Lost(n, why)
}

// add starts an event, first delivering the oldest if the bound is reached.
func (r *Reassembler) add(k key) *inflight {
	if r.n >= r.limit {
		r.deliver(r.oldest)
	}
	ev := r.free
	if ev != nil {
		r.free = ev.next
		ev.next = nil
	} else {
		ev = &inflight{recs: make([]records.Record, 0, 8)}
	}
	ev.key = k
	ev.touch = r.now
	r.byKey[k] = ev
	r.n++
	r.link(ev)
	return ev
}

func (r *Reassembler) touch(ev *inflight) {
	ev.touch = r.now
	if ev == r.newest {
		return
	}
	r.unlink(ev)
	r.link(ev)
}

func (r *Reassembler) link(ev *inflight) {
	ev.prev, ev.next = r.newest, nil
	if r.newest != nil {
		r.newest.next = ev
	} else {
		r.oldest = ev
	}
	r.newest = ev
}

func (r *Reassembler) unlink(ev *inflight) {
	if ev.prev != nil {
		ev.prev.next = ev.next
	} else {
		r.oldest = ev.next
	}
	if ev.next != nil {
		ev.next.prev = ev.prev
	} else {
		r.newest = ev.prev
	}
	ev.prev, ev.next = nil, nil
}

// maxKeptRecs bounds the record slice a recycled event keeps, so one huge
// event does not pin its memory for good.
const maxKeptRecs = 256

func (r *Reassembler) deliver(ev *inflight) {
	r.unlink(ev)
	delete(r.byKey, ev.key)
	r.n--
	if r.open == ev {
		r.open = nil
	}
	if r.last == ev {
		r.last = nil
	}
	e := Event{
		Stamp:      records.Stamp{Sec: ev.key.sec, Msec: ev.key.msec, Serial: ev.key.serial},
		Records:    ev.recs,
		Incomplete: ev.needEOE && !ev.ended,
		Late:       ev.late,
	}
	r.stats.Events++
	r.sink.Event(e)
	if e.Incomplete {
		r.lost(1, Incomplete)
	}
	if e.Late {
		r.lost(uint64(len(e.Records)), Late)
	}
	recs := ev.recs
	clear(recs) // drop references to fields and raw text
	if cap(recs) > maxKeptRecs {
		recs = nil
	}
	*ev = inflight{recs: recs[:0], next: r.free}
	r.free = ev
}
