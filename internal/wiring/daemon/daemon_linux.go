// Package daemon wires contid's live daemon and does nothing else: the
// task-event source and the core that applies it (package tasksource,
// package core), the host log (package hostlog), the audit path (package
// auditpath), and the surfaces: the registration API, the metrics
// endpoint, the service manager and signals. SIGHUP reloads the
// configuration file on the core goroutine; SIGTERM and SIGINT stop.
//
// Ownership: the core goroutine owns the configuration in force (reload
// changes it). Each log has one writer for the daemon's life, never
// replaced: SIGHUP reconfigures and reopens it in place, so whoever holds
// it never writes to a stale file. Other goroutines read only atomics and
// what is fixed at start.
package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/contid/contid/internal/config"
	"github.com/contid/contid/internal/sink/hostlog"
	"github.com/contid/contid/internal/surface/api"
	"github.com/contid/contid/internal/wiring/auditpath"
	"github.com/contid/contid/internal/wiring/tasksource"
)

// Options are the parts of start-up that are not configuration.
type Options struct {
	// Ready, when set, is closed once the API answers.
	Ready chan<- struct{}
	// Stdin is auditd's plugin feed (audit mode plugin).
	Stdin io.Reader
	// Record, when set, is a file to write a trace of the engine's inputs
	// to (package trace), replaced if it exists.
	Record string
}

// daemon is what Run wired, for reload and status.
type daemon struct {
	cfg     config.Config // the core goroutine's; reload changes it
	fileCfg config.Config // the configuration file as last read, for reload to compare
	log     *slog.Logger
	tasks   *tasksource.Tasks
	host    *hostlog.Log
	audit   *auditpath.Path
	core    coreView
}

// coreView is what status and metrics read of the core (package core);
// safe from any goroutine.
type coreView interface {
	Refresh(ctx context.Context) error
	Counters(map[string]uint64)
	QueueLen() (n, capacity int)
	Tasks() int
}

// Run starts the daemon and runs it until ctx is done or SIGTERM/SIGINT;
// SIGHUP reloads the configuration file (configPath) and reopens the log.
func Run(ctx context.Context, cfg config.Config, configPath string, log *slog.Logger, opt Options) error {
	d := &daemon{cfg: cfg, log: log}
	if err := raiseTimerSlack(timerSlack); err != nil {
		log.Warn("the daemon keeps the default timer slack, and wakes more often", "err", err)
	}
	var err error
	if d.tasks, err = tasksource.Open(cfg, log); err != nil {
		return err
	}
	defer func() {
		if err := d.tasks.Close(); err != nil {
			log.Error("closing the task source", "err", err)
		}
	}()
	if d.host, err = hostlog.Open(cfg, log); err != nil {
		return err
	}
	defer d.host.Close()
	if d.fileCfg, err = config.Load(configPath); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	// The trace (opt.Record) is completed when the source closes, after
	// the audit path's last batches (deferred below), whose task events
	// are recorded too.
	c, err := d.tasks.NewCore(d.host.Writer(), opt.Record)
	if err != nil {
		return err
	}
	d.core = c
	ac := auditpath.Config{Cfg: &d.cfg, Host: d.host.Writer(), HostIndex: d.host.Index(), Stdin: opt.Stdin, Log: log}
	if cfg.Audit.Mode != "off" {
		route, err := openFleet(cfg.Fleet, cfg.HostLog().Path, log)
		if err != nil {
			return err
		}
		if route != nil && route.places != nil {
			d.host.Observe(route.places)
			ac.HostPlacer = route.places
		}
		if route != nil {
			// The pipe closes it at the audit path's stop; this is for
			// an audit path that failed to open or made no pipe.
			defer route.Close()
			ac.Stream, ac.Route = cfg.Fleet.Route, route
		}
	}
	if d.audit, err = auditpath.Open(ac, c); err != nil {
		return err
	}
	d.audit.Attach(func(now time.Time) bool { return d.host.Tick(now, d.cfg.Log.Flush, c.DiskFullLoss) })
	defer d.audit.Stop()

	msrv, err := d.listenMetrics()
	if err != nil {
		return err
	}
	acfg := api.Config{Path: cfg.Socket, Status: d.Status, KernelContid: d.tasks.KernelContid()}
	srv, err := api.Listen(acfg, c, log)
	if err != nil {
		if msrv != nil {
			msrv.Shutdown(context.Background())
		}
		return fmt.Errorf("daemon: %w", err)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	d.audit.Start(ctx, &wg, stop)
	wg.Go(func() {
		if err := srv.Serve(); err != nil {
			log.Error("api", "err", err)
			stop()
		}
	})
	if msrv != nil {
		wg.Go(func() {
			if err := msrv.Serve(); err != nil {
				log.Error("metrics", "err", err)
				stop()
			}
		})
	}
	// Signals: a reload runs on the core goroutine, which owns the
	// configuration and the logs.
	sigDone := make(chan struct{})
	go func() {
		defer close(sigDone)
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-sigs:
				if s != syscall.SIGHUP {
					log.Info("signal, stopping", "signal", s)
					stop()
					return
				}
				notifyReloading(log)
				if c.Call(ctx, func() { d.reload(configPath) }) == nil {
					notify(log, "READY=1")
				}
			}
		}
	}()
	log.Info("contid daemon ready", "socket", cfg.Socket, "log", cfg.HostLog().Path, "tasks", c.Tasks())
	notify(log, "READY=1\nSTATUS=serving "+cfg.Socket)
	if opt.Ready != nil {
		close(opt.Ready)
	}
	c.Run(ctx)
	<-sigDone
	notify(log, "STOPPING=1")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(sctx)
	if msrv != nil {
		msrv.Shutdown(sctx)
	}
	cancel()
	wg.Wait()
	d.host.Flush()
	log.Info("contid daemon stopped")
	return nil
}

