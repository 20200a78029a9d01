// Package auditpipe runs the kernel's audit records from the core to the
// logs (docs/audit.md): each batch, after the core's barrier, goes
// through packet pairing (package netpkt), the pipeline (reassembly,
// provenance, rules) and the output (host, container and JSON logs).
// Losses the pipeline and the output report are summed per kind and
// written once a tick as CONTID_LOSS records, so a flood of bad input
// cannot double itself in loss records.
//
// Everything runs on the core goroutine but Counters, which reads what
// Publish stored.
package auditpipe

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/pipeline/rules"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/sink/output"
	"github.com/contid/contid/internal/source/netpkt"
)

// Config configures Open.
type Config struct {
	// Mode is the record source's mode: packet pairing needs the
	// kernel's own stream (primary, listener).
	Mode string
	// Filter is the path of the filtering and routing rules; "": keep
	// everything with the default routes.
	Filter string
	// FilterText, when not "", is the rules' text (a replay's recorded
	// copy): Filter only names it.
	FilterText string
	// Self is the pid whose own records the pipeline trusts; 0: this
	// process (a replay gives the recorded daemon's).
	Self    int32
	Timeout time.Duration // reassembly
	// Output is the output's configuration but for Lost, which the pipe
	// sets.
	Output output.Config
	Engine *engine.Engine
	// Loss writes a CONTID_LOSS record.
	Loss func(kind string, n uint64)
	Log  *slog.Logger
	// Route, when not nil, is the stream route named Stream in the
	// filter's stream= actions (the fleet stream); a filter naming any
	// other stream is refused.
	Stream string
	Route  Route
	// AnyStream takes every stream= action with no route (a replay: the
	// streams are not what it reproduces; their events still reach the
	// logs their other routes name).
	AnyStream bool
}

// Route is a destination of routed events beside the logs: the fleet
// stream (docs/fleet.md). It runs on the core goroutine but Counters.
type Route interface {
	// WriteLines is given every event the pipeline writes, with its
	// lines as the logs got them (nil when it went to no log) and where
	// they sit among the host log's blocks (output.Output.Span); it keeps
	// those routed to it.
	WriteLines(ev *pipeline.Event, lines []byte, at output.HostSpan)
	// Commit ends a batch.
	Commit() error
	// Dropped is how many messages it dropped since it opened.
	Dropped() uint64
	// Close delivers what it can and keeps the rest for the next start.
	Close()
	// Counters adds its counters to c; safe from any goroutine.
	Counters(c map[string]uint64)
}

// Pipe is the audit records' way to the logs.
type Pipe struct {
	pipe    *pipeline.Pipeline
	out     *output.Output
	pk      *netpkt.Packets // nil when packet records are not paired
	route   Route           // nil: no stream route
	dropped uint64          // the route's drops already written as loss
	log     *slog.Logger
	loss    func(kind string, n uint64)
	pending map[pipeline.Loss]uint64
	stats   atomic.Pointer[stats]
}

type stats struct {
	pipe pipeline.Stats
	out  output.Stats
	pk   netpkt.PacketsStats
}

// Open reads the filter and builds the pipe.
func Open(cfg Config) (*Pipe, error) {
	var rs *rules.Set
	if cfg.Filter != "" || cfg.FilterText != "" {
		var r io.Reader = strings.NewReader(cfg.FilterText)
		if cfg.FilterText == "" {
			f, err := os.Open(cfg.Filter)
			if err != nil {
				return nil, fmt.Errorf("daemon: filter: %w", err)
			}
			defer f.Close()
			r = f
		}
		var err error
		rs, err = rules.Parse(r, cfg.Filter)
		if err != nil {
			return nil, fmt.Errorf("daemon: filter: %w", err)
		}
		for _, s := range rs.Streams() {
			if !cfg.AnyStream && (cfg.Route == nil || s != cfg.Stream) {
				return nil, fmt.Errorf("daemon: filter %s: stream %q is not defined (fleet.route is %q)", cfg.Filter, s, cfg.Stream)
			}
		}
	}
	p := &Pipe{loss: cfg.Loss, pending: map[pipeline.Loss]uint64{}, route: cfg.Route, log: cfg.Log}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	oc := cfg.Output
	oc.Lost = p.lost
	p.out = output.New(oc)
	attr, pk := netpkt.NewPackets(cfg.Mode, live{cfg.Engine}, p.log)
	p.pk = pk
	var w pipeline.Writer = p.out
	if p.route != nil {
		w = tee{p.out, p.route}
	}
	if cfg.Self == 0 {
		cfg.Self = int32(os.Getpid())
	}
	pc := pipeline.Config{Rules: rs, Attributor: attr, Writer: w, Self: cfg.Self}
	pc.Reassembly.Timeout = cfg.Timeout
	p.pipe = pipeline.New(pc)
	return p, nil
}

// Observer is what learns of the task events the core applies (packet
// pairing watches the network namespaces they give containers).
func (p *Pipe) Observer() *netpkt.Packets { return p.pk }

