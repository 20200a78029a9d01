// Package output writes what the audit pipeline keeps: the host log, each
// container's own log (DIR/containers/<contid>/audit.log, created when the
// first event is routed there, the least recently written closed beyond a
// bound) and optional JSON lines, one object per event. A line a log cannot
// take is counted (by the log and here), never dropped silently.
//
// A container's log lives as long as the container (see retire.go): at its
// drop the log is closed and its directory moved aside under the drop time,
// so a contid used again starts a new log, and only a bounded number of
// dropped containers' logs are kept.
//
// Lines are gathered per destination and handed to each log with one
// write(2) at Commit (the daemon commits after each batch of records it
// receives), or sooner when 256 KiB are pending: a process crash loses at
// most the batch in hand, which it would lose anyway.
//
// A full disk: each log queues what it cannot write (auditlog's
// QueueBytes) and drops beyond, counting. Output sums the condition over
// the logs it opened (Stats) and hands each log's loss on through
// TakeLosses once that log writes again, so the loss can be written down
// where it is readable. On SIGHUP, Reconfigure gives every open container
// log its new configuration and reopens it; logs opened later get it too.
//
// An Output is for one goroutine (the daemon's core).
package output

import (
	"container/list"
	"errors"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/pipeline/rules"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/sink/auditlog"
)

// Config configures an Output.
type Config struct {
	Host *auditlog.Writer
	JSON *auditlog.Writer // nil: no JSON lines
	// Container gives the writer configuration of a container's log.
	Container func(id contid.ID) auditlog.Config
	MaxOpen   int // container logs open at once (at least 1)
	// Dir is the directory of the container logs (DIR/containers). When
	// set, a dropped container's log is retired (retire.go); "" leaves
	// every log where it is, for good.
	Dir string
	// KeepDropped is how many dropped containers' directories are kept
	// (0: removed at the drop); KeepDroppedFor, when not 0, removes them
	// once dropped longer ago than that (event time).
	KeepDropped    int
	KeepDroppedFor time.Duration
	// Lost is called for every loss the pipeline reports (to write a
	// CONTID_LOSS record, which is not this package's business).
	Lost func(n uint64, why pipeline.Loss)
	// HostIndex, when set, is given the records of the lines appended for
	// the host log and each block of them just before it is written, so
	// that the log's index (search.LogIndex) need not parse them again.
	HostIndex Noter
	// HostPlacer, when set, is told of each block of host lines just
	// before it is written, by number (HostSpan.Block), so that it can
	// learn where the block landed (as the host log's Observer).
	HostPlacer Placer
	Log        *slog.Logger
}

// Placer learns where the host log's blocks of lines land.
type Placer interface {
	// Block: buf, block number n of the host log's lines, is about to be
	// written.
	Block(n uint64, buf []byte)
}

// HostSpan is where an event's lines sit among the host log's blocks:
// bytes [Off, Off+Len) of block Block. Len 0: not in the host log.
type HostSpan struct {
	Block    uint64
	Off, Len int
}

// Noter takes the parsed records of lines on their way to a log.
type Noter interface {
	// Note: one line per record was just appended to the pending block.
	Note(recs []records.Record)
	// Block: buf, the lines noted since the last Block, goes to the log.
	Block(buf []byte)
}

// Stats counts what was written.
type Stats struct {
	HostEvents      uint64
	ContainerEvents uint64
	JSONEvents      uint64
	LineErrors      uint64 // writes (of one or more lines) a log refused or failed, queued ones not included
	OpenErrors      uint64 // container logs that could not be opened
	OpenLogs        int
	Retired         uint64 // dropped containers' logs moved aside
	RetiredRemoved  uint64 // … removed beyond KeepDropped or KeepDroppedFor
	RetireErrors    uint64 // moves and removals that failed

	// The JSON log's and the container logs' full-disk state (the host
	// log's is its owner's to report), as of the last Retry.
	DiskFull        bool   // one of them waits for space
	Queued          int    // lines they hold in memory meanwhile
	DroppedDiskFull uint64 // lines they dropped with disk and queue full, closed logs included
	WriteErrors     uint64 // their failed write(2) calls, closed logs included
}

