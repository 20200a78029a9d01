package daemon

import (
	"fmt"
	"log/slog"

	"golang.org/x/sys/unix"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/contid/contid/internal/surface/metrics"
)

// The daemon's face to a service manager and to a metrics scraper.

// listenMetrics binds the metrics endpoint when metrics.listen is set
// (nil otherwise). Every scrape reads the same Status as `contid status`.
func (d *daemon) listenMetrics() (*metrics.Server, error) {
	network, addr, err := d.cfg.Metrics.Endpoint()
	if err != nil || network == "" {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		metrics.NewCollector(func() metrics.Snapshot { return metrics.Snapshot{Status: d.Status(), Queues: d.queues()} }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	s, err := metrics.Listen(metrics.ServerConfig{Network: network, Address: addr}, reg, d.log)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	d.log.Info("metrics", "listen", s.Addr().String())
	return s, nil
}

// queues reports the fill of the core's input queues; len and cap of a
// channel are safe from any goroutine. The channels are made before any
// scrape can run and never replaced.
func (d *daemon) queues() []metrics.Queue {
	n, c := d.core.QueueLen()
	q := []metrics.Queue{{Name: "task_events", Len: n, Cap: c}}
	d.audit.Queues(func(name string, n, c int) {
		q = append(q, metrics.Queue{Name: name, Len: n, Cap: c})
	})
	return q
}

// notify tells the service manager (systemd, Type=notify) about a state
// change: READY=1, RELOADING=1, STOPPING=1. Without NOTIFY_SOCKET it does
// nothing. A failure is logged, never fatal: the daemon works unmanaged.
func notify(log *slog.Logger, state string) {
	if ok, err := sddaemon.SdNotify(false, state); err != nil {
		log.Warn("service manager notification failed", "state", state, "err", err)
	} else if ok {
		log.Debug("service manager notified", "state", state)
	}
}

// notifyReloading starts a reload; READY=1 ends it. MONOTONIC_USEC lets
// systemd ≥ 253 (Type=notify-reload) match the reload to its SIGHUP;
// older managers ignore it.
func notifyReloading(log *slog.Logger) {
	notify(log, fmt.Sprintf("%s\nMONOTONIC_USEC=%d", sddaemon.SdNotifyReloading, monotonicUsec()))
}

func monotonicUsec() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano() / 1000
}