const statusWait = 2 * time.Second

// reload runs on SIGHUP: it re-reads the configuration file, applies its
// [log] and [containers] sections (limits, flush policy, disk-full queue),
// and reopens every log in place — the host log, the JSON log and each
// open container log — so a log renamed away (logrotate) is started anew
// and nothing is lost: lines written before the reopen are in the renamed
// file, later ones in the new one. Every other key takes effect only at
// restart (a warning says so when one changed), and flags given at start
// keep their effect. A file that is refused changes nothing, but the logs
// are reopened all the same: logrotate's SIGHUP must work whatever the
// state of the file.
func (d *daemon) reload(path string) {
	file, err := config.Load(path)
	if err != nil {
		d.log.Error("reload: configuration refused, keeping the old one", "err", err)
		d.reopenLogs()
		d.log.Info("reopened the logs")
		return
	}
	was, now := d.fileCfg, file
	was.Log, was.Containers.Log = config.Log{}, config.Log{}
	now.Log, now.Containers.Log = config.Log{}, config.Log{}
	if !bytes.Equal(was.Text(), now.Text()) {
		d.log.Warn("reload: only the log limits of [log] and [containers] apply now; other changed keys take effect at restart")
	}
	d.fileCfg = file
	d.cfg.Log, d.cfg.Containers.Log = file.Log, file.Containers.Log
	d.reopenLogs()
	d.log.Info("reloaded configuration", "path", path,
		"max_log_file", d.cfg.Log.MaxLogFile, "num_logs", d.cfg.Log.NumLogs, "max_log_file_action", d.cfg.Log.MaxLogFileAction,
		"flush", d.cfg.Log.Flush, "freq", d.cfg.Log.Freq)
}

// reopenLogs gives every open log the configuration in force and reopens
// it in place.
func (d *daemon) reopenLogs() {
	err := errors.Join(d.host.Reconfigure(d.cfg.HostLog()), d.audit.Reopen())
	if err != nil {
		d.log.Error("reload: reopening a log failed; writing on to the file in use and retrying at each line", "err", err)
	}
}

// Status reports the daemon's counters; safe from any goroutine. The
// core first applies the task events buffered so far and publishes its
// counters (a request, after its barrier), so they are current even while
// its tick has backed off; a core that does not answer within
// statusWait (stopping, or far behind) leaves them as last published.
func (d *daemon) Status() api.Status {
	ctx, cancel := context.WithTimeout(context.Background(), statusWait)
	d.core.Refresh(ctx)
	cancel()
	s := api.Status{Source: d.tasks.Kind(), Tasks: d.core.Tasks(), Audit: d.audit.Mode(), Counters: map[string]uint64{}}
	d.core.Counters(s.Counters)
	d.tasks.Counters(s.Counters)
	ls := d.host.Stats()
	s.Counters["log_dropped"] = ls.Dropped.Total()
	d.host.Counters(s.Counters)
	d.audit.Counters(s.Counters)
	// Full disk: over the host log and, with kernel audit, the JSON and
	// container logs.
	full, queued, dropped, werrs := ls.DiskFull, uint64(ls.Queued), ls.Dropped.DiskFull, ls.WriteErrors
	afull, aq, ad, aw := d.audit.DiskFull()
	full = full || afull
	queued += aq
	dropped += ad
	werrs += aw
	s.Counters["log_disk_full"] = 0
	if full {
		s.Counters["log_disk_full"] = 1
	}
	s.Counters["log_queued"] = queued
	s.Counters["log_dropped_disk_full"] = dropped
	s.Counters["log_write_errors"] = werrs
	return s
}