// Loss is a log's lines dropped on a full disk, reported once the log
// writes again.
type Loss struct {
	Log   string // relative to the log directory: audit.json, containers/<contid>/audit.log
	Lines uint64
}

// Output is a pipeline.Writer.
type Output struct {
	cfg        Config
	open       map[contid.ID]*list.Element
	lru        list.List // of *clog, most recently written first
	host, json []byte    // pending lines
	lines      []byte    // the lines of the event being written (Lines)
	span       HostSpan  // of that event (Span)
	hostBlock  uint64    // number of the host block being gathered
	stats      Stats
	dropped    []retired            // dropped containers' directories, oldest first
	retired    map[contid.ID]string // directory of each dropped contid not registered again
	jsonLost   uint64               // the JSON log's Dropped.DiskFull already reported
	diskDirty  bool                 // a write met a full disk since the full-disk fields were computed
	// Of container logs closed since: loss not yet reported, and the
	// counters they took with them.
	closedLost                         []Loss
	closedDroppedFull, closedWriteErrs uint64
}

type clog struct {
	id       contid.ID
	w        *auditlog.Writer
	pend     []byte
	reported uint64 // Dropped.DiskFull already reported
}

// pendMax is the most bytes gathered for one log before they are written.
const pendMax = 256 << 10

