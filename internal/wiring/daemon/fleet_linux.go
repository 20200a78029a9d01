package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/contid/contid/internal/config"
	"github.com/contid/contid/internal/sink/fleet"
)

// fleetRoute is the fleet stream route (docs/fleet.md): the pipe hands it
// the events the filter routes to stream=<fleet.route> (auditpipe.Route);
// its sink spools them on the core goroutine and a publisher of its own
// sends them.
type fleetRoute struct {
	*fleet.Sink // Write and Commit, on the core goroutine
	spool       *fleet.Spool
	places      *fleet.Places // nil with fleet.spool_copy
	pub         *fleet.Publisher
	reg         *fleet.Registry // nil without fleet.registry
	stop        context.CancelFunc
	done        chan error
	closeOnce   sync.Once
}

// openFleet opens the spool and starts publishing when fleet.route is set;
// nil when it is not. hostLog is the host log's path: unless
// fleet.spool_copy, the spool refers to the host log for the events it
// holds (the caller makes route.places the output's HostPlacer and an
// observer of the host log).
func openFleet(f config.Fleet, hostLog string, log *slog.Logger) (*fleetRoute, error) {
	if f.Route == "" {
		return nil, nil
	}
	host := f.Host
	if host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("daemon: fleet: %w", err)
		}
		host, _, _ = strings.Cut(h, ".")
	}
	if err := fleet.CheckHost(host); err != nil {
		return nil, fmt.Errorf("daemon: fleet.host %q: %w", host, err)
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return nil, fmt.Errorf("daemon: fleet: boot id: %w", err)
	}
	action, _ := fleet.ParseAction(f.SpoolAction) // validated with the configuration
	sp, err := fleet.OpenSpool(fleet.SpoolConfig{Dir: f.SpoolDir, MaxBytes: f.SpoolMax << 20, Action: action, Sync: f.SpoolFsync,
		LogDir: filepath.Dir(hostLog), LogBase: filepath.Base(hostLog), Log: log})
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	nc, err := fleet.Connect(fleet.ConnConfig{
		URLs: f.URLs, Credentials: f.Credentials, NKeySeed: f.NKeySeed, TLSCA: f.TLSCA, TLSCert: f.TLSCert, TLSKey: f.TLSKey,
		Name: "contid " + host, Host: host,
	})
	if err != nil {
		sp.Close()
		return nil, fmt.Errorf("daemon: %w", err)
	}
	// With create_stream the publisher makes the stream when it finds
	// none, also when the servers come up after the daemon.
	stream := fleet.StreamName(f.StreamPrefix, host)
	pub, err := fleet.NewPublisher(fleet.PublisherConfig{Conn: nc, Stream: stream, Host: host, Spool: sp, Log: log,
		Create: f.CreateStream, Replicas: f.Replicas})
	if err != nil {
		nc.Close()
		sp.Close()
		return nil, fmt.Errorf("daemon: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &fleetRoute{Sink: fleet.NewSink(f.Route, host, strings.TrimSpace(string(boot)), f.JSON, sp), spool: sp, pub: pub, stop: cancel, done: make(chan error, 1)}
	if !f.SpoolCopy {
		r.places = &fleet.Places{}
		r.Sink.Places = r.places
	}
	if f.Registry {
		if f.CreateStream {
			if err := fleet.EnsureRegistry(nc, f.StreamPrefix, f.Replicas); err != nil {
				log.Warn("fleet: creating the registry", "err", err)
			}
		}
		r.reg = fleet.NewRegistry(host, log)
		r.Sink.Registry = r.reg
		go r.reg.Run(ctx, nc, fleet.RegistryBucket(f.StreamPrefix))
	}
	go func() { r.done <- pub.Run(ctx); nc.Close() }()
	log.Info("fleet stream route", "route", f.Route, "stream", stream, "servers", f.URLs)
	return r, nil
}

// Dropped is how many events the spool lost since it opened (dropped
// when full, or no longer in the host log).
func (r *fleetRoute) Dropped() uint64 { return r.spool.Stats().Lost() }

// Close stops the publisher, giving it a few seconds to send what is
// spooled; what is left stays in the spool for the next start. Only the
// first call does anything.
func (r *fleetRoute) Close() {
	r.closeOnce.Do(func() {
		r.Commit()
		r.spool.Close() // Run returns once the spool is drained …
		select {
		case <-r.done:
		case <-time.After(5 * time.Second): // … or the servers do not answer
			r.stop()
			<-r.done
		}
		r.stop()
		if r.places != nil {
			r.places.Close()
		}
	})
}

// Counters adds the fleet's counters; safe from any goroutine.
func (r *fleetRoute) Counters(c map[string]uint64) {
	st, ps := r.spool.Stats(), r.pub.Stats()
	c["fleet_spooled"] = st.Events
	c["fleet_pending"] = st.Pending
	c["fleet_spool_bytes"] = uint64(st.Bytes)
	c["fleet_dropped"] = st.Lost()
	c["fleet_unreadable"] = st.Unreadable
	c["fleet_held_bytes"] = uint64(st.Held)
	c["fleet_held_files"] = uint64(st.HeldFiles)
	c["fleet_published"] = ps.Events
	c["fleet_messages"] = ps.Published
	c["fleet_publish_errors"] = ps.Errors
	c["fleet_resyncs"] = ps.Resyncs
	if r.reg != nil {
		c["fleet_registry_puts"], c["fleet_registry_errors"] = r.reg.Stats()
	}
	c["fleet_connected"] = 0
	if ps.Connected {
		c["fleet_connected"] = 1
	}
}
