// Package auditpath wires the kernel's audit records to the core (docs/audit.md):
// the record source (package auditsrc) hands batches to the core, which
// applies the task events before each (its barrier) and runs it through
// the pipe (package auditpipe) to the host, container and JSON logs;
// contid's own records go back into the kernel's stream through the
// source's sender.
//
// Ownership: Tick, Reopen and the function Attach gives the core run on
// the core goroutine; Counters and Queues are safe from any goroutine.
package auditpath

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/contid/contid/internal/config"
	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core"
	"github.com/contid/contid/internal/sink/auditlog"
	"github.com/contid/contid/internal/sink/output"
	"github.com/contid/contid/internal/source/auditsrc"
	"github.com/contid/contid/internal/wiring/auditpipe"
)

// Config configures Open.
type Config struct {
	// Cfg is the daemon's configuration in force, read on the core
	// goroutine (a reload changes the container logs' limits).
	Cfg *config.Config
	// Host and HostIndex are the host log and its index (nil: none).
	Host      *auditlog.Writer
	HostIndex output.Noter
	// HostPlacer learns where the host log's blocks land (the stream
	// route's fleet.Places); nil: nothing does.
	HostPlacer output.Placer
	Stdin      io.Reader
	Log        *slog.Logger
	// Stream and Route are the stream route (auditpipe.Config).
	Stream string
	Route  auditpipe.Route
}

// Path is the audit path; with audit.mode off it has no source or pipe
// and does nothing.
type Path struct {
	log  *slog.Logger
	cfg  *config.Config
	c    *core.Core
	src  *auditsrc.Source // nil when off
	pipe *auditpipe.Pipe  // nil when off
	json *auditlog.Writer // nil: no JSON log
}

// Open opens the record source, the JSON log and the pipe, for core c,
// whose engine attributes the records.
func Open(cfg Config, c *core.Core) (_ *Path, err error) {
	p := &Path{log: cfg.Log, cfg: cfg.Cfg, c: c}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	dc := cfg.Cfg
	if dc.Audit.Mode == "off" {
		return p, nil
	}
	p.src, err = auditsrc.Open(auditsrc.Config{
		Audit:    dc.Audit,
		StateDir: filepath.Dir(dc.Socket),
		Stdin:    cfg.Stdin, Log: p.log,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.src.Abort()
			if p.json != nil {
				p.json.Close()
			}
		}
	}()
	if dc.Audit.JSON {
		if p.json, err = auditlog.Open(dc.JSONLog(), p.log); err != nil {
			return nil, fmt.Errorf("daemon: %w", err)
		}
	}
	timeout := time.Duration(dc.Audit.TimeoutMS) * time.Millisecond
	var filterText string
	if rec := c.Recorder(); rec != nil {
		// The trace keeps the rules' text: a replay needs no file.
		if dc.Audit.Filter != "" {
			b, err := os.ReadFile(dc.Audit.Filter)
			if err != nil {
				return nil, fmt.Errorf("daemon: filter: %w", err)
			}
			filterText = string(b)
		}
		rec.Audit(p.src.Mode(), int32(os.Getpid()), timeout, filterText)
	}
	p.pipe, err = auditpipe.Open(auditpipe.Config{
		Mode: p.src.Mode(), Filter: dc.Audit.Filter, FilterText: filterText,
		Timeout: timeout,
		Output: output.Config{
			Host: cfg.Host, JSON: p.json, MaxOpen: dc.Audit.MaxOpen, Log: p.log,
			Container: func(id contid.ID) auditlog.Config { return p.cfg.ContainerLog(uint64(id)) },
			Dir:       dc.ContainersDir(), KeepDropped: dc.Containers.KeepDropped,
			KeepDroppedFor: time.Duration(dc.Containers.KeepDroppedDays) * 24 * time.Hour,
			HostIndex:      cfg.HostIndex,
			HostPlacer:     cfg.HostPlacer,
		},
		Engine: c.Engine(),
		Loss:   func(kind string, n uint64) { c.Loss(kind, n) },
		Log:    p.log,
		Stream: cfg.Stream, Route: cfg.Route,
	})
	if err != nil {
		return nil, err
	}
	p.log.Info("kernel audit records", "mode", p.src.Mode(), "filter", dc.Audit.Filter, "audit_rules", p.src.Rules())
	return p, nil
}

