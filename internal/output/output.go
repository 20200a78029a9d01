// Package output writes what the audit pipeline keeps: the host log, each
// container's own log (DIR/containers/<contid>/audit.log, opened on first
// use, the least recently written closed beyond a bound) and optional JSON
// lines, one object per event. A line a log cannot take is counted (by the
// log and here), never dropped silently.
//
// Lines are gathered per destination and handed to each log with one
// write(2) at Commit (the daemon commits after each batch of records it
// receives), or sooner when 256 KiB are pending: a process crash loses at
// most the batch in hand, which it would lose anyway.
//
// An Output is for one goroutine (the daemon's core).
package output

import (
	"container/list"
	"log/slog"
	"strconv"

	"github.com/contid/contid/internal/auditlog"
	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/rules"
)

// Config configures an Output.
type Config struct {
	Host *auditlog.Writer
	JSON *auditlog.Writer // nil: no JSON lines
	// Container gives the writer configuration of a container's log.
	Container func(id contid.ID) auditlog.Config
	MaxOpen   int // container logs open at once (at least 1)
	// Lost is called for every loss the pipeline reports (to write a
	// CONTID_LOSS record, which is not this package's business).
	Lost func(n uint64, why pipeline.Loss)
	Log  *slog.Logger
}

// Stats counts what was written.
type Stats struct {
	HostEvents      uint64
	ContainerEvents uint64
	JSONEvents      uint64
	LineErrors      uint64 // writes (of one or more lines) a log refused or failed
	OpenErrors      uint64 // container logs that could not be opened
	OpenLogs        int
}

// Output is a pipeline.Writer.
type Output struct {
	cfg        Config
	open       map[contid.ID]*list.Element
	lru        list.List // of *clog, most recently written first
	host, json []byte    // pending lines
	stats      Stats
}

type clog struct {
	id   contid.ID
	w    *auditlog.Writer
	pend []byte
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
	return &Output{cfg: cfg, open: make(map[contid.ID]*list.Element)}
}

// Write writes one event to the destinations its routes name.
func (o *Output) Write(ev *pipeline.Event) {
	if ev.Routes.Has(rules.Host) {
		o.host = o.lines(o.cfg.Host, o.host, ev.Records)
		o.stats.HostEvents++
	}
	if ev.Routes.Has(rules.Container) && ev.Container != contid.Unset && o.cfg.Container != nil {
		if c := o.container(ev.Container); c != nil {
			c.pend = o.lines(c.w, c.pend, ev.Records)
			o.stats.ContainerEvents++
		}
	}
	if o.cfg.JSON != nil && ev.Routes.Has(rules.Host) {
		o.json = append(appendEventJSON(o.json, ev), '\n')
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

// lines appends the event's lines to pend, writing pend first if full.
func (o *Output) lines(w *auditlog.Writer, pend []byte, recs []records.Record) []byte {
	for i := range recs {
		pend = append(records.AppendRaw(pend, &recs[i]), '\n')
	}
	return o.spill(w, pend)
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
	if err := w.WriteLines(pend); err != nil {
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
}

// container returns the open log of id, opening it (and closing the least
// recently written beyond MaxOpen) when needed; nil if it cannot be opened.
func (o *Output) container(id contid.ID) *clog {
	if e, ok := o.open[id]; ok {
		o.lru.MoveToFront(e)
		return e.Value.(*clog)
	}
	w, err := auditlog.Open(o.cfg.Container(id), o.cfg.Log)
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

// Reopen reopens every open container log (after logrotate moved them).
func (o *Output) Reopen() {
	for e := o.lru.Front(); e != nil; e = e.Next() {
		if err := e.Value.(*clog).w.Reopen(); err != nil {
			o.cfg.Log.Error("container log reopen", "contid", e.Value.(*clog).id, "err", err)
		}
	}
}

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

// appendEventJSON writes an event as one JSON object:
//
//	{"contid":[[inner,outer],…],"container":N,"records":[{…},…]}
//
// contid holds every chain the event carries, the subject's first;
// container is the contid whose log the event belongs to (absent if none);
// incomplete and late appear when true. Each record is records.AppendJSON's
// object, which carries the stamp.
func appendEventJSON(b []byte, ev *pipeline.Event) []byte {
	b = append(b, `{"contid":[`...)
	for i, c := range ev.Chains {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for j, id := range c {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(id), 10)
		}
		b = append(b, ']')
	}
	b = append(b, ']')
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
