package daemon

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/contid/contid/internal/fleet"
	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/rules"
)

// The fleet stream route (docs/fleet.md): events the filter routes to
// stream=<fleet.route> are spooled by the core (fleet.Sink) and published
// by a goroutine of their own (fleet.Publisher). The daemon calls
// openFleet, fleetWriter, fleetCommit, fleetTick, closeFleet and
// fleetStatus; nothing else here is the daemon's business.
type fleetRoute struct {
	sink     *fleet.Sink
	spool    *fleet.Spool
	pub      *fleet.Publisher
	stop     context.CancelFunc
	done     chan error
	reported uint64 // spool drops already written as CONTID_LOSS
}

// openFleet checks that the filter names no stream but the fleet's and,
// when the fleet is configured, opens the spool and starts publishing.
func (d *Daemon) openFleet(rs *rules.Set) error {
	f := d.cfg.Fleet
	if rs != nil {
		for _, s := range rs.Streams() {
			if s != f.Route || f.Route == "" {
				return fmt.Errorf("daemon: filter %s: stream %q is not defined (fleet.route is %q)", d.cfg.Audit.Filter, s, f.Route)
			}
		}
	}
	if f.Route == "" {
		return nil
	}
	host := f.Host
	if host == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("daemon: fleet: %w", err)
		}
		host, _, _ = strings.Cut(h, ".")
	}
	if err := fleet.CheckHost(host); err != nil {
		return fmt.Errorf("daemon: fleet.host %q: %w", host, err)
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return fmt.Errorf("daemon: fleet: boot id: %w", err)
	}
	action, _ := fleet.ParseAction(f.SpoolAction) // validated with the configuration
	sp, err := fleet.OpenSpool(fleet.SpoolConfig{Dir: f.SpoolDir, MaxBytes: f.SpoolMax << 20, Action: action, Sync: f.SpoolFsync})
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	nc, err := fleet.Connect(fleet.ConnConfig{
		URLs: f.URLs, Credentials: f.Credentials, NKeySeed: f.NKeySeed, TLSCA: f.TLSCA, TLSCert: f.TLSCert, TLSKey: f.TLSKey,
		Name: "contid " + host, Host: host,
	})
	if err != nil {
		sp.Close()
		return fmt.Errorf("daemon: %w", err)
	}
	stream := fleet.StreamName(f.StreamPrefix, host)
	if f.CreateStream {
		if err := fleet.EnsureStream(nc, stream, host); err != nil {
			d.log.Warn("fleet: creating the stream", "stream", stream, "err", err)
		}
	}
	pub, err := fleet.NewPublisher(fleet.PublisherConfig{Conn: nc, Stream: stream, Host: host, Spool: sp, Log: d.log})
	if err != nil {
		nc.Close()
		sp.Close()
		return fmt.Errorf("daemon: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &fleetRoute{sink: fleet.NewSink(f.Route, host, strings.TrimSpace(string(boot)), f.JSON, sp), spool: sp, pub: pub, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- pub.Run(ctx); nc.Close() }()
	d.fleet = r
	d.log.Info("fleet stream route", "route", f.Route, "stream", stream, "servers", f.URLs)
	return nil
}

// fleetWriter is the pipeline's writer: out, and the fleet's sink.
func (d *Daemon) fleetWriter(out pipeline.Writer) pipeline.Writer {
	if d.fleet == nil {
		return out
	}
	return fleetTee{out, d.fleet.sink}
}

type fleetTee struct {
	pipeline.Writer
	sink *fleet.Sink
}

func (t fleetTee) Write(ev *pipeline.Event) {
	t.Writer.Write(ev)
	t.sink.Write(ev) // takes only the events routed to it
}

// fleetCommit hands the batch's events to the publisher.
func (d *Daemon) fleetCommit() {
	if d.fleet != nil {
		if err := d.fleet.sink.Commit(); err != nil {
			d.log.Error("fleet spool", "err", err)
		}
	}
}

// fleetTick writes a CONTID_LOSS record for the events the full spool
// dropped since the last tick.
func (d *Daemon) fleetTick() {
	r := d.fleet
	if r == nil {
		return
	}
	d.fleetCommit()
	st := r.spool.Stats()
	if n := st.DroppedNew + st.DroppedOld; n > r.reported {
		d.log.Warn("fleet: the spool was full; messages dropped", "messages", n-r.reported, "action", d.cfg.Fleet.SpoolAction)
		d.lossRecord("stream", n-r.reported, records.Field{Key: "stream", Value: r.sink.Name})
		r.reported = n
	}
}

// closeFleet stops the publisher, giving it a few seconds to send what is
// spooled; what is left stays in the spool for the next start.
func (d *Daemon) closeFleet() {
	r := d.fleet
	if r == nil {
		return
	}
	d.fleetCommit()
	r.spool.Close() // Run returns once the spool is drained …
	select {
	case <-r.done:
	case <-time.After(5 * time.Second): // … or the servers do not answer
		r.stop()
		<-r.done
	}
	r.stop()
}

// fleetStatus adds the fleet's counters (from any goroutine: d.fleet is
// set before the API starts and never changed).
func (d *Daemon) fleetStatus(c map[string]uint64) {
	r := d.fleet
	if r == nil {
		return
	}
	st, ps := r.spool.Stats(), r.pub.Stats()
	c["fleet_spooled"] = st.Appended
	c["fleet_pending"] = st.Pending
	c["fleet_spool_bytes"] = uint64(st.Bytes)
	c["fleet_dropped"] = st.DroppedNew + st.DroppedOld
	c["fleet_published"] = ps.Published
	c["fleet_publish_errors"] = ps.Errors
	c["fleet_resyncs"] = ps.Resyncs
	c["fleet_connected"] = 0
	if ps.Connected {
		c["fleet_connected"] = 1
	}
}