// New returns an Output.
func New(cfg Config) *Output {
	if cfg.MaxOpen < 1 {
		cfg.MaxOpen = 1
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	o := &Output{cfg: cfg, open: make(map[contid.ID]*list.Element), retired: make(map[contid.ID]string)}
	if cfg.Dir != "" {
		o.loadDropped()
	}
	return o
}

// Write writes one event to the destinations its routes name.
func (o *Output) Write(ev *pipeline.Event) {
	// The event's lines, formatted once for all the logs it goes to.
	o.lines = o.lines[:0]
	o.span = HostSpan{}
	toContainer := ev.Routes.Has(rules.Container) && ev.Container != contid.Unset && o.cfg.Container != nil
	if ev.Routes.Has(rules.Host) || toContainer {
		o.lines = o.appendLines(o.lines, ev.Records)
	}
	if ev.Routes.Has(rules.Host) {
		o.span = HostSpan{Block: o.hostBlock, Off: len(o.host), Len: len(o.lines)}
		o.host = append(o.host, o.lines...)
		if o.cfg.HostIndex != nil {
			o.cfg.HostIndex.Note(ev.Records)
		}
		o.host = o.spill(o.cfg.Host, o.host)
		o.stats.HostEvents++
	}
	life := o.cfg.Dir != "" && ev.Container != contid.Unset && len(ev.Records) > 0
	if life && ev.Life == pipeline.Registered {
		o.reborn(ev.Container)
	}
	if toContainer {
		for i := -1; i < len(ev.Also); i++ {
			id := ev.Container
			if i >= 0 {
				id = ev.Also[i] // a packet's further containers
			}
			if c := o.container(id); c != nil {
				c.pend = o.spill(c.w, append(c.pend, o.lines...))
				o.stats.ContainerEvents++
			}
		}
	}
	if life && ev.Life == pipeline.Dropped {
		st := ev.Records[0].Stamp
		o.retire(ev.Container, st.Sec*1e9+int64(st.Msec)*1e6)
	}
	if o.cfg.JSON != nil && ev.Routes.Has(rules.Host) {
		o.json = append(AppendEventJSON(o.json, ev), '\n')
		o.json = o.spill(o.cfg.JSON, o.json)
		o.stats.JSONEvents++
	}
}

// Lost hands a loss on.
func (o *Output) Lost(n uint64, why pipeline.Loss) {
	if o.cfg.Lost != nil {
		o.cfg.Lost(n, why)
	}
}

// Lines returns the lines of the event last given to Write, as the logs
// got them (one per record, each ending in a newline), or nil when it
// went to no log; valid until the next Write. Another writer of the same
// event (the stream route) need not format them again.
func (o *Output) Lines() []byte {
	if len(o.lines) == 0 {
		return nil // not o.lines[:0]: a caller would take it for no lines
	}
	return o.lines
}

// Span returns where the lines of the event last given to Write sit
// among the host log's blocks (Len 0 when it did not go there).
func (o *Output) Span() HostSpan { return o.span }

func (o *Output) appendLines(pend []byte, recs []records.Record) []byte {
	for i := range recs {
		pend = append(records.AppendRaw(pend, &recs[i]), '\n')
	}
	return pend
}

func (o *Output) spill(w *auditlog.Writer, pend []byte) []byte {
	if len(pend) < pendMax {
		return pend
	}
	return o.write(w, pend)
}

// write hands pending lines to w and returns the emptied buffer.
func (o *Output) write(w *auditlog.Writer, pend []byte) []byte {
	if len(pend) == 0 {
		return pend
	}
	if w == o.cfg.Host {
		if o.cfg.HostIndex != nil {
			o.cfg.HostIndex.Block(pend)
		}
		if o.cfg.HostPlacer != nil {
			o.cfg.HostPlacer.Block(o.hostBlock, pend)
		}
		defer func() { o.hostBlock++ }()
	}
	switch err := w.WriteLines(pend); {
	case err == nil:
	case errors.Is(err, auditlog.ErrQueued) && !errors.Is(err, auditlog.ErrDropped):
		// Kept for when space returns; the log said the disk is full.
		o.diskDirty = true
	case errors.Is(err, auditlog.ErrDiskFull):
		o.stats.LineErrors++ // counted by the log and reported as a Loss
		o.diskDirty = true
	default:
		o.stats.LineErrors++
		o.cfg.Log.Error("log write", "err", err)
	}
	if cap(pend) > 4*pendMax {
		return nil
	}
	return pend[:0]
}

// Commit writes every pending line.
func (o *Output) Commit() {
	o.host = o.write(o.cfg.Host, o.host)
	for e := o.lru.Front(); e != nil; e = e.Next() {
		c := e.Value.(*clog)
		c.pend = o.write(c.w, c.pend)
	}
	if o.cfg.JSON != nil {
		o.json = o.write(o.cfg.JSON, o.json)
	}
	if o.diskDirty {
		o.diskStats(false) // the condition shows at once, not at the next Retry
	}
}

// container returns the open log of id, opening it (and closing the least
// recently written beyond MaxOpen) when needed; nil if it cannot be opened.
func (o *Output) container(id contid.ID) *clog {
	if e, ok := o.open[id]; ok {
		o.lru.MoveToFront(e)
		return e.Value.(*clog)
	}
	cfg := o.cfg.Container(id)
	if dir, ok := o.retired[id]; ok { // a late event of a dropped container
		cfg.Path = filepath.Join(dir, filepath.Base(cfg.Path))
	}
	w, err := auditlog.Open(cfg, o.cfg.Log)
	if err != nil {
		o.stats.OpenErrors++
		o.cfg.Log.Error("container log", "contid", id, "err", err)
		return nil
	}
	c := &clog{id: id, w: w}
	o.open[id] = o.lru.PushFront(c)
	for o.lru.Len() > o.cfg.MaxOpen {
		o.evict(o.lru.Back())
	}
	return c
}

func (o *Output) evict(e *list.Element) {
	c := e.Value.(*clog)
	o.write(c.w, c.pend)
	if err := c.w.Close(); err != nil {
		o.cfg.Log.Error("container log close", "contid", c.id, "err", err)
	}
	st := c.w.Stats()
	if n := st.Dropped.DiskFull - c.reported; n > 0 {
		o.closedLost = append(o.closedLost, Loss{Log: containerLog(c.id), Lines: n})
	}
	o.closedDroppedFull += st.Dropped.DiskFull
	o.closedWriteErrs += st.WriteErrors
	delete(o.open, c.id)
	o.lru.Remove(e)
}

// Flush commits, then has every open log hand its buffered lines to the
// kernel (the FlushNone policy buffers).
func (o *Output) Flush() {
	o.Commit()
	for e := o.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*clog).w.Flush()
	}
	if o.cfg.JSON != nil {
		o.cfg.JSON.Flush()
	}
}

