// Package hostlog is the daemon's host log (DIR/audit.log) with its
// search index: opened once for the daemon's life and never replaced, so
// every component that holds the writer writes to the file in use;
// SIGHUP reconfigures and reopens it in place (Reconfigure).
//
// Concurrency: the writer is safe from any goroutine (auditlog.Writer);
// Tick and Reconfigure belong to the core goroutine.
package hostlog

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/contid/contid/internal/config"
	"github.com/contid/contid/internal/safedir"
	"github.com/contid/contid/internal/sink/auditlog"
	"github.com/contid/contid/internal/sink/output"
	"github.com/contid/contid/internal/sink/search"
)

// Log is the open host log.
type Log struct {
	w    *auditlog.Writer
	ix   *search.LogIndex // nil when off
	lost uint64           // Dropped.DiskFull already reported (Tick)
}

// Open makes the log directory, safe for root to write in, and opens the
// host log and, when configured, its index.
func Open(cfg config.Config, log *slog.Logger) (*Log, error) {
	// Root writes here: a directory another user owns or may write to
	// could have its files swapped for links.
	if err := safedir.Ensure(cfg.LogDir, 0o700); err != nil {
		return nil, fmt.Errorf("daemon: log directory: %w", err)
	}
	w, err := auditlog.Open(cfg.HostLog(), log)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	l := &Log{w: w}
	if cfg.SearchIndex {
		l.ix = search.NewLogIndex(0, log)
		w.Observe(l.ix)
	}
	return l, nil
}

// Observe adds o to what the writer tells of the lines reaching the file
// (after the index). Call before the first line.
func (l *Log) Observe(o auditlog.Observer) {
	if l.ix == nil {
		l.w.Observe(o)
		return
	}
	l.w.Observe(auditlog.Observers{l.ix, o})
}

// Writer is the host log's writer.
func (l *Log) Writer() *auditlog.Writer { return l.w }

// Index is the host log's index as the output takes it: nil when off.
func (l *Log) Index() output.Noter {
	if l.ix == nil {
		return nil
	}
	return l.ix
}

// Reconfigure gives the log cfg and reopens it in place.
func (l *Log) Reconfigure(cfg auditlog.Config) error { return l.w.Reconfigure(cfg) }

// Tick, on the core's tick: hands a FlushNone buffer to the kernel, writes
// what a full disk queued if space is back, syncs the index when due, and once
// the log writes again, reports with loss what it dropped meanwhile
// (never silently). It reports whether lines wait for the disk (queued):
// the next tick retries them.
func (l *Log) Tick(now time.Time, flush auditlog.FlushPolicy, loss func(log string, n uint64)) (held bool) {
	if flush == auditlog.FlushNone {
		l.w.Flush()
	}
	l.w.Retry()
	if l.ix != nil {
		l.ix.Tick(now) // logs its own errors: the index only makes searches faster
	}
	if st := l.w.Stats(); !st.DiskFull && st.Dropped.DiskFull > l.lost {
		loss("audit.log", st.Dropped.DiskFull-l.lost)
		l.lost = st.Dropped.DiskFull
	}
	st := l.w.Stats()
	return st.DiskFull || st.Queued > 0
}

// Stats are the writer's counters; safe from any goroutine.
func (l *Log) Stats() auditlog.Stats { return l.w.Stats() }

// Counters adds the search index's counters to c, when it is kept; safe
// from any goroutine.
func (l *Log) Counters(c map[string]uint64) {
	if l.ix == nil {
		return
	}
	st := l.ix.Stats()
	c["search_index_lines"] = st.Lines
	c["search_index_sidecars"] = st.Syncs
	c["search_index_errors"] = st.Errors
	c["search_index_files_skipped"] = st.FilesSkipped
}

// Flush hands what is buffered to the kernel.
func (l *Log) Flush() { l.w.Flush() }

// Close closes the log.
func (l *Log) Close() error { return l.w.Close() }
