package auditlog

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Config says where and how a Writer writes. Its zero fields mean the
// defaults given on each field; only Path is required.
type Config struct {
	// Path is the log file, e.g. DIR/audit.log. Rotated logs are Path.1,
	// Path.2, … (higher numbers are older). Its directory is created with
	// mode 0700 if missing.
	Path string

	// MaxBytes is the size at which MaxAction is taken; 0 means no limit.
	// The limit is checked before each line: a line that would take a
	// non-empty file past MaxBytes first triggers MaxAction, so a file
	// exceeds MaxBytes only when one line alone is longer, or by the lines
	// a full disk queued (written at once when space returns). (auditd checks
	// after the write, so its files exceed the limit by up to one record;
	// auditd's max_log_file is in megabytes, this is in bytes.)
	MaxBytes int64

	// NumLogs is the number of files kept when rotating, the current one
	// included, like auditd's num_logs: rotation keeps Path and Path.1 …
	// Path.(NumLogs-1). 0 means 5 (auditd.conf's shipped value); 1 disables
	// rotation (Rotate then fails with ErrNoRotation). At most 999.
	// KeepLogs ignores it.
	NumLogs int

	// MaxAction is what happens when MaxBytes is reached. Default Rotate.
	MaxAction Action

	// Flush is the durability policy; see FlushPolicy. Default
	// FlushIncrementalAsync, auditd's default.
	Flush FlushPolicy

	// Freq is the number of lines between two fsyncs under
	// FlushIncremental and FlushIncrementalAsync, like auditd's freq.
	// 0 means 50 (auditd.conf's shipped value).
	Freq int

	// Mode is the permission of the current log file, set at every open
	// whatever the umask. 0 means 0600. Rotated files get Mode without
	// write bits (0400 for 0600), as auditd does.
	Mode os.FileMode

	// QueueBytes bounds the lines kept in memory while the disk is full
	// (a write failed with ENOSPC or EDQUOT). They are written, in order
	// and before any later line, as soon as a write succeeds again: at
	// the next WriteLine, WriteLines, Retry or Flush. Lines that do not
	// fit are dropped and counted in Stats.Dropped.DiskFull. 0 means
	// 4 MiB; negative means no queue (every line is dropped while the
	// disk is full).
	QueueBytes int64
}

// FlushPolicy is auditd.conf's flush=: when lines are handed to the kernel
// and when they are forced to disk. "Process crash" below is the writing
// process dying (SIGKILL, panic, OOM kill); "system crash" is the kernel
// dying or the power failing. Whatever the policy, a crash never changes
// lines already in the file: the file is only ever appended to (the one
// exception is cutting off the partial tail of a failed write, see
// Writer.WriteLine).
type FlushPolicy uint8

const (
	// FlushIncrementalAsync writes each line to the kernel before
	// WriteLine returns and, every Freq lines, asks a background goroutine
	// to fsync the file without waiting for it. Process crash: nothing
	// accepted is lost. System crash: the lines since the start of the
	// last fsync that completed are lost; normally fewer than 2×Freq, but
	// there is no hard bound, because the writer never waits for a slow
	// disk. The zero value, as in auditd.
	FlushIncrementalAsync FlushPolicy = iota

	// FlushNone keeps lines in a user-space buffer (64 KiB) and hands
	// them to the kernel when the buffer is full and at Flush, Rotate,
	// Reopen, Reconfigure and Close; nothing is fsynced. Process crash: the lines in
	// the buffer are lost (Stats.Buffered says how many; call Flush on a
	// timer to bound it). System crash: also whatever the kernel had not
	// yet written back (on Linux typically up to 30 s of lines).
	// Stricter than auditd's none, which writes each line at once.
	FlushNone

	// FlushIncremental writes each line to the kernel before WriteLine
	// returns and fsyncs the file in the WriteLine call of every Freq-th
	// line. Process crash: nothing accepted is lost. System crash: at most
	// the Freq-1 lines accepted since the last fsync.
	FlushIncremental

	// FlushData opens the file O_DSYNC: WriteLine returns once the line's
	// data and the file size are on stable storage (fdatasync after every
	// write, in one system call). Process or system crash: nothing
	// accepted is lost; the line being written may be missing or, after a
	// system crash or a kill in mid-write, partial (the next Open ends it
	// with a '\n').
	FlushData

	// FlushSync opens the file O_SYNC: like FlushData, and the other
	// metadata (timestamps) is synced too (fsync after every write).
	FlushSync
)

var flushNames = [...]string{
	FlushIncrementalAsync: "incremental_async",
	FlushNone:             "none",
	FlushIncremental:      "incremental",
	FlushData:             "data",
	FlushSync:             "sync",
}

// String returns the policy's auditd.conf name ("incremental_async").
func (p FlushPolicy) String() string { return nameOf(flushNames[:], p, "FlushPolicy") }