// Reconfigure gives every open container log the configuration
// Config.Container returns now, and reopens it (after logrotate moved it,
// or to apply new limits and flush policy). It writes what is pending
// first. The JSON and host logs are their owner's to reconfigure.
func (o *Output) Reconfigure() {
	o.Commit()
	for e := o.lru.Front(); e != nil; e = e.Next() {
		c := e.Value.(*clog)
		if err := c.w.Reconfigure(o.cfg.Container(c.id)); err != nil {
			o.cfg.Log.Error("container log reconfigure", "contid", c.id, "err", err)
		}
	}
}

// Retry has the JSON log and every open container log write what a full
// disk queued, if space has come back, and brings the full-disk fields of
// Stats up to date. Call it on a timer.
func (o *Output) Retry() { o.diskStats(true) }

// diskStats computes the full-disk fields of Stats, having each log retry
// its queue first if retry.
func (o *Output) diskStats(retry bool) {
	o.diskDirty = false
	s := &o.stats
	s.DiskFull, s.Queued = false, 0
	s.DroppedDiskFull, s.WriteErrors = o.closedDroppedFull, o.closedWriteErrs
	add := func(w *auditlog.Writer) {
		if retry {
			w.Retry()
		}
		st := w.Stats()
		s.DiskFull = s.DiskFull || st.DiskFull
		s.Queued += st.Queued
		s.DroppedDiskFull += st.Dropped.DiskFull
		s.WriteErrors += st.WriteErrors
	}
	for e := o.lru.Front(); e != nil; e = e.Next() {
		add(e.Value.(*clog).w)
	}
	if o.cfg.JSON != nil {
		add(o.cfg.JSON)
	}
}

// TakeLosses returns the lines the JSON and container logs dropped on a
// full disk that were not reported yet, for each log that writes again
// (or was closed): so that the record of a loss comes after it.
func (o *Output) TakeLosses() []Loss {
	out := o.closedLost
	o.closedLost = nil
	if o.cfg.JSON != nil {
		if st := o.cfg.JSON.Stats(); !st.DiskFull && st.Dropped.DiskFull > o.jsonLost {
			out = append(out, Loss{Log: "audit.json", Lines: st.Dropped.DiskFull - o.jsonLost})
			o.jsonLost = st.Dropped.DiskFull
		}
	}
	for e := o.lru.Front(); e != nil; e = e.Next() {
		c := e.Value.(*clog)
		if st := c.w.Stats(); !st.DiskFull && st.Dropped.DiskFull > c.reported {
			out = append(out, Loss{Log: containerLog(c.id), Lines: st.Dropped.DiskFull - c.reported})
			c.reported = st.Dropped.DiskFull
		}
	}
	return out
}

func containerLog(id contid.ID) string { return "containers/" + id.String() + "/audit.log" }

// Close commits and closes the container logs (not Host and JSON, which
// the owner opened).
func (o *Output) Close() {
	o.Commit()
	for o.lru.Len() > 0 {
		o.evict(o.lru.Back())
	}
}

// Stats returns the counters.
func (o *Output) Stats() Stats {
	s := o.stats
	s.OpenLogs = o.lru.Len()
	return s
}

// AppendEventJSON writes an event as one JSON object (the form of
// audit.json and of the fleet stream's messages):
//
//	{"contid":[[inner,outer],…],"container":N,"records":[{…},…]}
//
// contid holds every chain the event carries, the subject's first;
// container is the contid whose log the event belongs to (absent if none);
// incomplete and late appear when true. Each record is records.AppendJSON's
// object, which carries the stamp.
func AppendEventJSON(b []byte, ev *pipeline.Event) []byte {
	b = append(b, `{"contid":`...)
	b = contid.AppendChainsJSON(b, ev.Chains)
	if ev.Container != contid.Unset {
		b = append(b, `,"container":`...)
		b = strconv.AppendUint(b, uint64(ev.Container), 10)
	}
	if ev.Incomplete {
		b = append(b, `,"incomplete":true`...)
	}
	if ev.Late {
		b = append(b, `,"late":true`...)
	}
	b = append(b, `,"records":[`...)
	for i := range ev.Records {
		if i > 0 {
			b = append(b, ',')
		}
		b = records.AppendJSON(b, &ev.Records[i])
	}
	return append(b, "]}"...)
}
