// Package auditlog writes line-oriented audit logs the way auditd writes
// /var/log/audit/audit.log: contid's host log DIR/audit.log and its
// per-container logs DIR/containers/<contid>/audit.log (spec §8).
//
// Contract:
//
//   - Lines are whole. A line is given without its '\n'; one containing
//     '\n' or '\r' is refused (ErrBadLine) and nothing is written, so no
//     caller can tear or forge a line. Each line reaches the file with its
//     '\n' in a single write(2) on an O_APPEND descriptor; the FlushNone
//     buffer holds whole lines only and is written whole. The file is
//     never rewritten: earlier lines cannot be corrupted by a later write,
//     a crash, or a full disk. The one exception is cutting off the
//     partial tail of our own failed write (ENOSPC in mid-line) with
//     ftruncate, so the next line starts clean; if that fails, the partial
//     line is ended with a '\n' instead. Open does the same for a file
//     left without a final '\n' by a crash (Linux lets SIGKILL or a system
//     crash stop a write between pages) or by another writer, and counts
//     it in Stats.TailRepairs.
//
//   - Loss on a crash is what the FlushPolicy allows, no more; see
//     "Crash loss" below.
//
//   - Failures are reported, never hidden. Every line given to WriteLine
//     is counted in exactly one of Stats.Lines, Stats.Buffered,
//     Stats.Queued and Stats.Dropped (by reason). An I/O error is returned
//     with its errno and counted, and the line is dropped (after EIO it may
//     be in the file all the same, so it is not retried). A failed
//     rotation never loses the line being written: it goes to the current
//     file, and the error wraps ErrRotate.
//
//   - A full disk (ENOSPC, EDQUOT) is the failure that goes away by
//     itself, so its lines are kept: in a queue in memory of at most
//     Config.QueueBytes, written in order before any later line as soon as
//     a write succeeds again (at the next line, or at Retry, which a
//     daemon calls on a timer). Such a line's error wraps ErrQueued and
//     the errno, not ErrDropped. Lines beyond the bound are dropped and
//     counted in Stats.Dropped.DiskFull (ErrDiskFull), so the loss is
//     exact; Stats.DiskFull says the condition holds. The Writer logs the
//     start of the condition, the first drop and the end (with the number
//     dropped). This is auditd's disk_full_action with the workload never
//     blocked: memory is bounded, loss is counted, and the caller turns
//     the count into a record once writing resumes.
//
//   - Files: the log is created with Config.Mode (0600) whatever the
//     umask, with O_NOFOLLOW, and must be a regular file; its directory is
//     created 0700 if missing. Rotation renames like auditd (Path.1 is the
//     newest rotated log) and leaves rotated files read-only.
//
//   - Concurrency: a Writer is safe for concurrent use. Its methods are
//     serialised by a mutex, so lines from several goroutines are whole
//     and in lock order; Stats reads atomics and never waits. The lock
//     lets another goroutine (Reconfigure on SIGHUP, a Flush or Retry
//     timer, shutdown) act on the Writer while lines are written, for
//     about 20 ns a line against the microsecond of the write(2). FlushIncrementalAsync runs one background goroutine,
//     which only fsyncs; Close, or Reconfigure to another policy, stops
//     it. One Writer per file: the Writer
//     trusts its own idea of the file's size, so another process appending
//     to the same file is tolerated (its lines are not torn by ours) but
//     can be mistaken for our partial write after a failed write.
//
//   - Reload and rotation by others. A Writer is never replaced:
//     Reconfigure applies new limits, flush policy and queue bound and
//     reopens Path in place (a new file if the old one was renamed away,
//     as logrotate does before its postrotate SIGHUP), so nobody keeps a
//     writer to a stale file. Lines written before the reopen are in the
//     old file, lines buffered or queued go to the new one first.
//
//   - No clock, no package-level mutable state.
//
// # Crash loss
//
// A process crash is the writing process dying (SIGKILL, panic, OOM
// kill); a system crash is the kernel dying or the power failing. A line
// is accepted when WriteLine returns an error not wrapping ErrDropped
// (nil, normally).
//
//	flush=             process crash loses     system crash loses
//	none               the buffered lines      also what the kernel had not yet written back
//	incremental        nothing accepted        the < Freq lines since the last fsync
//	incremental_async  nothing accepted        the lines since the last completed fsync
//	data               nothing accepted        nothing accepted (O_DSYNC)
//	sync               nothing accepted        nothing accepted (O_SYNC)
//
// The line being written during a crash may be missing or partial; the
// partial part is ended by the next Open. Except under FlushNone, a file
// is fsynced before it is rotated and the directory after a file is
// created or renamed, so rotation adds no loss.
package auditlog