// Attach gives the core the audit path's hooks; tick runs on every tick
// after the audit path's own work, and like it reports whether it left
// work for the next tick (core.Hooks.Tick).
func (p *Path) Attach(tick func(now time.Time) (held bool)) {
	h := core.Hooks{Tick: func(now time.Time) bool {
		held := p.Tick(now)
		return tick(now) || held
	}}
	if p.src != nil {
		h.AuditMode = p.src.Mode()
		h.AuditIn = p.src.Batches()
		h.AuditBatch = p.pipe.Batch
		h.Observer = p.pipe.Observer()
		if p.src.Sends() {
			h.Own = p.src
		}
	}
	p.c.Attach(h)
}

// Start starts the source's goroutines: the receiver (not waited for:
// see auditsrc.Source.Receive) and the sender, on wg. stop stops the
// daemon (the end of the plugin feed).
func (p *Path) Start(ctx context.Context, wg *sync.WaitGroup, stop func()) {
	if p.src == nil {
		return
	}
	if p.src.Reads() {
		p.src.Receive(ctx, stop)
	}
	if p.src.Sends() {
		wg.Go(func() { p.src.SendLoop(ctx, p.c.Local) })
	}
}

// Tick advances event time while the stream is idle and turns the
// kernel's, the socket's and the logs' losses into CONTID_LOSS records.
// It reports whether it left work for the next tick: records held for
// reassembly, batches or own records queued, lines queued on a full disk.
//
// The kernel's lost counter is read at every tick (through the sender),
// so while the daemon's tick has backed off a loss is reported late, never
// not at all; and the kernel loses records only while it produces them,
// so the records it does deliver bring the tick back to once a second.
func (p *Path) Tick(now time.Time) (held bool) {
	if p.pipe == nil {
		return false
	}
	batches, _, _, _ := p.src.Queues()
	if rec := p.c.Recorder(); rec != nil {
		rec.Tick(now, batches == 0)
	}
	p.pipe.Tick(now, batches == 0)
	p.src.Tick(func(kind string, n uint64) { p.c.Loss(kind, n) })
	out := p.pipe.Output()
	if p.cfg.Log.Flush == auditlog.FlushNone {
		out.Flush()
	}
	out.Retry()
	for _, l := range out.TakeLosses() {
		p.c.DiskFullLoss(l.Log, l.Lines)
	}
	p.pipe.Publish()
	batches, _, own, _ := p.src.Queues()
	st, _ := p.pipe.OutputStats()
	return p.pipe.Holding() || batches > 0 || own > 0 || st.DiskFull || st.Queued > 0
}

// Reopen gives the JSON and container logs the configuration in force
// and reopens them in place (SIGHUP).
func (p *Path) Reopen() error {
	if p.pipe == nil {
		return nil
	}
	var err error
	if p.json != nil {
		err = p.json.Reconfigure(p.cfg.JSONLog())
	}
	p.pipe.Output().Reconfigure() // container logs; it logs its own errors
	return err
}

// Stop, at the daemon's stop once the core and the source's goroutines
// are done: the source's last records go through the pipe, the audit
// settings are put back, the pipe delivers what it holds, and the own
// records still queued are written directly.
func (p *Path) Stop() {
	if p.src == nil {
		return
	}
	p.src.Stop(p.c.AuditBatch)
	if rec := p.c.Recorder(); rec != nil {
		rec.Stop()
	}
	p.pipe.Close()
	p.src.Close(p.c.Unsent)
	p.c.EndUnsent()
	if p.json != nil {
		p.json.Close()
	}
}

// Mode is the audit mode in force: "" when audit.mode is off, "off" when
// auto found another audit daemon.
func (p *Path) Mode() string {
	if p.src == nil {
		return ""
	}
	return p.src.Mode()
}

// Counters adds the audit path's counters to c; safe from any goroutine.
func (p *Path) Counters(c map[string]uint64) {
	if m := p.Mode(); m == "" || m == "off" {
		return
	}
	p.src.Counters(c)
	p.pipe.Counters(c)
}

// DiskFull reports the JSON and container logs' part of the full-disk
// state: whether one is full, lines queued, dropped, write errors.
func (p *Path) DiskFull() (full bool, queued, dropped, werrs uint64) {
	if p.pipe == nil {
		return
	}
	st, ok := p.pipe.OutputStats()
	if !ok {
		return
	}
	return st.DiskFull, uint64(st.Queued), st.DroppedDiskFull, st.WriteErrors
}

// Queues reports the fill of the audit path's queues by name; safe from
// any goroutine.
func (p *Path) Queues(f func(name string, n, capacity int)) {
	if p.src == nil {
		return
	}
	b, bc, o, oc := p.src.Queues()
	f("audit_batches", b, bc)
	if p.src.Sends() {
		f("own_records", o, oc)
	}
}