// UnmarshalText parses an auditd.conf flush= value, in any case.
func (p *FlushPolicy) UnmarshalText(b []byte) error {
	if parseName(flushNames[:], b, p) {
		return nil
	}
	return fmt.Errorf("auditlog: unknown flush policy %q (want none, incremental, incremental_async, data or sync)", b)
}

// Action is auditd.conf's max_log_file_action: what a Writer does when the
// log reaches Config.MaxBytes.
type Action uint8

const (
	// Rotate renames Path.(N-2) → Path.(N-1), …, Path.1 → Path.2,
	// Path → Path.1 (N = NumLogs), then starts a new Path. The old
	// Path.(N-1) is overwritten, and Path.N, Path.N+1, … left over from a
	// larger NumLogs are removed, so NumLogs files remain. If a number is
	// missing, only the files below it move up: the gap is filled and
	// nothing is overwritten. The zero value.
	Rotate Action = iota

	// KeepLogs rotates like Rotate but never deletes: every rotated file
	// up to the first missing number moves up one, however many there
	// are (auditd's keep_logs).
	// The disk fills up instead; that is the caller's disk_full_action.
	KeepLogs

	// Ignore keeps writing past MaxBytes; a warning is logged once per
	// file (auditd's ignore and syslog).
	Ignore

	// Suspend closes the file and refuses every line with ErrSuspended,
	// counting it in Stats.Dropped.Suspended, until Rotate or Reopen
	// (auditd's suspend and its resume).
	Suspend
)

var actionNames = [...]string{
	Rotate:   "rotate",
	KeepLogs: "keep_logs",
	Ignore:   "ignore",
	Suspend:  "suspend",
}

// String returns the action's auditd.conf name ("keep_logs").
func (a Action) String() string { return nameOf(actionNames[:], a, "Action") }

// UnmarshalText parses an auditd.conf max_log_file_action= value, in any
// case; "syslog" is taken as Ignore (the warning is always logged).
func (a *Action) UnmarshalText(b []byte) error {
	if strings.EqualFold(string(b), "syslog") {
		*a = Ignore
		return nil
	}
	if parseName(actionNames[:], b, a) {
		return nil
	}
	return fmt.Errorf("auditlog: unknown max size action %q (want rotate, keep_logs, ignore, syslog or suspend)", b)
}

// nameOf returns v's name in names (auditd.conf's word for it), or
// typ(v) for a value without one.
func nameOf[T ~uint8](names []string, v T, typ string) string {
	if int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, uint8(v))
}

// parseName sets *v to the value named b in names, in any case, and says
// whether there was one.
func parseName[T ~uint8](names []string, b []byte, v *T) bool {
	for i, n := range names {
		if strings.EqualFold(string(b), n) {
			*v = T(i)
			return true
		}
	}
	return false
}

const (
	defaultNumLogs = 5
	defaultFreq    = 50
	defaultMode    = 0o600
	defaultQueue   = 4 << 20
	maxNumLogs     = 999 // auditd's limit
	bufferSize     = 64 << 10
)

// withDefaults checks c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("auditlog: config for %q: "+format, append([]any{c.Path}, args...)...)
	}
	switch {
	case c.Path == "":
		return bad("no path")
	case strings.HasSuffix(c.Path, "/") || filepath.Base(c.Path) == "." || filepath.Base(c.Path) == "..":
		return bad("path names a directory")
	case c.MaxBytes < 0:
		return bad("MaxBytes %d < 0", c.MaxBytes)
	case c.NumLogs < 0 || c.NumLogs > maxNumLogs:
		return bad("NumLogs %d not in 0…%d", c.NumLogs, maxNumLogs)
	case c.Freq < 0:
		return bad("Freq %d < 0", c.Freq)
	case int(c.Flush) >= len(flushNames):
		return bad("unknown flush policy %d", c.Flush)
	case int(c.MaxAction) >= len(actionNames):
		return bad("unknown max size action %d", c.MaxAction)
	case c.Mode&^os.ModePerm != 0:
		return bad("mode %v has more than permission bits", c.Mode)
	case c.Mode != 0 && c.Mode&0o600 != 0o600:
		return bad("mode %v does not let the owner read and write", c.Mode)
	}
	if c.NumLogs == 0 {
		c.NumLogs = defaultNumLogs
	}
	if c.Freq == 0 {
		c.Freq = defaultFreq
	}
	if c.Mode == 0 {
		c.Mode = defaultMode
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = defaultQueue
	}
	if c.MaxBytes > 0 && c.MaxAction == Rotate && c.NumLogs < 2 {
		return bad("NumLogs 1 leaves nothing to rotate into; use MaxAction Ignore or Suspend, or NumLogs ≥ 2")
	}
	return c, nil
}

// MarshalText writes the auditd.conf name, so configurations print as they
// are read.
func (p FlushPolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// MarshalText writes the auditd.conf name.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }
