// Package auditlog writes line-oriented audit logs the way auditd writes
// /var/log/audit/audit.log: contid's host log DIR/audit.log and its
// per-container logs DIR/containers/<contid>/audit.log (SPEC §8).
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
//     is counted in exactly one of Stats.Lines, Stats.Buffered and
//     Stats.Dropped (by reason). A full disk or I/O error is returned with
//     its errno (errors.Is(err, syscall.ENOSPC)) and counted; the caller
//     applies its disk_full_action/disk_error_action, the Writer does not
//     retry on its own. A failed rotation never loses the line being
//     written: it goes to the current file, and the error wraps ErrRotate.
//
//   - Files: the log is created with Config.Mode (0600) whatever the
//     umask, with O_NOFOLLOW, and must be a regular file; its directory is
//     created 0700 if missing. Rotation renames like auditd (Path.1 is the
//     newest rotated log) and leaves rotated files read-only.
//
//   - Concurrency: a Writer is safe for concurrent use. Its methods are
//     serialised by a mutex, so lines from several goroutines are whole
//     and in lock order; Stats reads atomics and never waits. The daemon
//     gives each log one writer goroutine anyway; the lock lets the signal
//     handler (Rotate on SIGHUP), Flush timers and shutdown act on the
//     Writer directly, for about 20 ns a line against the microsecond of
//     the write(2). FlushIncrementalAsync runs one background goroutine,
//     which only fsyncs; Close stops it. One Writer per file: the Writer
//     trusts its own idea of the file's size, so another process appending
//     to the same file is tolerated (its lines are not torn by ours) but
//     can be mistaken for our partial write after a failed write.
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