// Output is the pipe's output, for the log sinks' upkeep.
func (p *Pipe) Output() *output.Output { return p.out }

// Batch runs one batch of records through the pipeline.
func (p *Pipe) Batch(b []records.Raw) {
	p.pk.Batch(b)
	for _, m := range b {
		if m.Type == 0 {
			p.pipe.PushLine(string(m.Data))
		} else {
			p.pipe.PushMessage(m.Type, m.Data)
		}
	}
	p.pipe.EndRead()
	p.out.Commit()
	p.commitRoute()
	p.Publish()
}

// tee writes events to the logs and the stream route.
type tee struct {
	*output.Output
	route Route
}

func (t tee) Write(ev *pipeline.Event) {
	t.Output.Write(ev)
	t.route.WriteLines(ev, t.Output.Lines(), t.Output.Span())
}

func (p *Pipe) commitRoute() {
	if p.route == nil {
		return
	}
	if err := p.route.Commit(); err != nil {
		p.log.Error("stream route", "err", err)
	}
}

// Tick advances event time when idle (no batch waits), watches the
// containers' network namespaces, and writes the losses summed since the
// last tick.
func (p *Pipe) Tick(now time.Time, idle bool) {
	if idle {
		p.pipe.Advance(now.UnixMilli())
	}
	p.pk.Tick()
	p.flushLosses()
	p.out.Commit() // what Advance delivered
	p.commitRoute()
	if p.route != nil {
		if n := p.route.Dropped(); n > p.dropped {
			p.log.Warn("stream route: messages dropped (spool full)", "messages", n-p.dropped)
			p.loss("stream", n-p.dropped)
			p.dropped = n
		}
	}
}

// Close delivers what the pipeline holds and closes the output and the
// packet pairing.
func (p *Pipe) Close() {
	p.pipe.Flush()
	p.flushLosses()
	p.out.Close()
	if p.route != nil {
		p.route.Close()
	}
	p.pk.Close()
}

// lost is the pipeline's loss report.
func (p *Pipe) lost(n uint64, why pipeline.Loss) { p.pending[why] += n }

func (p *Pipe) flushLosses() {
	for _, why := range []pipeline.Loss{pipeline.Gap, pipeline.Incomplete, pipeline.Late, pipeline.Discontinuity, pipeline.Malformed} {
		if n := p.pending[why]; n > 0 {
			p.loss(why.String(), n)
			delete(p.pending, why)
		}
	}
}

// Holding reports whether the pipeline holds records for reassembly,
// which later ticks deliver as event time advances.
func (p *Pipe) Holding() bool {
	st := p.stats.Load()
	return st != nil && st.pipe.Reassembly.InFlight > 0
}

// Publish makes the counters visible to Counters.
func (p *Pipe) Publish() {
	p.stats.Store(&stats{pipe: p.pipe.Stats(), out: p.out.Stats(), pk: p.pk.Stats()})
}

// OutputStats is the output's part of the last published counters.
func (p *Pipe) OutputStats() (output.Stats, bool) {
	st := p.stats.Load()
	if st == nil {
		return output.Stats{}, false
	}
	return st.out, true
}

// Counters adds the last published counters to c; safe from any
// goroutine.
func (p *Pipe) Counters(c map[string]uint64) {
	st := p.stats.Load()
	if st == nil {
		return
	}
	ps, o := st.pipe, st.out
	c["audit_received"] = ps.Received
	c["audit_malformed"] = ps.Malformed
	c["audit_events"] = ps.Events
	c["audit_dropped_by_rule"] = ps.Dropped
	c["audit_gaps"] = ps.Reassembly.Gap
	c["audit_incomplete"] = ps.Reassembly.Incomplete
	c["audit_late"] = ps.Reassembly.Late
	c["audit_discontinuities"] = ps.Reassembly.Discontinuities
	c["audit_contained"] = ps.Provenance.Contained
	c["audit_unknown_subject"] = ps.Provenance.Unknown
	c["audit_forged"] = ps.Provenance.Forged
	netpkt.Counters(c, ps.Packets, st.pk)
	c["written_host"] = o.HostEvents
	c["written_container"] = o.ContainerEvents
	c["written_json"] = o.JSONEvents
	c["write_errors"] = o.LineErrors + o.OpenErrors
	c["container_logs_retired"] = o.Retired
	c["container_logs_removed"] = o.RetiredRemoved
	c["container_logs_retire_errors"] = o.RetireErrors
	if p.route != nil {
		p.route.Counters(c)
	}
}

// live is the engine as packet pairing sees it.
type live struct{ *engine.Engine }

func (l live) ContainerNets() map[ns.ID]bool {
	want := map[ns.ID]bool{}
	for _, c := range l.Containers() {
		for _, id := range c.Netns {
			want[id] = true
		}
	}
	return want
}

func (l live) NetMembers(want map[ns.ID]bool, f func(tid int32, id ns.ID) bool) {
	for _, ti := range l.Tasks() {
		if id := ti.NS[ns.Net]; want[id] && !f(ti.TID, id) {
			return
		}
	}
}
