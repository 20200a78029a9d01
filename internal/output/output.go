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
// An Output is for one goroutine (the daemon's core).
package output

import (
	"container/list"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

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
	Retired         uint64 // dropped containers' logs moved aside
	RetiredRemoved  uint64 // … removed beyond KeepDropped or KeepDroppedFor
	RetireErrors    uint64 // moves and removals that failed
}

// Output is a pipeline.Writer.
type Output struct {
	cfg        Config
	open       map[contid.ID]*list.Element
	lru        list.List // of *clog, most recently written first
	host, json []byte    // pending lines
	stats      Stats
	dropped    []retired            // dropped containers' directories, oldest first
	retired    map[contid.ID]string // directory of each dropped contid not registered again
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
	o := &Output{cfg: cfg, open: make(map[contid.ID]*list.Element), retired: make(map[contid.ID]string)}
	if cfg.Dir != "" {
		o.loadDropped()
	}
	return o
}

// Write writes one event to the destinations its routes name.
func (o *Output) Write(ev *pipeline.Event) {
	if ev.Routes.Has(rules.Host) {
		o.host = o.lines(o.cfg.Host, o.host, ev.Records)
		o.stats.HostEvents++
	}
	life := o.cfg.Dir != "" && ev.Container != contid.Unset && len(ev.Records) > 0
	if life && ev.Life == pipeline.Registered {
		o.reborn(ev.Container)
	}
	if ev.Routes.Has(rules.Container) && ev.Container != contid.Unset && o.cfg.Container != nil {
		if c := o.container(ev.Container); c != nil {
			c.pend = o.lines(c.w, c.pend, ev.Records)
			o.stats.ContainerEvents++
		}
	}
	if life && ev.Life == pipeline.Dropped {
		st := ev.Records[0].Stamp
		o.retire(ev.Container, st.Sec*1e9+int64(st.Msec)*1e6)
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
